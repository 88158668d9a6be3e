"""``approve``: the human step — a clerk's decision in the Prefect UI form or by the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import get_run_logger

from connectors.journal import CaseStatus

from ..runtime import Runtime, get_runtime
from .common import ApprovalInput, CaseRef, Decision, wait_for_input

__all__ = ["approve", "keep_comment", "record_decision", "recorded_decision"]


def recorded_decision(rt: Runtime, case_id: str) -> Decision | None:
    events = rt.journal.events(case_id=case_id, kind="case.decision")
    if not events:
        return None
    d = events[-1].detail
    return Decision(
        decision=d["decision"], reason=d.get("reason", "ok"), via=d.get("via", "journal")
    )


def record_decision(
    rt: Runtime, case_id: str, decision: Decision, *, actor: str, comment: str | None = None
) -> Decision:
    """Write the decision to the journal (the only place a clerk's comment is kept)."""
    existing = recorded_decision(rt, case_id)
    if existing is not None:
        return existing
    detail: dict[str, Any] = {
        "decision": decision.decision,
        "reason": decision.reason,
        "via": decision.via,
    }
    if comment:
        keep_comment(rt, case_id, comment)
        detail["comment"] = True
    rt.journal.log_event("case.decision", actor=actor, case_id=case_id, detail=detail)
    return decision


def keep_comment(rt: Runtime, case_id: str, comment: str) -> None:
    """A clerk's comment may name people: it goes to the case summary (removed by retention,
    never to Prefect), the immutable event log only records that there is one."""
    case = rt.journal.get_case(case_id)
    summary = dict(case.summary)
    summary["comments"] = [*summary.get("comments", []), comment[:500]]
    rt.journal.update_case(case_id, summary=summary, actor="approve")


async def approve(case: CaseRef, *, deadline: timedelta | None = None) -> Decision:
    """Human step. Waits (deadline: routing ``approval.deadline``) for a clerk's decision given in
    the Prefect UI form or with ``amtsbote approve CASE``; a decision already in the journal
    (given before the run waited, or before a resume) is taken as it is."""
    rt = get_runtime()
    decision = recorded_decision(rt, case.case_id)
    if decision is None:
        rt.journal.update_case(
            case.case_id,
            status=CaseStatus.WAITING,
            actor="approve",
            detail={"waiting_for": "approval"},
        )
        get_run_logger().info(
            "case %s waits for approval (amtsbote approve %s --decision approve|reject)",
            case.case_id,
            case.case_id,
        )
        try:
            routing = rt.routing_for(case.family.name)
            answer = await wait_for_input(
                ApprovalInput, key="approval", timeout=deadline or routing.approval_deadline
            )
        except Exception:
            decision = recorded_decision(rt, case.case_id)  # given while we were not looking
            if decision is None:
                raise
        else:
            decision = record_decision(
                rt,
                case.case_id,
                Decision(decision=answer.decision, reason=answer.reason, via=answer.via),
                actor=answer.via,
            )
        rt.journal.update_case(
            case.case_id,
            status=CaseStatus.OPEN,
            actor="approve",
            detail={"decision": decision.decision},
        )
    get_run_logger().info(
        "case %s: %s (%s, via %s)", case.case_id, decision.decision, decision.reason, decision.via
    )
    return decision
