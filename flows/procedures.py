"""The Gewerbe procedures of the Stadt Paderborn, composed from :mod:`flows.blocks`.

One flow run per case; the run is named after the case (``gewerbeanmeldung-05774032-2026-000123``)
and tagged with the procedure and the agencies involved. The only parameter is the nachrichtenUUID
of the notification the city's inbox accepted — the payload stays in the journal.

A new procedure is a new composition of the same blocks, e.g.::

    @flow(name="gaststaettenerlaubnis")
    async def gaststaettenerlaubnis(message_uuid: str) -> dict:
        case = await intake(message_uuid, "gaststaettenerlaubnis")
        ...
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow

from connectors.journal import DeliveryState, Direction
from flows.blocks import (
    CaseRef,
    approve,
    await_receipts,
    check,
    close,
    consult,
    distribute,
    finish_case,
    intake,
    publish_case_artifacts,
    send_all,
)
from flows.runtime import get_runtime

__all__ = ["gewerbeabmeldung", "gewerbeanmeldung", "gewerbeummeldung", "redeliver", "run_procedure"]


async def run_procedure(message_uuid: str, procedure: str) -> dict[str, Any]:
    """The shared composition: intake → check → consult → approve → distribute → receipts → close.

    A consultation whose answer is not ``01`` (keine Bedenken) makes a clerk's approval necessary
    even where routing does not ask for one."""
    case: CaseRef = await intake(message_uuid, procedure)
    plan = await check(case)
    needs_approval = plan.needs_approval
    for route in plan.consultations:
        ergebnis = await consult(case, route)
        if ergebnis != "01":
            needs_approval = True
    if needs_approval:
        decision = await approve(case)
        if not decision.approved:
            return await close(case, outcome="rejected")
    await distribute(case, plan.distribution)
    await await_receipts(case)
    return await close(case)


# Results are never persisted (payloads and facts stay in the journal). An explicit result
# storage spares every run the server lookup of a default storage; with persist_result=False
# nothing is ever written there.
_NO_RESULTS = Path(tempfile.gettempdir()) / "amtsbote-no-results"
_FLOW_OPTIONS: dict[str, Any] = {
    "persist_result": False,
    "result_storage": _NO_RESULTS,
    "log_prints": False,
    "validate_parameters": True,
}


@flow(name="gewerbeanmeldung", flow_run_name="gewerbeanmeldung-{message_uuid}", **_FLOW_OPTIONS)
async def gewerbeanmeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeanmeldung (§ 14 GewO): consult the Ausländerbehörde where needed, a clerk approves
    erlaubnispflichtige Gewerbe, then every recipient of the routing gets its message."""
    return await run_procedure(message_uuid, "gewerbeanmeldung")


@flow(name="gewerbeummeldung", flow_run_name="gewerbeummeldung-{message_uuid}", **_FLOW_OPTIONS)
async def gewerbeummeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeummeldung: change of address or activity, distributed by the routing rules."""
    return await run_procedure(message_uuid, "gewerbeummeldung")


@flow(name="gewerbeabmeldung", flow_run_name="gewerbeabmeldung-{message_uuid}", **_FLOW_OPTIONS)
async def gewerbeabmeldung(message_uuid: str) -> dict[str, Any]:
    """Gewerbeabmeldung: the business is given up; every recipient is told."""
    return await run_procedure(message_uuid, "gewerbeabmeldung")


PROCEDURES = {
    "gewerbeanmeldung": gewerbeanmeldung,
    "gewerbeummeldung": gewerbeummeldung,
    "gewerbeabmeldung": gewerbeabmeldung,
}


@flow(name="redeliver", flow_run_name="redeliver-{case_id}", **_FLOW_OPTIONS)
async def redeliver(case_id: str | None = None, all_dead: bool = False) -> list[dict[str, Any]]:
    """Re-drive dead letters (same nachrichtenUUID; the receiver deduplicates) of one case or of
    all cases, then close every case whose deliveries are now all acknowledged."""
    if not case_id and not all_dead:
        raise ValueError("give a case_id or all_dead=True")
    rt = get_runtime()
    dead = rt.journal.deliveries(
        case_id=case_id, state=DeliveryState.DEAD, direction=Direction.OUTBOUND
    )
    requeued = [rt.journal.transition(d.id, DeliveryState.CREATED, actor="redeliver") for d in dead]
    await send_all(requeued)
    summaries = []
    for cid in sorted({d.case_id for d in dead if d.case_id}):
        summary = finish_case(rt, cid, actor="redeliver")
        await publish_case_artifacts(rt, cid)
        summaries.append(summary)
    return summaries
