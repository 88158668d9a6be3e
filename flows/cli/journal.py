"""``amtsbote journal``: the sealed journal.

``amtsbote journal verify [--database-url URL] [--json]``
    Check the journal's hash chain (every event's SHA-256 over the previous one and its own
    content), the message rows bound into it, the append-only triggers and the schema revision
    (:mod:`connectors.journal.seal`). Exit 0 when intact (prints the chain head and the counts),
    1 naming the first broken link (a deleted or changed event, a changed or deleted message
    row, a dropped or disabled trigger, a stale schema revision), 2 when the database URL is
    unusable or the database cannot be reached. Needs no key: payloads are not decrypted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "journal",
        help="sealed journal: verify the hash chain, triggers and schema",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION")
    actions.required = True
    verify = actions.add_parser(
        "verify", help="check chain, message rows, triggers, revision (exit 1: broken)"
    )
    verify.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL (default: AMTSBOTE_DATABASE_URL, else <data dir>/journal.sqlite)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify)


def _fail(message: object) -> int:
    print(f"amtsbote journal verify: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _verify(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.config import Settings, mask_url
    from connectors.exceptions import ConnectorError
    from connectors.journal.engine import create_journal_engine, sqlite_file
    from connectors.journal.seal import verify

    try:
        url = args.database_url or Settings.from_env().database_url
        shown = mask_url(url)
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            return _fail(f"journal database {shown}: no database file")
        engine = create_journal_engine(url)
    except (ConnectorError, OSError, ValueError) as exc:
        return _fail(exc)
    try:
        report = verify(engine)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
        return _fail(f"journal database {shown}: {type(orig).__name__}: {first}")
    finally:
        engine.dispose()
    if args.json:
        print(
            json.dumps(
                {
                    "database": shown,
                    "ok": report.ok,
                    "revision": report.revision,
                    "head_revision": report.head_revision,
                    "events": report.events,
                    "messages": report.messages,
                    "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "findings": [
                        {
                            "what": f.what,
                            "event_id": f.event_id,
                            "message_id": f.message_id,
                            "text": f.text,
                        }
                        for f in report.findings
                    ],
                },
                indent=2,
            )
        )
    elif report.ok:
        print(
            f"journal {shown}: intact — {report.events} events, {report.messages} messages, "
            f"schema {report.revision}"
        )
        print(f"chain head: seq {report.head_seq} {report.head_hash}")
    else:
        broken = report.findings[0]
        print(f"journal {shown}: BROKEN — {broken.text}")
        for more in report.findings[1:]:
            print(f"  also: {more.text}")
    return EXIT_OK if report.ok else EXIT_FINDINGS
