"""``amtsbote demo``: the main job, end to end on this machine (see :mod:`flows.demo`).

::

    amtsbote demo [--fail AGENCY]... [--keep-running] [--no-redeliver] [--timeout SECONDS]

Exit 0 when every case is closed and every delivery acknowledged, 1 otherwise, 2 for unusable
options (unknown agency) or an unreachable ``PREFECT_API_URL``.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the Paderborn Gewerbe procedures end to end on this machine",
        description="Start a local Prefect server, the OWL agencies' inboxes on loopback and "
        "simulated partner systems; submit an Anmeldung (restaurant, non-EU national), "
        "an Ummeldung and an Abmeldung; run every case to its end and print what "
        "happened. Approvals are given automatically in demo mode.",
    )
    p.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="AGENCY",
        help="keep this agency's inbox down (retries, dead letter, redeliver)",
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the Prefect server (and its UI) up until Ctrl-C",
    )
    p.add_argument(
        "--no-redeliver",
        action="store_true",
        help="with --fail: only print the redeliver command, do not run it",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for all cases (300)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where each demo run keeps its journals (default: var/demo)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..demo import DemoOptions, main

    opts = DemoOptions(
        fail=tuple(args.fail),
        keep_running=args.keep_running,
        redeliver=not args.no_redeliver,
        timeout=args.timeout,
    )
    if args.data_dir:
        opts.data_dir = Path(args.data_dir)
    return main(opts)
