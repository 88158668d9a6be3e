"""``intake``: validate the start message, check it fits the procedure, open (or find) the case."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

import xoev
from connectors.journal import Direction

from ..exceptions import CaseError, IntakeRejected
from ..families import UnknownFamilyError, family_for_procedure
from ..families.base import Facts
from ..runtime import get_runtime
from .common import CaseRef, flow_run_id, rename_run, run_is_active

__all__ = ["intake"]


async def intake(message_uuid: str, procedure: str) -> CaseRef:
    """Parse and validate the start message (kept in the journal by the inbox), check with the
    procedure's family that it fits the procedure, and open its case — or find the case a
    previous run opened for it.

    The run gets its name from :func:`~flows.blocks.check` (``<procedure>-<case id>``, one
    update for name and tags); a run whose intake fails is named ``<procedure>-<message
    uuid>`` here, so that the failed run is found by the message."""
    try:
        return await _intake(message_uuid, procedure)
    except Exception:
        with contextlib.suppress(Exception):
            await rename_run(f"{procedure}-{message_uuid}", [procedure])
        raise


async def _intake(message_uuid: str, procedure: str) -> CaseRef:
    try:
        family_for_procedure(procedure)
    except UnknownFamilyError as exc:
        raise CaseError(None, str(exc), step="intake") from None
    case, created, facts, ref = await asyncio.to_thread(
        _open_case, message_uuid, procedure, flow_run_id()
    )
    rt = get_runtime()
    if not created and case.flow_run_id and case.flow_run_id != flow_run_id():
        if await run_is_active(case.flow_run_id):
            raise IntakeRejected(
                message_uuid, f"case {case.case_id} is being handled by flow run {case.flow_run_id}"
            )
        await asyncio.to_thread(
            rt.journal.update_case,
            case.case_id,
            flow_run_id=flow_run_id(),
            actor="intake",
            detail={"rerun_of": case.flow_run_id},
        )
    get_run_logger().info(
        "case %s %s for message %s", case.case_id, "opened" if created else "resumed", message_uuid
    )
    return CaseRef(case.case_id, procedure, message_uuid, facts, ref)


def _open_case(
    message_uuid: str, procedure: str, run_id: str | None
) -> tuple[Any, bool, Facts, dict[str, Any]]:
    rt = get_runtime()
    family = family_for_procedure(procedure)
    payload = rt.journal.payload(message_uuid, direction=Direction.INBOUND)
    report = xoev.validate(payload, source=f"message {message_uuid}")
    if not report.ok:
        rt.journal.log_event(
            "case.rejected",
            actor="intake",
            nachrichten_uuid=message_uuid,
            detail={"findings": [f.rule for f in report.findings]},
        )
        raise IntakeRejected(
            message_uuid,
            "the message has findings",
            findings=[str(f) for f in report.findings],
        )
    if not family.speaks(report.standard, report.version):
        raise IntakeRejected(
            message_uuid,
            f"{report.standard} {report.version} is not spoken by the {family.name} family "
            f"({', '.join(f'{s} {v}' for s, v in family.standards)})",
        )
    try:
        facts, ref = family.open_check(payload, procedure)
    except ValueError as exc:
        raise IntakeRejected(message_uuid, str(exc)) from None
    case, created = rt.journal.open_case_for_message(
        message_uuid,
        procedure=procedure,
        prefix=f"{rt.home.kennung}-{datetime.now(UTC).year}-",
        flow_run_id=run_id,
        summary={"facts": facts.summary(), **({"ref": ref} if ref else {})},
        actor="intake",
    )
    if case.procedure != procedure:
        raise IntakeRejected(
            message_uuid, f"already handled by case {case.case_id} ({case.procedure})"
        )
    return case, created, facts, ref
