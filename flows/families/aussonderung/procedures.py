"""The Aussonderung procedures of the Stadt Paderborn, composed from :mod:`flows.blocks`.

Four-stage (``aussonderung``)::

    intake → check → exchange 0501 (waits for 0504, 0502) → appraised (evidence, artifact)
           → distribute 0505 → approve (records manager) → exchange 0503 (waits for 0507, 0506)
           → imported + released for deletion (evidence) → close

Two-stage (``aussonderung-zweistufig``): intake → check → exchange 0503 → imported → close.

One flow run per case, the only parameter the start message's journal key; the run shows record
IDs and counts only. Waits of weeks suspend the run (the worker is freed); the deadlines are the
routing's ``reply_within: N working days``; a reply that is late fails the case, and the
escalation automation (prefect.yaml) reminds and escalates as for any consultation.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from connectors.journal import CaseStatus
from flows.blocks import (
    FLOW_OPTIONS,
    CaseRef,
    approve,
    await_receipts,
    check,
    close,
    distribute,
    exchange,
    intake,
)
from flows.exceptions import CaseError
from flows.families.aussonderung import evidence
from flows.families.aussonderung.family import type_code
from flows.routing import Route
from flows.runtime import get_runtime

__all__ = ["aussonderung", "aussonderung_zweistufig", "run_aussonderung"]


@task(name="appraised", cache_policy=NO_CACHE, persist_result=False)
async def appraised(case: CaseRef) -> dict[str, int]:
    """Keep the archive's appraisal as evidence and show it (IDs only) for the approval."""
    rt = get_runtime()
    ids = await asyncio.to_thread(evidence.appraised, rt, case.case_id, _pid(case))
    effective = ids["effective"]
    rows = [{"id": i, "appraisal": art} for art, xs in effective.items() for i in xs]
    await acreate_table_artifact(
        key=f"appraisal-{case.case_id.lower()}",
        table=rows,
        description=f"Appraisal of {case.case_id} by the archive (0502): record IDs only",
    )
    return {art: len(xs) for art, xs in effective.items()}


@task(name="imported", cache_policy=NO_CACHE, persist_result=False)
async def imported(case: CaseRef) -> dict[str, int]:
    """Keep the 0503's contents and the archive's import confirmation (0506, with archive
    signatures) as evidence and release the records for deletion."""
    rt = get_runtime()
    pid = _pid(case)
    await asyncio.to_thread(evidence.transferred, rt, case.case_id, pid)
    kassabel: list[str] = []
    if case.procedure == "aussonderung":
        appraisal = await asyncio.to_thread(evidence.appraised, rt, case.case_id, pid)
        kassabel = appraisal["effective"]["kassabel"]
    release = await asyncio.to_thread(evidence.imported, rt, case.case_id, pid, kassabel=kassabel)
    if release["not_imported"]:
        await asyncio.to_thread(
            rt.journal.update_case,
            case.case_id,
            status=CaseStatus.FAILED,
            actor="imported",
            detail={
                "reason": "the archive did not import every record",
                "not_imported": release["not_imported"],
            },
        )
        raise CaseError(
            case.case_id, f"the archive did not import {release['not_imported']}", step="imported"
        )
    return {k: len(v) for k, v in release.items()}


def _pid(case: CaseRef) -> str:
    """The case's ProzessID (its facts are :class:`AussonderungFacts`)."""
    process_id: str = case.facts.process_id  # type: ignore[attr-defined]  # AussonderungFacts
    return process_id


def _route(case: CaseRef, routes: tuple[Route, ...], code: str) -> Route:
    for r in routes:
        if type_code(r.message_type) == code:
            return r
    raise CaseError(
        case.case_id, f"the Aussonderung routing has no rule for xdomea {code}", step="check"
    )


async def run_aussonderung(message_uuid: str, procedure: str) -> dict[str, Any]:
    case: CaseRef = await intake(message_uuid, procedure)
    plan = await check(case)
    routes = (*plan.consultations, *plan.distribution)
    if procedure == "aussonderung":
        await exchange(case, _route(case, routes, "0501"))
        counts = await appraised(case)
        confirmed = await distribute(case, [_route(case, routes, "0505")])
        if any(o.state == "dead" for o in confirmed):
            raise CaseError(
                case.case_id, "the confirmation (0505) could not be delivered", step="distribute"
            )
        if not counts.get("archivwuerdig"):
            rt = get_runtime()
            kassabel = (await asyncio.to_thread(evidence.appraised, rt, case.case_id, _pid(case)))[
                "effective"
            ]["kassabel"]
            await asyncio.to_thread(evidence.released_kassabel, rt, case.case_id, kassabel)
            await await_receipts(case)
            return await close(case, outcome="nothing-archivwuerdig")
        if plan.needs_approval:
            decision = await approve(case)
            if not decision.approved:
                return await close(case, outcome="rejected")
    await exchange(case, _route(case, routes, "0503"))
    await imported(case)
    await await_receipts(case)
    return await close(case, outcome="archived")


@flow(name="aussonderung", **FLOW_OPTIONS)
async def aussonderung(message_uuid: str) -> dict[str, Any]:
    """Four-stage Aussonderung: offer (0501), appraisal (0504, 0502), confirmation (0505), the
    records manager's approval, handover of what is archivwürdig (0503), receipt and import
    (0507, 0506), release for deletion."""
    return await run_aussonderung(message_uuid, "aussonderung")


@flow(
    name="aussonderung-zweistufig",
    **FLOW_OPTIONS,
)
async def aussonderung_zweistufig(message_uuid: str) -> dict[str, Any]:
    """Two-stage Aussonderung: handover (0503) directly, receipt and import (0507, 0506)."""
    return await run_aussonderung(message_uuid, "aussonderung-zweistufig")
