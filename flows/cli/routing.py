"""``amtsbote routing``: show (and check) the routing rules.

::

    amtsbote routing [--file PATH] [--format table|json]

Exit 0 when the file loads; 2 when it is unusable — every problem as ``file:line: field: message``.
"""

from __future__ import annotations

import argparse
import sys

from ._util import print_json, table

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "routing",
        help="show and check the routing rules",
        description="Show the routing rules (who receives which message "
        "type when) and check them against the directory.",
    )
    p.add_argument(
        "--file",
        metavar="PATH",
        help="routing file (default: $AMTSBOTE_ROUTING or deployments/owl/routing.yaml)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from connectors.directory import DirectoryError

    from ..exceptions import RoutingError
    from ..routing import Routing, describe

    try:
        routing = Routing.load(args.file) if args.file else Routing.default()
    except RoutingError as exc:
        print(
            f"amtsbote routing: unusable routing ({len(exc.problems)} problem(s)):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except DirectoryError as exc:
        print(f"amtsbote routing: agency directory unusable: {exc}", file=sys.stderr)
        return 2
    rows = describe(routing)
    if args.format == "json":
        print_json({"sender": routing.sender, "source": routing.source, "rules": rows})
        return 0
    print(f"sender: {routing.sender}   ({routing.source})")
    print(
        table(
            [
                [
                    r["rule"],
                    r["recipient"],
                    r["message_type"],
                    "yes" if r["consult"] else "",
                    " ".join(f"{k}={v}" for k, v in r["when"].items()) or "always",
                ]
                for r in rows
            ],
            ["rule", "recipient", "message type", "consult", "when"],
        )
    )
    return 0
