"""``amtsbote aussonderung``: the DMS hands over an Aussonderung; its evidence is exported.

::

    amtsbote aussonderung hand-over PATH [--by AGENCY] [--run]
    amtsbote aussonderung evidence CASE [--out FILE]

``hand-over`` takes an export folder (``manifest.yaml`` + primary files), a DMS-built 0501/0503
XML file or an x-man container (``.zip``); it checks and stores it, then starts the procedure —
by the event the deployments' triggers listen for (``amtsbote serve`` / workers), or with
``--run`` in this process (waits until the case ends; the archive's replies must reach this
installation's inbox). Exit 0 ok (also: handed over before — nothing stored again), 1 the case
ended failed, 2 unusable input (the error names the file, line or member).

``evidence`` prints the evidence of a case as JSON (offered, appraised, handed over, confirmed,
released for deletion — see :mod:`flows.families.aussonderung.evidence`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "aussonderung",
        help="hand over closed e-files to the archive; evidence of an Aussonderung",
        description=__doc__.split("::")[0].strip(),
    )
    sub = cmd.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    hand = sub.add_parser(
        "hand-over", help="the DMS hands over an export folder, 0501/0503 or container"
    )
    hand.add_argument("path", type=Path, help="export folder, .xml or .zip")
    hand.add_argument("--by", default="dms-paderborn", help="the DMS agency (role DMS)")
    hand.add_argument("--run", action="store_true", help="run the procedure in this process")
    hand.set_defaults(handler=run_hand_over, needs_prefect=True)
    ev = sub.add_parser("evidence", help="the evidence of a case as JSON")
    ev.add_argument("case_id")
    ev.add_argument("--out", type=Path, help="write to FILE instead of stdout")
    ev.set_defaults(handler=run_evidence)


def run_hand_over(args: argparse.Namespace) -> int:
    from ...correlation import emit_accepted_event
    from ...runtime import get_runtime
    from .handover import HandOverError, hand_over

    rt = get_runtime()
    try:
        done = hand_over(rt, args.path, by=args.by)
    except HandOverError as exc:
        print(f"amtsbote aussonderung: {exc}", file=sys.stderr)
        return 2
    if not done.created:
        print(
            f"ProzessID {done.process_id} was handed over before "
            f"(message {done.message_uuid}{', case ' + done.case_id if done.case_id else ''});"
            " nothing stored again"
        )
        return 0
    print(
        f"handed over: xdomea {done.message_type}, ProzessID {done.process_id}, "
        f"{done.files} primary documents; procedure {done.procedure}"
    )
    if not args.run:
        emit_accepted_event(done.message_uuid, done.procedure)
        print("started by the deployment trigger (amtsbote serve / workers)")
        return 0
    import asyncio

    from ...procedures import procedure_flow

    result = asyncio.run(procedure_flow(done.procedure)(done.message_uuid))
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0 if result.get("status") == "closed" else 1


def run_evidence(args: argparse.Namespace) -> int:
    from connectors.exceptions import JournalNotFoundError

    from ...runtime import get_runtime
    from .evidence import evidence

    rt = get_runtime()
    try:
        doc = evidence(rt, args.case_id)
    except JournalNotFoundError:
        print(
            f"amtsbote aussonderung evidence: no case {args.case_id!r} in the journal",
            file=sys.stderr,
        )
        return 2
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0
