"""``check``: the routing of the case's family applied to its facts → a :class:`Plan`."""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE

from ..runtime import get_runtime
from .common import CaseRef, Plan, rename_run

__all__ = ["check"]


@task(name="check", cache_policy=NO_CACHE, persist_result=False)
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
    await rename_run(
        f"{case.procedure}-{case.case_id}",
        [case.procedure, *(f"agency:{a}" for a in plan.agencies)],
    )
    return plan
