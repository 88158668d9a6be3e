"""Operator commands on cases: ``cases``, ``case``, ``approve``, ``redeliver``.

::

    amtsbote cases [--status open|waiting|closed|failed|cancelled] [--procedure P] [--unmatched]
                   [--format table|json]
    amtsbote case CASE_ID [--format table|json]
    amtsbote approve CASE_ID --decision approve|reject [--reason CODE] [--comment TEXT]
    amtsbote redeliver (--case CASE_ID | --all-dead)

All read and write the journal (``AMTSBOTE_DATABASE_URL`` / ``AMTSBOTE_DATA_DIR``); ``approve`` and
``redeliver`` also talk to the Prefect API (``PREFECT_API_URL``). Exit 0 ok, 1 when something is
left to do (``redeliver``: dead letters remain), 2 for unusable input (unknown case, bad option).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ._util import error, print_json, table

__all__ = ["register"]

STATUSES = ("open", "waiting", "closed", "failed", "cancelled")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cases",
        help="list cases from the journal",
        description="List cases with their state, from the journal.",
    )
    p.add_argument(
        "--status", choices=STATUSES, action="append", help="only cases in this status (repeatable)"
    )
    p.add_argument("--procedure", help="only cases of this procedure")
    p.add_argument(
        "--unmatched",
        action="store_true",
        help="list the messages to this agency no case has claimed instead (not those waiting "
        "in the mailboxes it hosts for others)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=run_cases)

    p = subparsers.add_parser(
        "case",
        help="show one case: state, deliveries, history",
        description="Show one case: its deliveries and its event history.",
    )
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=run_case)

    p = subparsers.add_parser(
        "approve",
        help="decide a case waiting for approval",
        description="Record a clerk's decision in the journal and resume the waiting flow run. "
        "The comment is kept in the journal only (never in Prefect); keep personal "
        "data out of it.",
    )
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("--decision", choices=("approve", "reject"), required=True)
    p.add_argument(
        "--reason",
        default="ok",
        choices=("ok", "permit-missing", "incomplete", "not-permitted", "other"),
    )
    p.add_argument("--comment", help="free text, kept in the journal (max. 500 characters)")
    p.set_defaults(handler=run_approve, needs_prefect=True)

    p = subparsers.add_parser(
        "redeliver",
        help="re-drive dead letters",
        description="Send dead-letter deliveries again (same nachrichtenUUID) and close the cases "
        "they complete. Runs the `redeliver` flow, visible in the Prefect UI.",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--case", dest="case_id", metavar="CASE_ID")
    g.add_argument("--all-dead", action="store_true")
    p.set_defaults(handler=run_redeliver, needs_prefect=True)


def _journal() -> Any:
    from connectors.journal import Journal

    return Journal.from_env(create=True)


def run_cases(args: argparse.Namespace) -> int:
    journal = _journal()
    if args.unmatched:
        from connectors.directory import Directory, DirectoryError

        from ..routing import Routing

        try:  # the home agency: messages in the mailboxes it hosts for others are not replies
            home = Routing.default(directory=Directory.default()).sender
        except (DirectoryError, ValueError) as exc:
            error("cases", str(exc))
            return 2
        msgs = journal.unmatched_replies(recipient=home)
        rows = [
            {
                "nachrichtenUUID": m.nachrichten_uuid,
                "message_type": m.message_type,
                "author": m.author,
                "in_reply_to": m.in_reply_to,
                "received_at": m.recorded_at,
            }
            for m in msgs
        ]
        if args.format == "json":
            print_json(rows)
        else:
            print(
                table(
                    [list(r.values()) for r in rows],
                    ["nachrichtenUUID", "type", "author", "in reply to", "received"],
                )
            )
        return 0
    cases = journal.list_cases(status=args.status, procedure=args.procedure)
    rows = []
    for c in cases:
        deliveries = c.summary.get("deliveries", {})
        rows.append(
            {
                "case_id": c.case_id,
                "procedure": c.procedure,
                "status": c.status.value,
                "deliveries": deliveries,
                "flow_run_id": c.flow_run_id,
                "created_at": c.created_at,
                "closed_at": c.closed_at,
            }
        )
    if args.format == "json":
        print_json(rows)
        return 0
    print(
        table(
            [
                [
                    r["case_id"],
                    r["procedure"],
                    r["status"],
                    " ".join(f"{k}={v}" for k, v in sorted(r["deliveries"].items())),
                    f"{r['created_at']:%Y-%m-%d %H:%M}",
                ]
                for r in rows
            ],
            ["case", "procedure", "status", "deliveries", "created (UTC)"],
        )
    )
    print(f"\n{len(rows)} case(s)")
    return 0


def run_case(args: argparse.Namespace) -> int:
    from connectors.exceptions import JournalNotFoundError
    from connectors.journal import Direction

    journal = _journal()
    try:
        case = journal.get_case(args.case_id)
    except JournalNotFoundError:
        error("case", f"no case {args.case_id!r} in the journal")
        return 2
    deliveries = journal.deliveries(case_id=case.case_id, direction=Direction.OUTBOUND)
    types = {m.nachrichten_uuid: m.message_type for m in journal.messages(case_id=case.case_id)}
    events = journal.events(case_id=case.case_id)
    if args.format == "json":
        print_json(
            {
                "case": asdict(case),
                "deliveries": [
                    asdict(d) | {"message_type": types.get(d.nachrichten_uuid)} for d in deliveries
                ],
                "events": [asdict(e) for e in events],
            }
        )
        return 0
    print(
        f"case {case.case_id}  {case.procedure}  status={case.status.value}  "
        f"flow run={case.flow_run_id or '-'}"
    )
    print()
    print(
        table(
            [
                [
                    d.recipient,
                    types.get(d.nachrichten_uuid, "?"),
                    d.state.value,
                    d.attempts,
                    d.nachrichten_uuid,
                    (d.last_error or "")[:60],
                ]
                for d in deliveries
            ],
            ["recipient", "message type", "state", "attempts", "nachrichtenUUID", "last error"],
        )
    )
    print()
    print(
        table(
            [
                [
                    f"{e.at:%Y-%m-%d %H:%M:%S}",
                    e.actor,
                    e.kind,
                    ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))[:100],
                ]
                for e in events
            ],
            ["time (UTC)", "actor", "event", "details"],
        )
    )
    return 0


def run_approve(args: argparse.Namespace) -> int:
    from connectors.exceptions import JournalNotFoundError

    from ..correlation import approve_case
    from ..runtime import get_runtime

    rt = get_runtime()
    try:
        resumed = approve_case(
            rt.journal,
            args.case_id,
            decision=args.decision,
            reason=args.reason,
            comment=args.comment,
        )
    except JournalNotFoundError:
        error("approve", f"no case {args.case_id!r} in the journal")
        return 2
    except ValueError as exc:
        error("approve", str(exc))
        return 2
    print(
        f"case {args.case_id}: {args.decision} recorded"
        + (
            "; the waiting flow run was resumed"
            if resumed
            else "; no run is waiting now — it takes the decision when it gets there"
        )
    )
    return 0


def run_redeliver(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.exceptions import JournalNotFoundError
    from connectors.journal import DeliveryState

    from ..procedures import redeliver
    from ..runtime import get_runtime

    rt = get_runtime()
    if args.case_id:
        try:
            rt.journal.get_case(args.case_id)
        except JournalNotFoundError:
            error("redeliver", f"no case {args.case_id!r} in the journal")
            return 2
    before = rt.journal.deliveries(case_id=args.case_id, state=DeliveryState.DEAD)
    if not before:
        print("no dead letters" + (f" in case {args.case_id}" if args.case_id else ""))
        return 0
    from ..exceptions import DeadLetters

    try:
        summaries = asyncio.run(redeliver(case_id=args.case_id, all_dead=args.all_dead))
    except DeadLetters as exc:  # the run failed (as it should): letters remain dead
        summaries = list(exc.summaries)
    for s in summaries:
        print(
            f"case {s['case_id']}: {s['status']}  deliveries: "
            + " ".join(f"{k}={v}" for k, v in sorted(s["deliveries"].items()))
        )
    left = rt.journal.deliveries(case_id=args.case_id, state=DeliveryState.DEAD)
    if left:
        print(f"{len(left)} delivery(ies) still dead")
        return 1
    return 0
