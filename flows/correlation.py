"""Correlation: replies and notifications arriving at the city's inbox reach their procedures.

Prefect has no message correlation by key; this layer is ours. The journal keeps the expectations
(case ↔ flow run ↔ expected reply). When a message is accepted by the home agency's inbox the
hook made by :func:`make_inbox_hook` runs (after the commit, in the inbox process):

* a **reply** (its standard names the answered nachrichtenUUID, e.g. a Rückmeldung's ``bezug``) is
  matched to the waiting expectation; the waiting flow run is resumed with the reply's UUID as run
  input. A reply that arrives before the run waits is kept and taken when it does; a reply for no
  known case is kept (``amtsbote cases --unmatched``), never dropped.
* a **notification** (an XGewerbeanzeige for the home agency) starts its procedure: by default a
  Prefect event ``amtsbote.message.accepted`` that the deployments' triggers turn into a flow run,
  once per nachrichtenUUID (only newly stored messages emit, and intake is idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from connectors.directory import Directory
from connectors.journal import Direction, Journal

if TYPE_CHECKING:
    from .families.base import Started

__all__ = [
    "EVENT_ACCEPTED",
    "approve_case",
    "emit_accepted_event",
    "make_inbox_hook",
    "resume_with_retry",
    "start_decision",
]

log = logging.getLogger("amtsbote.correlation")
EVENT_ACCEPTED = "amtsbote.message.accepted"

NotificationHandler = Callable[[str, str], None]
"""``(nachrichten_uuid, procedure)`` → start that procedure."""


def start_decision(journal: Journal, record: Any, directory: Directory) -> Started:
    """Which procedure an accepted message for the home agency starts — asked of the families
    that speak its standard version, with the sender's directory roles — or why it starts none.
    A family registered later is asked first: a variant family (a plug-in) may take over part of
    the messages a built-in family would otherwise start."""
    from .families import all_families
    from .families.base import Started

    families = [f for f in all_families() if f.speaks(record.standard, record.version)]
    if not families:
        return Started(None, f"no procedure family speaks {record.standard} {record.version}")
    sender = directory.get(record.sender_agency) if record.sender_agency in directory else None
    payload = journal.payload(record.nachrichten_uuid, direction=Direction.INBOUND)
    reasons = []
    for family in reversed(families):
        started = family.start_for(record, sender, payload)
        if not started.refused:
            return started
        reasons.append(f"{family.name}: {started.reason}")
    return Started(None, "; ".join(reasons))


def emit_accepted_event(nachrichten_uuid: str, procedure: str) -> None:
    """The Prefect event the deployments' triggers listen for (ids only, no payload)."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT_ACCEPTED,
        resource={
            "prefect.resource.id": f"amtsbote.message.{nachrichten_uuid}",
            "amtsbote.nachrichten-uuid": nachrichten_uuid,
            "amtsbote.procedure": procedure,
        },
    )


def resume_with_retry(
    flow_run_id: str, run_input: dict[str, Any], *, attempts: int = 30, delay: float = 1.0
) -> bool:
    """Resume a paused/suspended run; when it is not paused yet (the reply overtook the run on
    its way into the wait) try again for a while. The run also re-checks the journal right
    before it waits, so a reply is never lost — this only saves a long wait."""
    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import resume_flow_run

    for _ in range(attempts):
        try:
            resume_flow_run(UUID(flow_run_id), run_input=run_input)
            return True
        except NotPausedError:
            time.sleep(delay)
        except FlowPauseTimeout:
            return False
        except Exception as exc:  # the server may be briefly away; keep trying
            log.warning("resume of flow run %s failed: %s", flow_run_id, type(exc).__name__)
            time.sleep(delay)
    return False


def _in_background(fn: Callable[..., Any], *args: Any) -> None:
    threading.Thread(target=fn, args=args, daemon=True, name="amtsbote-resume").start()


def make_inbox_hook(
    journal: Journal,
    *,
    home_agency_kennung: str,
    on_notification: NotificationHandler | None = emit_accepted_event,
    background: bool = True,
    directory: Directory | None = None,
) -> Callable[..., None]:
    """The ``on_accepted(record, info, created)`` hook for the home agency's inbox.

    A message that is no reply and is addressed to the home agency starts the procedure its
    family names for it (:func:`start_decision`); everything else — a standard no family
    speaks, a sender without the role, a message type that starts nothing — is refused: a
    ``case.refused`` event in the journal (the message stays kept, ``amtsbote cases
    --unmatched``), never a started procedure."""
    directory = directory or Directory.default()

    def on_accepted(record: Any, info: Any, created: bool) -> None:
        if not created:
            return
        uuid = record.nachrichten_uuid
        if getattr(record, "in_reply_to", None):
            expectation = journal.match_reply(uuid, actor="inbox")
            if expectation is None:
                log.info("reply %s kept unmatched (no waiting case)", uuid)
                return
            if expectation.in_reply_to:
                rule = rule_of_consultation(journal, expectation.in_reply_to)
                if rule is not None:
                    emit_reply_received(
                        expectation.in_reply_to,
                        reply_uuid=uuid,
                        rule=rule,
                        case_id=expectation.case_id,
                    )
            if expectation.flow_run_id:
                args = (expectation.flow_run_id, {"nachrichten_uuid": uuid})
                if background:
                    _in_background(resume_with_retry, *args)
                else:
                    resume_with_retry(*args)
            return
        if on_notification is None or record.reader != home_agency_kennung:
            return
        started = start_decision(journal, record, directory)
        if started.procedure is None:
            journal.log_event(
                "case.refused",
                actor="inbox",
                nachrichten_uuid=uuid,
                detail={
                    "reason": started.reason or "refused",
                    "sender": record.sender_agency,
                    "message_type": record.message_type,
                },
            )
            log.info("message %s starts no procedure: %s", uuid, started.reason)
            return
        on_notification(uuid, started.procedure)

    return on_accepted


def approve_case(
    journal: Journal,
    case_id: str,
    *,
    decision: str,
    reason: str = "ok",
    comment: str | None = None,
    via: str = "cli",
) -> bool:
    """What ``amtsbote approve`` does: record the decision in the journal (with the comment —
    never given to Prefect) and resume the waiting run with the decision as run input. Returns
    whether a waiting run was resumed (False: the run takes the decision when it gets there)."""
    from .blocks import Decision, recorded_decision
    from .runtime import get_runtime

    rt = get_runtime()
    case = journal.get_case(case_id)
    d = Decision(decision=decision, reason=reason, via=via)  # type: ignore[arg-type]
    existing = recorded_decision(rt, case_id)
    if existing is None:
        detail: dict[str, Any] = {"decision": decision, "reason": reason, "via": via}
        if comment:
            from .blocks import keep_comment

            keep_comment(rt, case_id, comment)
            detail["comment"] = True
        journal.log_event("case.decision", actor=via, case_id=case_id, detail=detail)
    elif existing.decision != d.decision:
        raise ValueError(f"case {case_id} was already decided: {existing.decision}")
    if not case.flow_run_id:
        return False
    return resume_with_retry(
        case.flow_run_id, {"decision": decision, "reason": reason, "via": via}, attempts=3
    )


# --------------------------------------------------------------------------- consultation events
# Emitted for the escalation automations of `amtsbote automations sync`
# (flows/operations/automations.py):
# ``amtsbote.consultation.sent`` not followed by ``amtsbote.reply.received`` for the same
# resource within the rule's ``reply_within`` runs the ``escalate`` deployment. Ids only.

EVENT_CONSULTATION_SENT = "amtsbote.consultation.sent"
EVENT_REPLY_RECEIVED = "amtsbote.reply.received"


def consultation_resource(sent_uuid: str) -> str:
    """The event resource id of a consultation: ``amtsbote.consultation.<sent nachrichtenUUID>``."""
    return f"amtsbote.consultation.{sent_uuid.lower()}"


def emit_consultation_sent(
    case_id: str, *, rule: str, recipient: str, nachrichten_uuid: str
) -> None:
    """A consultation message was sent and the case now waits for the recipient's reply.
    Call it from the consult block before it waits (again on a re-run: harmless, the deadline
    counts from the first event)."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT_CONSULTATION_SENT,
        resource={
            "prefect.resource.id": consultation_resource(nachrichten_uuid),
            "amtsbote.nachrichten-uuid": nachrichten_uuid.lower(),
            "amtsbote.case-id": case_id,
            "amtsbote.rule": rule,
            "amtsbote.recipient": recipient,
        },
    )


def emit_reply_received(
    in_reply_to: str, *, reply_uuid: str, rule: str, case_id: str | None = None
) -> None:
    """The reply to the consultation message ``in_reply_to`` (sent by routing rule ``rule``)
    arrived and was matched. Call it from the inbox hook after ``Journal.match_reply`` found the
    waiting expectation; :func:`rule_of_consultation` gives the rule. The rule is part of the event
    because the automation of each rule (its own ``reply_within``) only sees events labelled with
    its rule."""
    from prefect.events import emit_event

    resource = {
        "prefect.resource.id": consultation_resource(in_reply_to),
        "amtsbote.nachrichten-uuid": in_reply_to.lower(),
        "amtsbote.reply-uuid": reply_uuid.lower(),
        "amtsbote.rule": rule,
    }
    if case_id:
        resource["amtsbote.case-id"] = case_id
    emit_event(event=EVENT_REPLY_RECEIVED, resource=resource)


def rule_of_consultation(
    journal: Journal, sent_uuid: str, *, routing: Any = None, directory: Any = None
) -> str | None:
    """The consultation rule of the routing (default: ``Routing.default()``) that sent message
    ``sent_uuid``: same message type, same recipient, ``consult: true``; None if none."""
    from connectors.directory import Directory

    from .routing import Routing

    directory = directory or Directory.default()
    routing = routing or Routing.default(directory=directory)
    message = journal.get_message(sent_uuid, direction=Direction.OUTBOUND)
    for route in routing.rules:
        if (
            route.consult
            and route.message_type == message.message_type
            and directory.get(route.recipient).behoerdenkennung == message.reader
        ):
            return str(route.rule)
    return None


__all__ += [  # appended by the operations helper (issue 6), see flows/operations/automations.py
    "EVENT_CONSULTATION_SENT",
    "EVENT_REPLY_RECEIVED",
    "consultation_resource",
    "emit_consultation_sent",
    "emit_reply_received",
    "rule_of_consultation",
]
