"""The operations flows the automations start: ``recover`` (a crashed run) and ``escalate``
(a missing reply) (:mod:`flows.operations`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger

from flows.operations.common import log

__all__ = [
    "escalate",
    "recover",
]


def _uuid_of(value: str) -> str:
    """The UUID at the end of a resource id (``prefect.flow-run.<uuid>``) or the UUID itself."""
    return value.strip().rsplit(".", 1)[-1]


@flow(name="recover", flow_run_name="recover-{flow_run}", persist_result=False, log_prints=False)
async def recover(flow_run: str, max_crashes: int = 3) -> str:
    """Reschedule a crashed flow run of a deployment (same run, same parameters); its blocks ask
    the journal first, so nothing done before the crash is done twice. Gives up (and says so in
    the journal and the log) after ``max_crashes`` crashes. Returns what was done."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    logger = get_run_logger()
    run_id = UUID(_uuid_of(flow_run))
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        if run.state is None or run.state.type is not StateType.CRASHED:
            logger.info(
                "flow run %s is %s, not crashed: nothing to do",
                run_id,
                run.state.name if run.state else "without state",
            )
            return "not-crashed"
        if run.deployment_id is None:
            logger.warning("flow run %s has no deployment: cannot be rescheduled", run_id)
            return "no-deployment"
        crashes = sum(
            1 for s in await client.read_flow_run_states(run_id) if s.type is StateType.CRASHED
        )
        outcome = "rescheduled"
        if crashes > max_crashes:
            outcome = "gave-up"
            logger.error(
                "flow run %s crashed %d times: not rescheduled again; look at its logs "
                "and re-run it by hand",
                run_id,
                crashes,
            )
        else:
            await client.set_flow_run_state(
                run_id,
                Scheduled(
                    name="Recovering", message=f"rescheduled after crash {crashes} by recover"
                ),
                force=True,
            )
            logger.info("flow run %s rescheduled after crash %d", run_id, crashes)
    _journal_note(
        str(run_id),
        "case.recovery",
        {"flow_run": str(run_id), "crashes": crashes, "outcome": outcome},
    )
    return outcome


def _journal_note(flow_run_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Best effort: an event on the case(s) of a flow run (the journal is the record)."""
    try:
        from flows.runtime import get_runtime

        rt = get_runtime()
        for case in rt.journal.list_cases(flow_run_id=flow_run_id):
            rt.journal.log_event(kind, actor="operations", case_id=case.case_id, detail=detail)
    except Exception as exc:  # the journal may be another installation's; never fail on it
        log.warning(
            "journal note %s for flow run %s failed: %s", kind, flow_run_id, type(exc).__name__
        )


@flow(
    name="escalate", flow_run_name="escalate-{consultation}", persist_result=False, log_prints=False
)
async def escalate(consultation: str) -> dict[str, Any]:
    """A consultation's reply deadline passed. When the journal still waits for the reply,
    record ``case.escalated`` and publish a markdown artifact; otherwise (the reply came, the
    events crossed) record nothing. Returns ``{"case_id", "outcome", …}`` (ids only)."""
    from prefect.artifacts import acreate_markdown_artifact

    from connectors.exceptions import JournalNotFoundError
    from connectors.journal import Direction
    from flows.runtime import get_runtime

    logger = get_run_logger()
    sent_uuid = _uuid_of(consultation)
    rt = get_runtime()
    try:
        message = rt.journal.get_message(sent_uuid, direction=Direction.OUTBOUND)
    except JournalNotFoundError:
        logger.warning(
            "message %s is not in this installation's journal: nothing to escalate", sent_uuid
        )
        return {"case_id": None, "outcome": "unknown-message", "nachrichten_uuid": sent_uuid}
    case_id = message.case_id
    if not case_id:
        logger.warning("message %s belongs to no case: nothing to escalate", sent_uuid)
        return {"case_id": None, "outcome": "no-case", "nachrichten_uuid": sent_uuid}
    waiting = [
        x
        for x in rt.journal.expectations(case_id=case_id)
        if x.in_reply_to == sent_uuid and x.state.value == "waiting"
    ]
    if not waiting:
        logger.info(
            "case %s: the reply to %s is there (or no longer expected): no escalation",
            case_id,
            sent_uuid,
        )
        return {"case_id": case_id, "outcome": "answered", "nachrichten_uuid": sent_uuid}
    x = waiting[0]
    detail = {
        "nachrichten_uuid": sent_uuid,
        "from_agency": x.from_agency,
        "waiting_since": x.created_at.isoformat(),
        "expires_at": x.expires_at.isoformat() if x.expires_at else None,
    }
    rt.journal.log_event(
        "case.escalated",
        actor="escalate",
        case_id=case_id,
        nachrichten_uuid=sent_uuid,
        detail=detail,
    )
    logger.warning(
        "case %s: no reply from %s to %s since %s — escalated",
        case_id,
        x.from_agency,
        sent_uuid,
        detail["waiting_since"],
    )
    key = "escalation-" + "".join(ch if ch.isalnum() else "-" for ch in case_id.lower())
    await acreate_markdown_artifact(
        key=key,
        description=f"Escalation of case {case_id}",
        markdown=(
            f"# Case {case_id}: reply overdue\n\n| | |\n|---|---|\n"
            f"| message | {sent_uuid} |\n| expected from | {x.from_agency} |\n"
            f"| waiting since | {detail['waiting_since']} |\n"
        ),
    )
    return {"case_id": case_id, "outcome": "escalated", **detail}
