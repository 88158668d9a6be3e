"""``consult`` and ``exchange``: send a route's message and wait for the recipient's replies.

A reply is matched by the journal key of the message it answers (``in_reply_to``), its type and
its sender; one that arrived before the run waits is taken at once. ``consult`` waits for the one
reply the family names for the route (Gewerbe: the Rückmeldung); ``exchange`` for several in
order (xdomea: an 0501 is answered by 0504 and then 0502)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout

from connectors.journal import CaseStatus, Direction

from ..exceptions import CaseError
from ..families.base import ReplyOutcome
from ..routing import Route
from ..runtime import get_runtime
from ..workdays import workdays_deadline
from .common import CaseRef, ReplyInput, flow_run_id, wait_for_input
from .send import distribute

__all__ = ["Reply", "consult", "exchange", "record_reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply taken into the case: its type, journal key and outcome as the family reads it."""

    message_type: str
    nachrichten_uuid: str
    outcome: ReplyOutcome

    @property
    def code(self) -> str:
        return self.outcome.code

    @property
    def positive(self) -> bool:
        return self.outcome.positive


@task(name="record-reply", cache_policy=NO_CACHE, persist_result=False)
async def record_reply(case: CaseRef, reply_uuid: str, rule: str) -> ReplyOutcome:
    """Take the reply into the case and read its outcome by the case's family."""
    rt = get_runtime()
    rt.journal.consume_reply(reply_uuid, case_id=case.case_id, actor=f"consult:{rule}")
    outcome = case.family.read_reply(rt.journal.payload(reply_uuid, direction=Direction.INBOUND))
    rt.journal.log_event(
        "case.reply",
        actor=f"consult:{rule}",
        case_id=case.case_id,
        nachrichten_uuid=reply_uuid,
        detail={**outcome.detail, "outcome": outcome.code, "rule": rule},
    )
    return outcome


async def consult(case: CaseRef, route: Route) -> ReplyOutcome:
    """Send ``route``'s message and wait for the recipient's reply (the first type the family
    names for the route). Returns its outcome (Gewerbe: code ``01`` = keine Bedenken)."""
    replies = await exchange(case, route, expect=case.family.reply_types(route)[:1])
    return replies[0].outcome


async def exchange(
    case: CaseRef, route: Route, *, expect: tuple[str, ...] | None = None
) -> list[Reply]:
    """Send ``route``'s message, then wait for each reply type of ``expect`` (default: all the
    family names for the route) in order, each within the route's ``reply_within``. A case
    whose reply does not come in time fails (``amtsbote cases --failed``)."""
    types = expect if expect is not None else case.family.reply_types(route)
    outcomes = await distribute(case, [route])
    if not outcomes or any(o.state == "dead" for o in outcomes):
        raise CaseError(
            case.case_id,
            f"consultation {route.rule}: message could not be delivered to {route.recipient}",
            step="consult",
        )
    sent_uuid = outcomes[0].nachrichten_uuid
    replies = []
    for i, message_type in enumerate(types):
        key = _input_key(route.rule, None if i == 0 else message_type)
        reply_uuid = await _await_reply(
            case, route, sent_uuid, message_type, key=key, announce=i == 0
        )
        outcome = await record_reply(case, reply_uuid, route.rule)
        replies.append(Reply(message_type, reply_uuid, outcome))
    return replies


def _input_key(rule: str, message_type: str | None) -> str:
    """The run-input key of a wait: Prefect takes lower-case letters, digits and dashes only
    (an xdomea root name such as ``Aussonderung.AussonderungImportBestaetigen.0506`` has dots
    and capitals)."""
    key = f"reply-{rule}" if message_type is None else f"reply-{rule}-{message_type}"
    return re.sub(r"[^a-z0-9-]+", "-", key.lower())


def _deadline(route: Route) -> datetime:
    """The reply deadline: ``N working days`` (NRW calendar) or the ISO duration."""
    now = datetime.now(UTC)
    if route.reply_workdays:
        return workdays_deadline(now, route.reply_workdays)
    return now + route.reply_within


async def _await_reply(
    case: CaseRef, route: Route, sent_uuid: str, message_type: str, *, key: str, announce: bool
) -> str:
    rt = get_runtime()
    # a resumed or re-run flow finds the expectation it registered before (maybe satisfied)
    earlier = [
        e
        for e in await asyncio.to_thread(rt.journal.expectations, case_id=case.case_id)
        if e.in_reply_to == sent_uuid
        and e.message_type == message_type
        and e.state.value in ("waiting", "satisfied")
    ]
    expectation = (
        earlier[-1]
        if earlier
        else await asyncio.to_thread(
            rt.journal.expect_reply,
            case.case_id,
            message_type=message_type,
            from_agency=rt.directory.get(route.recipient).behoerdenkennung,
            in_reply_to=sent_uuid,
            flow_run_id=flow_run_id(),
            expires_at=_deadline(route),
            actor=f"consult:{route.rule}",
        )
    )
    if not earlier and announce:  # the escalation automation watches for the reply
        from ..correlation import emit_consultation_sent

        emit_consultation_sent(
            case.case_id, rule=route.rule, recipient=route.recipient, nachrichten_uuid=sent_uuid
        )
    if expectation.state.value != "satisfied":
        rt.journal.update_case(
            case.case_id,
            status=CaseStatus.WAITING,
            actor="consult",
            detail={"waiting_for": f"reply:{route.rule}"},
        )
        get_run_logger().info(
            "case %s waits for the %s of %s to %s",
            case.case_id,
            message_type,
            route.recipient,
            sent_uuid,
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
                    ReplyInput, key=key, timeout=max(remaining, timedelta(seconds=1))
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
                detail={"reason": f"no reply from {route.recipient}", "message_type": message_type},
            )
            raise CaseError(
                case.case_id,
                f"no reply ({message_type}) from {route.recipient} to {sent_uuid} "
                f"within {route.reply_within}",
                step="consult",
            )
    # the reply is there (also after a resume, which re-runs the flow): no longer waiting
    if (await asyncio.to_thread(rt.journal.get_case, case.case_id)).status is CaseStatus.WAITING:
        await asyncio.to_thread(
            rt.journal.update_case, case.case_id, status=CaseStatus.OPEN, actor="consult"
        )
    reply_uuid = expectation.reply_uuid
    assert reply_uuid is not None  # satisfied expectations name their reply
    return reply_uuid
