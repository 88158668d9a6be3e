"""``check``: the routing of the case's family applied to its facts → a :class:`Plan`.

Not a task: it is a pure function of the facts intake found (it cannot fail transiently and is
never retried), and a task run costs the Prefect server a dozen writes per case. The operator
sees the plan in the run's name and tags (``agency:<id>``), in the run's log and in the
journal's ``case.planned`` event."""

from __future__ import annotations

import asyncio

from prefect import get_run_logger

from ..runtime import get_runtime
from .common import CaseRef, Plan, rename_run

__all__ = ["check"]


async def check(case: CaseRef) -> Plan:
    """Apply the family's routing rules to the case's facts: approval? whom to consult? whom to
    tell?"""
    rt = get_runtime()
    routing = rt.routing_for(case.family.name)
    routes = routing.route(case.facts)
    plan = Plan(
        needs_approval=routing.needs_approval(case.facts),
        consultations=tuple(r for r in routes if r.consult),
        distribution=tuple(r for r in routes if not r.consult),
    )
    await asyncio.to_thread(
        rt.journal.log_event,
        "case.planned",
        actor="check",
        case_id=case.case_id,
        detail={
            "approval": plan.needs_approval,
            "consult": [r.rule for r in plan.consultations],
            "distribute": [r.rule for r in plan.distribution],
        },
    )
    get_run_logger().info(
        "case %s: approval %s, consult %s, distribute %s",
        case.case_id,
        "needed" if plan.needs_approval else "not needed",
        ", ".join(r.rule for r in plan.consultations) or "-",
        ", ".join(r.rule for r in plan.distribution) or "-",
    )
    await rename_run(
        f"{case.procedure}-{case.case_id}",
        [case.procedure, *(f"agency:{a}" for a in plan.agencies)],
    )
    return plan
