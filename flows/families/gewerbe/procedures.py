"""The Gewerbe procedures of the Stadt Paderborn, composed from :mod:`flows.blocks`.

One flow run per case; the run is named after the case (``gewerbeanmeldung-05774032-2026-000123``)
and tagged with the procedure and the agencies involved. The only parameter is the nachrichtenUUID
of the notification the city's inbox accepted — the payload stays in the journal.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.blocks import (
    FLOW_OPTIONS,
    CaseRef,
    approve,
    await_receipts,
    check,
    close,
    consult,
    distribute,
    intake,
)

__all__ = ["gewerbeabmeldung", "gewerbeanmeldung", "gewerbeummeldung", "run_procedure"]


async def run_procedure(message_uuid: str, procedure: str) -> dict[str, Any]:
    """The shared composition: intake → check → consult → approve → distribute → receipts → close.

    A consultation whose answer is not positive (Rückmeldung ergebnis other than ``01``, keine
    Bedenken) makes a clerk's approval necessary even where routing does not ask for one."""
    case: CaseRef = await intake(message_uuid, procedure)
    plan = await check(case)
    needs_approval = plan.needs_approval
    for route in plan.consultations:
        outcome = await consult(case, route)
        if not outcome.positive:
            needs_approval = True
    if needs_approval:
        decision = await approve(case)
        if not decision.approved:
            return await close(case, outcome="rejected")
    await distribute(case, plan.distribution)
    await await_receipts(case)
    return await close(case)


@flow(name="gewerbeanmeldung", **FLOW_OPTIONS)
async def gewerbeanmeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeanmeldung (§ 14 GewO): consult the Ausländerbehörde where needed, a clerk approves
    erlaubnispflichtige Gewerbe, then every recipient of the routing gets its message."""
    return await run_procedure(message_uuid, "gewerbeanmeldung")


@flow(name="gewerbeummeldung", **FLOW_OPTIONS)
async def gewerbeummeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeummeldung: change of address or activity, distributed by the routing rules."""
    return await run_procedure(message_uuid, "gewerbeummeldung")


@flow(name="gewerbeabmeldung", **FLOW_OPTIONS)
async def gewerbeabmeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeabmeldung: the business is given up; every recipient is told."""
    return await run_procedure(message_uuid, "gewerbeabmeldung")
