"""``amtsbote db``: the message journal's database.

``amtsbote db upgrade [--database-url URL]``
    Create or migrate the journal schema to the revision this code ships (idempotent; safe to run
    at every start, also from several services at once). Without ``--database-url`` the database
    comes from ``AMTSBOTE_DATABASE_URL`` or is the SQLite file ``<AMTSBOTE_DATA_DIR>/
    journal.sqlite`` (the directory is created).
``amtsbote db current [--database-url URL]``
    Show the database's schema revision and the one this code needs. Exit 0 when current, 1 when
    the database needs ``upgrade`` (or does not exist yet), 2 when it cannot be reached.
``amtsbote db genkey``
    Print a new random Fernet key for ``AMTSBOTE_JOURNAL_KEY``.

URLs are printed with their password masked.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "db",
        help="message journal database: migrate, show revision, create a key",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION")
    actions.required = True

    upgrade = actions.add_parser("upgrade", help="create/migrate the journal schema (idempotent)")
    _url_option(upgrade)
    upgrade.set_defaults(handler=_upgrade)

    current = actions.add_parser("current", help="show the schema revision (exit 1: needs upgrade)")
    _url_option(current)
    current.set_defaults(handler=_current)

    genkey = actions.add_parser("genkey", help="print a new key for AMTSBOTE_JOURNAL_KEY")
    genkey.set_defaults(handler=_genkey)


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL (default: AMTSBOTE_DATABASE_URL, else <data dir>/journal.sqlite)",
    )


def _resolve(args: argparse.Namespace, *, create_dir: bool) -> tuple[str, str]:
    """(url, masked url) from the option or the settings."""
    from connectors.config import Settings, mask_url

    url = args.database_url
    if not url:
        settings = Settings.from_env()
        url = settings.database_url
        if create_dir and settings.journal_file is not None:
            settings.ensure_data_dir()
    return url, mask_url(url)


def _fail(message: object) -> int:
    print(f"amtsbote db: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.exceptions import ConnectorError
    from connectors.journal.engine import create_journal_engine, prepare_sqlite_file, sqlite_file
    from connectors.journal.migrate import upgrade

    try:
        url, shown = _resolve(args, create_dir=True)
        path = sqlite_file(url)
        if path is not None:
            prepare_sqlite_file(path)
        engine = create_journal_engine(url)
    except (ConnectorError, OSError) as exc:
        return _fail(exc)
    try:
        result = upgrade(engine)
    except SQLAlchemyError as exc:
        return _fail(f"journal database {shown}: {type(exc).__name__}: {_first_line(exc)}")
    finally:
        engine.dispose()
    if result.changed:
        print(f"journal database {shown}: upgraded {result.before or '(empty)'} → {result.after}")
    else:
        print(f"journal database {shown}: already at revision {result.after}")
    return EXIT_OK


def _current(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.exceptions import ConnectorError
    from connectors.journal.engine import create_journal_engine, sqlite_file
    from connectors.journal.migrate import current_revision, head_revision

    head = head_revision()
    try:
        url, shown = _resolve(args, create_dir=False)
        path = sqlite_file(url)
        if path is not None and not path.exists():
            print(f"journal database {shown}: no database file yet (head {head})")
            print("run `amtsbote db upgrade`")
            return EXIT_FINDINGS
        engine = create_journal_engine(url)
    except (ConnectorError, OSError) as exc:
        return _fail(exc)
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except SQLAlchemyError as exc:
        return _fail(f"journal database {shown}: {type(exc).__name__}: {_first_line(exc)}")
    finally:
        engine.dispose()
    print(f"journal database {shown}: revision {revision or '(empty)'} (head {head})")
    if revision == head:
        return EXIT_OK
    print("run `amtsbote db upgrade`")
    return EXIT_FINDINGS


def _genkey(args: argparse.Namespace) -> int:
    from connectors.journal.crypto import generate_key

    print(generate_key())
    return EXIT_OK


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
