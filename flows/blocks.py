"""Building blocks of the Gewerbe procedures: one small task per step, composed by a flow.

========================  ==================================================================
block                     what it does
========================  ==================================================================
:func:`intake`            parse + validate the notification, open (or find) its case
:func:`check`             business facts → plan: approval? consultations? recipients
:func:`approve`           human step: wait for a clerk's decision (Prefect form or CLI)
:func:`consult`           send to an agency and wait for its Rückmeldung
:func:`distribute`        one message per recipient (data-minimised), sent concurrently
:func:`await_receipts`    wait until every delivery is acknowledged (mailbox: fetched)
:func:`close`             summary, artifacts, final case status
========================  ==================================================================

Idempotency is ours, not Prefect's: every block asks the journal first. A message's
nachrichtenUUID is derived from (case, rule) and fixed when it is first recorded in the outbox, so a
retried task, a resumed or a re-run flow never sends a message twice under a new UUID, and the
receiving inbox deduplicates by that UUID. No Prefect cache policy is used (``NO_CACHE``) and no
result is persisted: parameters, results, logs and artifacts carry case ids, UUIDs, agency ids and
the pseudonymised :class:`~flows.routing.CaseFacts` only — payloads stay in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input import RunInput
from pydantic import Field

import xoev
from connectors.journal import CaseStatus, DeliveryRecord, DeliveryState, Direction, MessageMeta
from connectors.senders import OutgoingMessage, SendError, retry_condition
from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
from xoev.rueckmeldung import v1_0 as rueckmeldung
from xoev.xgewerbeanzeige import v2_2

from .exceptions import CaseError, IntakeRejected
from .routing import CaseFacts, Route
from .runtime import Runtime, get_runtime

__all__ = [
    "PROCEDURE_KIND",
    "ApprovalInput",
    "CaseRef",
    "Decision",
    "Plan",
    "ReplyInput",
    "approve",
    "await_receipts",
    "check",
    "close",
    "consult",
    "distribute",
    "intake",
    "message_uuid_for",
    "send_delivery",
]

#: Procedure name → the Meldungsart its notifications carry.
PROCEDURE_KIND = {
    "gewerbeanmeldung": "anmeldung",
    "gewerbeummeldung": "ummeldung",
    "gewerbeabmeldung": "abmeldung",
}
_UUID_NAMESPACE = uuid.UUID("5b0f3b8e-2f0a-4d8e-9a55-0a7c1e0b7a11")
ACKNOWLEDGED = frozenset({DeliveryState.DELIVERED, DeliveryState.FETCHED})


def message_uuid_for(notification_uuid: str, rule: str) -> str:
    """The nachrichtenUUID of the message of ``rule`` for the case opened by the notification
    ``notification_uuid``: the same on every retry, resume and re-run (UUID v5), and as unique
    as the notification's own UUID — case ids restart in every journal, notification UUIDs do
    not. It is fixed in the outbox when the message is first recorded."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{notification_uuid.lower()}/{rule}"))


# --------------------------------------------------------------------------- records passed on


@dataclass(frozen=True, slots=True)
class CaseRef:
    """What flows between blocks: ids and non-personal facts only."""

    case_id: str
    procedure: str
    message_uuid: str
    facts: CaseFacts


@dataclass(frozen=True, slots=True)
class Plan:
    needs_approval: bool
    consultations: tuple[Route, ...]
    distribution: tuple[Route, ...]

    @property
    def agencies(self) -> list[str]:
        return sorted({r.recipient for r in (*self.consultations, *self.distribution)})


@dataclass(frozen=True, slots=True)
class Decision:
    decision: Literal["approve", "reject"]
    reason: str = "ok"
    via: str = "journal"

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


class ApprovalInput(RunInput):
    """The form a clerk fills in the Prefect UI (no free text: run inputs are stored in Prefect,
    personal data must not be; a comment goes to the journal via ``amtsbote approve --comment``)."""

    decision: Literal["approve", "reject"] = Field(description="approve or reject the case")
    reason: Literal["ok", "permit-missing", "incomplete", "not-permitted", "other"] = Field(
        default="ok", description="reason code"
    )
    via: str = Field(default="prefect-ui", description="where the decision was taken")


class ReplyInput(RunInput):
    """Handed in by the correlation layer when a Rückmeldung for this run arrives."""

    nachrichten_uuid: str = Field(
        description="nachrichtenUUID of the reply (payload in the journal)"
    )


@dataclass(slots=True)
class DeliveryOutcome:
    delivery_id: int
    recipient: str
    nachrichten_uuid: str
    state: str
    attempts: int
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


async def _rename_run(name: str, tags: list[str] | None = None) -> None:
    """Name the flow run after its case and tag it (the journal is the record; this is for
    operators in the UI). Uses the run's own API client."""
    ctx = FlowRunContext.get()
    if not ctx or not ctx.flow_run or ctx.client is None:
        return
    merged = sorted(set(ctx.flow_run.tags or []) | set(tags or []))
    await ctx.client.update_flow_run(ctx.flow_run.id, name=name, tags=merged)  # type: ignore[misc]
    ctx.flow_run.tags = merged


async def _run_is_active(flow_run_id: str) -> bool:
    """Whether another flow run still works on a case (then a second run for the same
    notification must not): scheduled, pending, running, paused or suspended."""
    from prefect.client.orchestration import get_client

    ctx = FlowRunContext.get()
    try:
        if ctx is not None and ctx.client is not None:
            run = await ctx.client.read_flow_run(uuid.UUID(flow_run_id))  # type: ignore[misc]
        else:
            async with get_client() as client:
                run = await client.read_flow_run(uuid.UUID(flow_run_id))
    except Exception:
        return False
    return run.state is not None and not run.state.is_final()


def _behoerde(rt: Runtime, agency_id: str) -> Behoerde:
    agency = rt.directory.get(agency_id)
    return Behoerde(
        behoerdenkennung=Behoerdenkennung.from_string(agency.behoerdenkennung),
        behoerdenname=agency.name,
    )


async def wait_for_input(model: type[RunInput], *, key: str, timeout: timedelta) -> Any:
    """Wait for a run input: suspend (the worker is freed; a resume re-runs the flow, whose blocks
    are journal-idempotent) for runs of a deployment, pause in-process otherwise."""
    rt = get_runtime()
    ctx = FlowRunContext.get()
    seconds = max(1, int(timeout.total_seconds()))
    if rt.settings.suspend and ctx and ctx.flow_run and ctx.flow_run.deployment_id:
        return await asuspend_flow_run(wait_for_input=model, key=key, timeout=seconds)
    return await apause_flow_run(
        wait_for_input=model,
        key=key,
        timeout=seconds,
        poll_interval=max(1, int(rt.settings.poll_interval)),
    )


# --------------------------------------------------------------------------- intake


@task(name="intake", cache_policy=NO_CACHE, persist_result=False)
async def intake(message_uuid: str, procedure: str) -> CaseRef:
    """Parse and validate the notification (kept in the journal by the inbox), check it fits the
    procedure, and open its case — or find the case a previous run opened for it."""
    if procedure not in PROCEDURE_KIND:
        raise CaseError(None, f"unknown procedure {procedure!r}", step="intake")
    case, created, facts = await asyncio.to_thread(
        _open_case, message_uuid, procedure, _flow_run_id()
    )
    rt = get_runtime()
    if not created and case.flow_run_id and case.flow_run_id != _flow_run_id():
        if await _run_is_active(case.flow_run_id):
            raise IntakeRejected(
                message_uuid, f"case {case.case_id} is being handled by flow run {case.flow_run_id}"
            )
        await asyncio.to_thread(
            rt.journal.update_case,
            case.case_id,
            flow_run_id=_flow_run_id(),
            actor="intake",
            detail={"rerun_of": case.flow_run_id},
        )
    get_run_logger().info(
        "case %s %s for message %s", case.case_id, "opened" if created else "resumed", message_uuid
    )
    return CaseRef(case.case_id, procedure, message_uuid, facts)


def _open_case(
    message_uuid: str, procedure: str, flow_run_id: str | None
) -> tuple[Any, bool, CaseFacts]:
    rt = get_runtime()
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
            "the notification has findings",
            findings=[str(f) for f in report.findings],
        )
    if report.standard != "XGewerbeanzeige":
        raise IntakeRejected(message_uuid, f"not a Gewerbeanzeige but {report.standard}")
    model = v2_2.parse(payload)
    facts = CaseFacts.from_message(model)
    if facts.meldungsart != PROCEDURE_KIND[procedure]:
        raise IntakeRejected(message_uuid, f"a {facts.meldungsart} cannot start {procedure}")
    home = rt.home
    case, created = rt.journal.open_case_for_message(
        message_uuid,
        procedure=procedure,
        prefix=f"{home.kennung}-{datetime.now(UTC).year}-",
        flow_run_id=flow_run_id,
        summary={"facts": facts.summary()},
        actor="intake",
    )
    if case.procedure != procedure:
        raise IntakeRejected(
            message_uuid, f"already handled by case {case.case_id} ({case.procedure})"
        )
    return case, created, facts


# --------------------------------------------------------------------------- check


@task(name="check", cache_policy=NO_CACHE, persist_result=False)
async def check(case: CaseRef) -> Plan:
    """Apply the routing rules to the case's facts: approval? whom to consult? whom to tell?"""
    rt = get_runtime()
    routes = rt.routing.route(case.facts)
    plan = Plan(
        needs_approval=rt.routing.needs_approval(case.facts),
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
    await _rename_run(
        f"{case.procedure}-{case.case_id}",
        [case.procedure, *(f"agency:{a}" for a in plan.agencies)],
    )
    return plan


# --------------------------------------------------------------------------- approve


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
        _keep_comment(rt, case_id, comment)
        detail["comment"] = True
    rt.journal.log_event("case.decision", actor=actor, case_id=case_id, detail=detail)
    return decision


def _keep_comment(rt: Runtime, case_id: str, comment: str) -> None:
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
            answer = await wait_for_input(
                ApprovalInput, key="approval", timeout=deadline or rt.routing.approval_deadline
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


# --------------------------------------------------------------------------- outbox and sending


@task(name="prepare-messages", cache_policy=NO_CACHE, persist_result=False)
async def prepare_messages(case: CaseRef, routes: list[Route]) -> list[DeliveryRecord]:
    """Build and record (outbox) one message per route; existing ones are taken as recorded."""
    return await asyncio.to_thread(_prepare, case, routes)


def _prepare(case: CaseRef, routes: list[Route]) -> list[DeliveryRecord]:
    rt = get_runtime()
    inbound: v2_2.Gewerbemeldung | None = None
    out: list[DeliveryRecord] = []
    for route in routes:
        msg_uuid = message_uuid_for(case.message_uuid, route.rule)
        existing = rt.journal.deliveries(nachrichten_uuid=msg_uuid, direction=Direction.OUTBOUND)
        if existing:
            out.extend(existing)
            continue
        if inbound is None:
            inbound = v2_2.parse(rt.journal.payload(case.message_uuid, direction=Direction.INBOUND))
        kopf = Nachrichtenkopf.neu(
            nachrichtentyp=route.message_type.rsplit(".", 1)[-1],
            leser=_behoerde(rt, route.recipient),
            autor=_behoerde(rt, rt.home.id),
            nachrichten_uuid=msg_uuid,
        )
        msg = v2_2.build_for(inbound, route.message_type, kopf=kopf)
        payload = v2_2.build(msg)  # validated against the XSD and the rules (default)
        meta = MessageMeta(
            nachrichten_uuid=msg_uuid,
            standard="XGewerbeanzeige",
            version="2.2",
            message_type=route.message_type,
            author=rt.home.behoerdenkennung,
            reader=rt.directory.get(route.recipient).behoerdenkennung,
            created_at=kopf.erstellungszeitpunkt,
        )
        _, deliveries, _ = rt.journal.record_outbound(
            payload,
            meta,
            recipients=[route.recipient],
            case_id=case.case_id,
            sender_agency=rt.home.id,
            actor=f"rule:{route.rule}",
        )
        out.extend(deliveries)
    return out


@task(
    name="send",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=retry_condition,
    task_run_name="send-{delivery_id}",
)
async def send_delivery(delivery_id: int) -> DeliveryOutcome:
    """Send one delivery; a transient error is retried (delays from ``FlowSettings``), every attempt
    is recorded. Already acknowledged deliveries are not sent again. The request holds a slot of
    the recipient's global limits (:func:`flows.operations.agency_slot`): no agency receives more
    than its ``concurrency`` and ``rate_limit`` across all workers."""
    from .operations import agency_slot

    rt = get_runtime()
    d, payload = await asyncio.to_thread(_load_delivery, delivery_id)
    if payload is None:
        return DeliveryOutcome(d.id, d.recipient, d.nachrichten_uuid, d.state.value, d.attempts)
    sender = rt.sender(d.recipient)
    # at most the recipient's concurrency/rate across all workers: Prefect global limits
    # agency-<id> and agency-<id>-rate (`amtsbote limits sync`, flows/operations.py)
    async with agency_slot(d.recipient):
        started = time.perf_counter()
        try:
            receipt = await sender.asend(
                OutgoingMessage(
                    payload=payload,
                    nachrichten_uuid=d.nachrichten_uuid,
                    recipient=d.recipient,
                    sender=rt.home.id,
                )
            )
        except SendError as exc:
            ms = int((time.perf_counter() - started) * 1000)
            await asyncio.to_thread(
                rt.journal.record_attempt,
                d.id,
                ok=False,
                status_code=exc.status_code,
                error_class=type(exc).__name__,
                error=str(exc)[:500],
                duration_ms=ms,
                new_state=DeliveryState.FAILED,
            )
            raise
    ms = int((time.perf_counter() - started) * 1000)
    d = await asyncio.to_thread(
        rt.journal.record_attempt,
        d.id,
        ok=True,
        status_code=202,
        duration_ms=ms,
        new_state=DeliveryState.DELIVERED,
    )
    return DeliveryOutcome(
        d.id,
        d.recipient,
        d.nachrichten_uuid,
        d.state.value,
        d.attempts,
        meta={"receipt_state": receipt.state},
    )


def _load_delivery(delivery_id: int) -> tuple[DeliveryRecord, bytes | None]:
    """The delivery and its payload; no payload when there is nothing (more) to send."""
    rt = get_runtime()
    d = rt.journal.get_delivery(delivery_id)
    if d.state in ACKNOWLEDGED or d.state is DeliveryState.DEAD:
        return d, None
    return d, rt.journal.payload(d.nachrichten_uuid, direction=Direction.OUTBOUND)


async def send_all(deliveries: list[DeliveryRecord]) -> list[DeliveryOutcome]:
    """Send concurrently; a delivery whose retries are exhausted (or that failed permanently)
    becomes a dead letter (``amtsbote redeliver``)."""
    rt = get_runtime()
    delays = list(rt.settings.retry_delays)
    sender_task = send_delivery.with_options(retries=len(delays), retry_delay_seconds=delays)
    pending: list[Any] = [sender_task(d.id, return_state=True) for d in deliveries]
    states: list[Any] = await asyncio.gather(*pending)
    outcomes: list[DeliveryOutcome] = []
    for d, state in zip(deliveries, states, strict=True):
        if state.is_completed():
            outcomes.append(await state.result())
            continue
        current = rt.journal.get_delivery(d.id)
        if current.state is not DeliveryState.DEAD:
            if current.state is not DeliveryState.FAILED:
                current = rt.journal.transition(
                    d.id,
                    DeliveryState.FAILED,
                    actor="sender",
                    error=current.last_error or "send failed",
                )
            current = rt.journal.transition(
                d.id, DeliveryState.DEAD, actor="sender", detail={"attempts": current.attempts}
            )
        get_run_logger().warning(
            "dead letter: delivery %s to %s (%s attempts): %s",
            d.id,
            d.recipient,
            current.attempts,
            current.last_error,
        )
        outcomes.append(
            DeliveryOutcome(
                d.id,
                d.recipient,
                d.nachrichten_uuid,
                "dead",
                current.attempts,
                error=current.last_error,
            )
        )
    return outcomes


async def distribute(
    case: CaseRef, routes: tuple[Route, ...] | list[Route]
) -> list[DeliveryOutcome]:
    """One data-minimised message per recipient, recorded in the outbox, sent concurrently."""
    if not routes:
        return []
    deliveries = await prepare_messages(case, list(routes))
    return await send_all(deliveries)


# --------------------------------------------------------------------------- consult


@task(name="record-reply", cache_policy=NO_CACHE, persist_result=False)
async def record_reply(case: CaseRef, reply_uuid: str, rule: str) -> str:
    """Take the Rückmeldung into the case; returns its ergebnis code."""
    rt = get_runtime()
    rt.journal.consume_reply(reply_uuid, case_id=case.case_id, actor=f"consult:{rule}")
    reply = rueckmeldung.parse(rt.journal.payload(reply_uuid, direction=Direction.INBOUND))
    rt.journal.log_event(
        "case.reply",
        actor=f"consult:{rule}",
        case_id=case.case_id,
        nachrichten_uuid=reply_uuid,
        detail={"ergebnis": reply.ergebnis.code, "rule": rule},
    )
    return reply.ergebnis.code


async def consult(case: CaseRef, route: Route) -> str:
    """Send ``route``'s message and wait for the recipient's Rückmeldung (matched by its
    ``bezug``). A reply that arrived before the run waits is taken at once. Returns the ergebnis
    code (``01`` = keine Bedenken)."""
    rt = get_runtime()
    deliveries = await prepare_messages(case, [route])
    outcomes = await send_all(deliveries)
    if any(o.state == "dead" for o in outcomes):
        raise CaseError(
            case.case_id,
            f"consultation {route.rule}: message could not be delivered to {route.recipient}",
            step="consult",
        )
    sent_uuid = deliveries[0].nachrichten_uuid
    # a resumed or re-run flow finds the expectation it registered before (maybe satisfied)
    earlier = [e for e in await asyncio.to_thread(rt.journal.expectations, case_id=case.case_id)
               if e.in_reply_to == sent_uuid and e.state.value in ("waiting", "satisfied")]
    expectation = earlier[-1] if earlier else await asyncio.to_thread(
        rt.journal.expect_reply,
        case.case_id,
        message_type=rueckmeldung.ROOT,
        from_agency=rt.directory.get(route.recipient).behoerdenkennung,
        in_reply_to=sent_uuid,
        flow_run_id=_flow_run_id(),
        expires_at=datetime.now(UTC) + route.reply_within,
        actor=f"consult:{route.rule}",
    )
    if not earlier:  # the escalation automation watches for the reply (flows/operations.py)
        from .correlation import emit_consultation_sent

        emit_consultation_sent(case.case_id, rule=route.rule, recipient=route.recipient,
                               nachrichten_uuid=sent_uuid)
    if expectation.state.value != "satisfied":
        rt.journal.update_case(
            case.case_id,
            status=CaseStatus.WAITING,
            actor="consult",
            detail={"waiting_for": f"reply:{route.rule}"},
        )
        get_run_logger().info(
            "case %s waits for the reply of %s to %s", case.case_id, route.recipient, sent_uuid
        )
        expectation = rt.journal.check_expectation(expectation.id)
        if expectation.state.value != "satisfied":
            remaining = (
                (expectation.expires_at - datetime.now(UTC))
                if expectation.expires_at
                else route.reply_within
            )
            # on a timeout the journal decides below: a reply may still have come in
            with contextlib.suppress(FlowPauseTimeout):
                await wait_for_input(
                    ReplyInput,
                    key=f"reply-{route.rule}",
                    timeout=max(remaining, timedelta(seconds=1)),
                )
            expectation = rt.journal.check_expectation(expectation.id)
        if expectation.state.value != "satisfied" or not expectation.reply_uuid:
            if expectation.state.value == "waiting":
                rt.journal.expire_expectation(
                    expectation.id, actor="consult", reason="no reply in time"
                )
            rt.journal.update_case(
                case.case_id,
                status=CaseStatus.FAILED,
                actor="consult",
                detail={"reason": f"no reply from {route.recipient}"},
            )
            raise CaseError(
                case.case_id,
                f"no reply from {route.recipient} to {sent_uuid} within {route.reply_within}",
                step="consult",
            )
    # the reply is there (also after a resume, which re-runs the flow): no longer waiting
    if (await asyncio.to_thread(rt.journal.get_case, case.case_id)).status is CaseStatus.WAITING:
        await asyncio.to_thread(rt.journal.update_case, case.case_id, status=CaseStatus.OPEN,
                                actor="consult")
    reply_uuid = expectation.reply_uuid
    assert reply_uuid is not None  # satisfied expectations name their reply
    return await record_reply(case, reply_uuid, route.rule)


# --------------------------------------------------------------------------- receipts and close


@task(name="await-receipts", cache_policy=NO_CACHE, persist_result=False)
async def await_receipts(case: CaseRef) -> dict[str, int]:
    """Wait until every delivery of the case is acknowledged: a receipt (delivered) for push and
    file drop, ``fetched`` for mailbox agencies — up to ``FlowSettings.receipt_wait``. Returns
    the count per state."""
    from .mailbox_status import refresh_mailbox_states

    rt = get_runtime()
    deadline = time.monotonic() + rt.settings.receipt_wait.total_seconds()

    def current() -> list[DeliveryRecord]:
        return rt.journal.deliveries(case_id=case.case_id, direction=Direction.OUTBOUND)

    while True:
        deliveries = await asyncio.to_thread(current)
        if any(d.state is DeliveryState.DELIVERED for d in deliveries):
            await refresh_mailbox_states(rt, deliveries)
            deliveries = await asyncio.to_thread(current)
        pending = [
            d for d in deliveries if not _acknowledged(rt, d) and d.state is not DeliveryState.DEAD
        ]
        if not pending or time.monotonic() >= deadline:
            return dict(Counter(d.state.value for d in deliveries))
        await asyncio.sleep(min(rt.settings.poll_interval, 0.5))


def _acknowledged(rt: Runtime, d: DeliveryRecord) -> bool:
    if d.state is DeliveryState.FETCHED:
        return True
    if d.state is DeliveryState.DELIVERED:
        return rt.directory.get(d.recipient).channel.value != "mailbox"
    return False


def delivery_rows(rt: Runtime, case_id: str) -> list[dict[str, Any]]:
    types = {
        m.nachrichten_uuid: m.message_type
        for m in rt.journal.messages(case_id=case_id, direction=Direction.OUTBOUND)
    }
    rows = []
    for d in rt.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND):
        rows.append(
            {
                "recipient": d.recipient,
                "message_type": types.get(d.nachrichten_uuid, "?"),
                "state": d.state.value,
                "attempts": d.attempts,
                "nachrichtenUUID": d.nachrichten_uuid,
                "last_error": (d.last_error or "")[:120],
            }
        )
    return rows


def timeline_markdown(rt: Runtime, case_id: str) -> str:
    lines = [
        f"# Case {case_id}",
        "",
        "| time (UTC) | actor | event | details |",
        "|---|---|---|---|",
    ]
    for ev in rt.journal.events(case_id=case_id):
        detail = ", ".join(f"{k}={v}" for k, v in sorted(ev.detail.items()) if k != "comment")
        lines.append(f"| {ev.at:%Y-%m-%d %H:%M:%S} | {ev.actor} | {ev.kind} | {detail[:160]} |")
    return "\n".join(lines)


def finish_case(
    rt: Runtime, case_id: str, *, outcome: str | None = None, actor: str
) -> dict[str, Any]:
    """Set the final status from the deliveries: closed when every one is acknowledged, failed
    while dead letters remain (``amtsbote redeliver``). Returns the non-personal summary."""
    rows = delivery_rows(rt, case_id)
    dead = [r for r in rows if r["state"] == "dead"]
    status = CaseStatus.FAILED if dead else CaseStatus.CLOSED
    if outcome == "rejected":
        status = CaseStatus.CLOSED
    case = rt.journal.get_case(case_id)
    summary = dict(case.summary)
    summary.update(
        {
            "outcome": outcome or ("dead-letters" if dead else "distributed"),
            "deliveries": dict(Counter(r["state"] for r in rows)),
            "recipients": sorted({r["recipient"] for r in rows}),
        }
    )
    if case.status is not status or case.summary != summary:
        rt.journal.update_case(case_id, status=status, summary=summary, actor=actor)
    return {"case_id": case_id, "status": status.value, **summary}


@task(name="close", cache_policy=NO_CACHE, persist_result=False)
async def close(case: CaseRef, *, outcome: str | None = None) -> dict[str, Any]:
    """Final status, a table artifact (recipient, type, state, attempts) and a timeline."""
    rt = get_runtime()
    summary = await asyncio.to_thread(finish_case, rt, case.case_id, outcome=outcome, actor="close")
    await publish_case_artifacts(rt, case.case_id)
    return summary


async def publish_case_artifacts(rt: Runtime, case_id: str) -> None:
    """A table (recipient, type, state, attempts) and a markdown timeline for operators."""
    key = "case-" + "".join(c if c.isalnum() else "-" for c in case_id.lower())
    rows, timeline = await asyncio.to_thread(
        lambda: (delivery_rows(rt, case_id), timeline_markdown(rt, case_id))
    )
    table = [{k: v for k, v in r.items() if k != "last_error"} for r in rows]
    await acreate_table_artifact(
        key=key,
        table=table or [{"recipient": "-", "state": "none"}],
        description=f"Deliveries of case {case_id}",
    )
    await acreate_markdown_artifact(
        key=f"{key}-timeline", markdown=timeline, description=f"Timeline of case {case_id}"
    )
