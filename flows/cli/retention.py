"""``amtsbote retention``: remove payloads and personal fields from the journal after the
periods of ``deployments/owl/retention.yaml`` (or ``--config``/``AMTSBOTE_RETENTION``).

::

    amtsbote retention run [--dry-run] [--format table|json] [--config PATH]
                           [--database-url URL]
    amtsbote retention config [--config PATH]

``run`` replaces the payloads of eligible cases' messages by a tombstone, cuts case summaries to
their non-personal keys, clears delivery error texts and writes ``retention.purged`` events (the
audit skeleton — ids, hashes, states, timestamps, events — stays). ``--dry-run`` shows what
would be removed and changes nothing. ``config`` prints the effective periods.

Exit codes: 0 done (also when nothing was due); 2 unusable input: a configuration file with an
error (file, line and field are named) or a journal that cannot be opened.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import EXIT_OK, EXIT_UNUSABLE
from ._util import error, print_json, table

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="remove payloads and personal fields after the retention periods",
        description="Remove message payloads and personal fields from the journal after the "
        "periods of deployments/owl/retention.yaml (or --config / "
        "AMTSBOTE_RETENTION); the audit skeleton and the event log stay.",
    )
    actions = parser.add_subparsers(dest="retention_command", metavar="ACTION")
    actions.required = True
    run = actions.add_parser("run", help="apply the retention periods (or --dry-run)")
    run.add_argument("--dry-run", action="store_true", help="show what would be removed")
    run.add_argument("--format", choices=("table", "json"), default="table")
    run.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="retention file (default: AMTSBOTE_RETENTION or deployments/owl/retention.yaml)",
    )
    run.add_argument(
        "--database-url",
        metavar="URL",
        help="journal database (default: AMTSBOTE_DATABASE_URL or the data dir)",
    )
    run.set_defaults(handler=run_retention_command)
    show = actions.add_parser("config", help="print the effective retention periods")
    show.add_argument("--config", type=Path, metavar="PATH")
    show.set_defaults(handler=show_config)


def _config(path: Path | None) -> Any:
    from connectors.journal.retention import RetentionConfig

    return RetentionConfig.load(path)


def show_config(args: argparse.Namespace) -> int:
    from connectors.exceptions import ConfigError

    try:
        config = _config(args.config)
    except ConfigError as exc:
        error("retention", str(exc))
        return EXIT_UNUSABLE
    print_json(config.to_dict())
    return EXIT_OK


def run_retention_command(args: argparse.Namespace) -> int:
    from connectors.exceptions import ConnectorError
    from connectors.journal import Journal
    from connectors.journal.retention import run_retention

    try:
        config = _config(args.config)
        if args.database_url:
            from connectors.config import Settings
            from connectors.journal.keyfile import journal_key_for

            journal = Journal(args.database_url, key=journal_key_for(Settings.from_env()))
        else:
            journal = Journal.from_env()
    except ConnectorError as exc:
        error("retention", str(exc))
        return EXIT_UNUSABLE
    try:
        result = run_retention(journal.engine, config, dry_run=args.dry_run)
    except ConnectorError as exc:
        error("retention", str(exc))
        return EXIT_UNUSABLE
    finally:
        journal.close()
    if args.format == "json":
        print_json(result.to_dict())
        return EXIT_OK
    rules = sorted(result.rules.values(), key=lambda r: r.rule)
    rows = [
        [r.rule, r.cases, r.messages, r.payload_bytes, r.summaries, r.error_texts]
        for r in [*rules, result.totals]
    ]
    print(
        ("DRY RUN — nothing changed\n" if result.dry_run else "")
        + table(rows, ["rule", "cases", "messages", "payload bytes", "summaries", "error texts"])
    )
    if result.kept_pending:
        print(f"\n{result.kept_pending} message(s) kept: a delivery is still pending")
    if result.comment_events:
        print(
            f"\n{len(result.comment_events)} approval comment(s) stay in the immutable event "
            f"log (event ids {', '.join(map(str, result.comment_events[:20]))}"
            f"{' …' if len(result.comment_events) > 20 else ''}) — see docs/retention.md"
        )
    return EXIT_OK
