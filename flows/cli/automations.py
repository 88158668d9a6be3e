"""``amtsbote automations``: the Prefect automations an installation relies on.

::

    amtsbote automations sync [--dry-run] [--keep-stale] [--work-pool NAME]
                              [--zombie-after SECONDS] [--max-crashes N]
                              [--reply-within RULE=ISO-DURATION]...
    amtsbote automations retire DEPLOYMENT [--dry-run]

``sync`` creates or updates, by name (idempotent), the deployments ``recover/recover`` and
``escalate/escalate`` (work pool ``--work-pool``, default ``amtsbote-process``, code in
``AMTSBOTE_HOME``) and the automations ``amtsbote-zombie-runs``, ``amtsbote-recover-crashed``
and one ``amtsbote-missing-reply-<rule>`` per consultation rule of the routing (see
:mod:`flows.operations`). ``amtsbote-*`` automations no longer wanted are deleted unless
``--keep-stale``. ``--zombie-after`` defaults to three heartbeats
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, default 180 s; the workers must use the same value) and
must also cover the start of a flow-run process; ``--max-crashes`` defaults to 3.
``--reply-within`` overrides a rule's ``reply_within`` (drills, tests). ``--dry-run`` prints the
plan.

``retire`` removes the triggers of a deployment (``flow/name``), so that it starts no new runs
while its waiting runs finish on the code it points to; prints how many runs still wait
(``docs/operations.md``, rolling out a new procedure version).

Exit 0 ok, 2 when the routing or an option is unusable, the work pool or deployment does not
exist, or the Prefect server cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "automations",
        help="zombie detection, crash recovery, missing-reply escalation",
        description="Prefect automations of an amtsbote installation.",
    )
    actions = parser.add_subparsers(dest="automations_command", metavar="ACTION")
    actions.required = True
    sync = actions.add_parser(
        "sync",
        help="create/update the amtsbote-* automations (idempotent)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument(
        "--keep-stale",
        action="store_true",
        help="keep amtsbote-* automations that are no longer wanted",
    )
    sync.add_argument(
        "--work-pool",
        default=None,
        metavar="NAME",
        help="work pool of the operations deployments (amtsbote-process)",
    )
    sync.add_argument(
        "--zombie-after",
        type=float,
        metavar="SECONDS",
        help="silence after a heartbeat that marks a run crashed (3 heartbeats)",
    )
    sync.add_argument(
        "--max-crashes",
        type=int,
        metavar="N",
        help="crashes after which a run is no longer rescheduled (3)",
    )
    sync.add_argument(
        "--reply-within",
        action="append",
        default=[],
        metavar="RULE=DURATION",
        help="override a consultation rule's reply_within (ISO 8601 duration)",
    )
    sync.set_defaults(handler=_sync, needs_prefect=True)

    retire = actions.add_parser(
        "retire",
        help="remove a deployment's triggers; its waiting runs finish on its code",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    retire.add_argument(
        "deployment", metavar="DEPLOYMENT", help="flow/name, e.g. gewerbeanmeldung/gewerbeanmeldung"
    )
    retire.add_argument("--dry-run", action="store_true", help="report, change nothing")
    retire.set_defaults(handler=_retire, needs_prefect=True)


def _fail(message: object) -> int:
    print(f"amtsbote automations: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _settings(args: argparse.Namespace) -> Any:
    from datetime import timedelta

    from ..operations import AutomationSettings
    from ..routing import parse_duration

    overrides: dict[str, Any] = {"work_pool": args.work_pool, "max_crashes": args.max_crashes}
    if args.zombie_after is not None:
        overrides["zombie_after"] = timedelta(seconds=args.zombie_after)
    within: dict[str, timedelta] = {}
    for item in args.reply_within:
        rule, sep, text = item.partition("=")
        if not sep or not rule.strip():
            raise ValueError(f"--reply-within {item!r}: expected RULE=ISO-DURATION")
        within[rule.strip()] = parse_duration(text.strip())
    if within:
        overrides["reply_within"] = within
    return AutomationSettings.from_env(**overrides)


def _sync(args: argparse.Namespace) -> int:
    import asyncio

    from ..exceptions import AmtsboteFlowError
    from ..operations import describe_changes, sync_automations
    from ..routing import Routing

    try:
        settings = _settings(args)
        from ..operations import with_family_routings

        routing = with_family_routings(Routing.default())
    except (ValueError, AmtsboteFlowError) as exc:
        return _fail(exc)
    unknown = set(settings.reply_within) - {r.rule for r in routing.rules if r.consult}
    if unknown:
        return _fail(
            f"--reply-within: no consultation rule {', '.join(sorted(unknown))} in {routing.source}"
        )
    try:
        changes = asyncio.run(
            sync_automations(routing, settings, dry_run=args.dry_run, prune=not args.keep_stale)
        )
    except AmtsboteFlowError as exc:
        return _fail(exc)
    except Exception as exc:  # httpx/Prefect errors: the server is unusable from here
        return _fail(f"Prefect server unusable: {type(exc).__name__}: {exc}")
    print(describe_changes(changes))
    autos = [c for c in changes if c.action != "deploy"]
    changed = sum(1 for c in autos if c.action != "unchanged")
    verb = "would change" if args.dry_run else "changed"
    print(
        f"{len(autos)} automation(s), {changed} {verb}"
        + (" (dry run)" if args.dry_run else "")
        + f"; zombie after {int(settings.zombie_window.total_seconds())} s of silence, "
        f"heartbeat {settings.heartbeat_seconds} s"
    )
    return EXIT_OK


def _retire(args: argparse.Namespace) -> int:
    import asyncio

    from ..exceptions import AmtsboteFlowError
    from ..operations import retire_deployment

    try:
        info = asyncio.run(retire_deployment(args.deployment, dry_run=args.dry_run))
    except AmtsboteFlowError as exc:
        return _fail(exc)
    except Exception as exc:
        return _fail(f"Prefect server unusable: {type(exc).__name__}: {exc}")
    if args.dry_run:
        done = f"{info['related_automations']} automation(s) related to it (its triggers too)"
    else:
        done = f"removed {info['triggers_removed']} trigger(s)"
    print(
        f"{info['deployment']} (version {info['version']}): {done}; {info['waiting_runs']} "
        "run(s) still waiting on it"
    )
    return EXIT_OK
