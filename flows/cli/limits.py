"""``amtsbote limits``: the per-agency limits on the Prefect server.

::

    amtsbote limits sync [--dry-run] [--keep-stale] [--agencies FILE]
                         [--pool-concurrency N [--pool NAME]]

Creates or updates two Prefect global concurrency limits per agency of the directory
(``--agencies``, ``AMTSBOTE_AGENCIES`` or the shipped OWL file): ``agency-<id>`` (limit = the
agency's ``concurrency``: simultaneous requests across all workers) and ``agency-<id>-rate``
(slot decay = its ``rate_limit`` per second: requests per second across all workers). Limits of
agencies no longer in the directory are deleted unless ``--keep-stale``. Idempotent: a second
run changes nothing. ``--dry-run`` prints the plan and changes nothing. The server is
``PREFECT_API_URL``.

``--pool-concurrency N`` also makes sure the process work pool (``--pool``, default
``amtsbote-process``) exists — created with amtsbote's job template, which starts flow runs with
``<this Python> -m prefect.engine`` directly — and that at most N of its flow runs execute at once
across all workers (the pool's concurrency limit; waiting runs do not count). Run it before
``prefect deploy --all``.

Exit 0 ok, 2 when the directory is unusable or the Prefect server cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "limits",
        help="per-agency concurrency and rate limits on the Prefect server",
        description="Per-agency limits (Prefect global concurrency limits).",
    )
    actions = parser.add_subparsers(dest="limits_command", metavar="ACTION")
    actions.required = True
    sync = actions.add_parser(
        "sync",
        help="create/update the agency-* limits from the directory (idempotent)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument(
        "--keep-stale",
        action="store_true",
        help="keep agency-* limits of agencies no longer in the directory",
    )
    sync.add_argument(
        "--agencies",
        metavar="FILE",
        help="directory file (default: $AMTSBOTE_AGENCIES or the OWL file)",
    )
    sync.add_argument(
        "--pool-concurrency",
        type=int,
        metavar="N",
        help="also ensure the work pool with this concurrency limit",
    )
    sync.add_argument(
        "--pool",
        default="amtsbote-process",
        metavar="NAME",
        help="the process work pool (amtsbote-process)",
    )
    sync.set_defaults(handler=_sync, needs_prefect=True)


def _sync(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.directory import Directory, DirectoryError

    try:
        directory = Directory.load(args.agencies) if args.agencies else Directory.default()
    except DirectoryError as exc:
        print(f"amtsbote limits: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.pool_concurrency is not None and args.pool_concurrency < 1:
        print(
            f"amtsbote limits: --pool-concurrency must be >= 1, not {args.pool_concurrency}",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    from ..operations import describe_changes, ensure_work_pool, sync_limits

    try:
        if args.pool_concurrency is not None:
            if args.dry_run:
                print(
                    f"work pool {args.pool}: concurrency limit {args.pool_concurrency} "
                    "(dry run: not checked)"
                )
            else:
                created = asyncio.run(
                    ensure_work_pool(args.pool, concurrency_limit=args.pool_concurrency)
                )
                print(
                    f"work pool {args.pool}: {'created' if created else 'exists'}, "
                    f"concurrency limit {args.pool_concurrency}"
                )
        changes = asyncio.run(
            sync_limits(directory, dry_run=args.dry_run, prune=not args.keep_stale)
        )
    except Exception as exc:  # httpx/Prefect errors: the server is unusable from here
        print(
            f"amtsbote limits: Prefect server unusable: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    print(describe_changes(changes))
    changed = sum(1 for c in changes if c.action != "unchanged")
    verb = "would change" if args.dry_run else "changed"
    print(f"{len(changes)} limit(s), {changed} {verb}" + (" (dry run)" if args.dry_run else ""))
    return EXIT_OK
