"""Expectations and correlation: procedures waiting for replies (``expectations``) and the
inbound messages they claim (``messages.correlation_state``: unmatched → matched → consumed).

Inbound messages start ``unmatched`` and are kept until a procedure claims them. A flow that
waits registers an expectation (:meth:`ExpectationRepository.expect_reply`), which is matched at
once against kept messages (reply arrived early). The inbox calls
:meth:`ExpectationRepository.match_reply` after recording a message. Both sides take the
correlation lock so that a reply and an expectation arriving at the same moment always meet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from ...exceptions import InvalidTransitionError, JournalNotFoundError, JournalValueError
from ..records import (
    CorrelationState,
    Direction,
    ExpectationRecord,
    ExpectationState,
    MessageRecord,
    _check_text,
    check_agency,
    check_case_id,
    normalize_uuid,
)
from .base import (
    T_DELIVERIES,
    T_EXPECTATIONS,
    T_MESSAGES,
    JournalBase,
    as_aware,
    as_enum,
    check_limit,
    is_value,
    retry_on_disconnect,
    shorten,
    utcnow,
)
from .events import insert_events
from .messages import message_by_uuid
from .rows import MESSAGE_COLUMNS, event_row, expectation_record, message_record, replace_message

__all__ = ["ExpectationRepository"]

_M = T_MESSAGES.c


class ExpectationRepository(JournalBase):
    """Waiting for replies, matching and consuming them, expiring the waits."""

    def expect_reply(
        self,
        case_id: str,
        *,
        message_type: str | None = None,
        from_agency: str | None = None,
        in_reply_to: str | None = None,
        flow_run_id: str | None = None,
        expires_at: datetime | None = None,
        actor: str = "flow",
    ) -> ExpectationRecord:
        """Register that ``case_id`` waits for a reply, and match it at once against kept
        (unmatched) inbound messages — a reply may have arrived before the flow waits.

        Criteria (at least ``in_reply_to`` or ``message_type``): the reply's ``in_reply_to``,
        its ``message_type``, its author (``from_agency``). The result is ``satisfied`` (with
        ``reply_uuid``) or ``waiting``. Calling again with the same criteria while one is
        waiting returns that one (safe for task retries)."""
        case = check_case_id(case_id)
        if message_type is not None:
            message_type = _check_text(message_type, "message_type", 100)
        agency = check_agency(from_agency, "from_agency") if from_agency is not None else None
        irt = normalize_uuid(in_reply_to, "in_reply_to") if in_reply_to is not None else None
        if irt is None and message_type is None:
            raise JournalValueError("expect_reply", "give in_reply_to or message_type (or both)")
        run = _check_text(str(flow_run_id), "flow_run_id", 64) if flow_run_id is not None else None
        deadline = as_aware(expires_at, "expires_at")
        actor = self._actor(actor)
        now = utcnow()
        x = T_EXPECTATIONS.c
        with self._tx("expect_reply") as conn:
            self._lock_correlation(conn)
            self._require_case(conn, case)
            same = (
                conn.execute(
                    select(T_EXPECTATIONS)
                    .where(
                        x.case_id == case,
                        x.state == ExpectationState.WAITING.value,
                        is_value(x.flow_run_id, run),
                        is_value(x.message_type, message_type),
                        is_value(x.from_agency, agency),
                        is_value(x.in_reply_to, irt),
                    )
                    .order_by(x.id)
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if same is not None:
                expectation = dict(same)
            else:
                expectation = {
                    "case_id": case,
                    "flow_run_id": run,
                    "message_type": message_type,
                    "from_agency": agency,
                    "in_reply_to": irt,
                    "state": ExpectationState.WAITING.value,
                    "reply_uuid": None,
                    "created_at": now,
                    "updated_at": now,
                    "expires_at": deadline,
                }
                expectation["id"] = conn.execute(
                    insert(T_EXPECTATIONS).values(expectation).returning(x.id)
                ).scalar_one()
                insert_events(
                    conn,
                    [
                        event_row(
                            "correlation.expected",
                            actor,
                            now,
                            case_id=case,
                            nachrichten_uuid=irt,
                            detail={
                                "expectation_id": expectation["id"],
                                "message_type": message_type,
                                "from_agency": agency,
                                "flow_run_id": run,
                            },
                        )
                    ],
                )
            self._try_satisfy(conn, expectation, actor, now)
            return expectation_record(expectation)

    @retry_on_disconnect
    def check_expectation(self, expectation_id: int, *, actor: str = "flow") -> ExpectationRecord:
        """The expectation's current state, after trying once more to match it against kept
        messages and expiring it if its deadline has passed. For flows polling while they wait."""
        actor = self._actor(actor)
        now = utcnow()
        with self._tx("check_expectation") as conn:
            self._lock_correlation(conn)
            expectation = dict(self._expectation_row(conn, int(expectation_id), lock=True))
            if expectation["state"] == ExpectationState.WAITING.value:
                self._try_satisfy(conn, expectation, actor, now)
            if (
                expectation["state"] == ExpectationState.WAITING.value
                and expectation["expires_at"] is not None
                and expectation["expires_at"] <= now
            ):
                self._expire(conn, expectation, actor, now, reason="deadline passed")
            return expectation_record(expectation)

    def _expectation_row(self, conn: Connection, expectation_id: int, *, lock: bool) -> RowMapping:
        stmt = select(T_EXPECTATIONS).where(T_EXPECTATIONS.c.id == expectation_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("expectation", expectation_id)
        return row

    @retry_on_disconnect
    def get_expectation(self, expectation_id: int) -> ExpectationRecord:
        """The expectation ``expectation_id`` as stored (no matching, no expiry: see
        :meth:`check_expectation`); :class:`JournalNotFoundError` if there is none."""
        with self._tx("get_expectation", write=False) as conn:
            return expectation_record(self._expectation_row(conn, int(expectation_id), lock=False))

    @retry_on_disconnect
    def expectations(
        self,
        *,
        case_id: str | None = None,
        state: ExpectationState | str | None = None,
        flow_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExpectationRecord]:
        """Expectations, oldest first, filtered by case, state and flow run."""
        x = T_EXPECTATIONS.c
        stmt = select(T_EXPECTATIONS).order_by(x.id)
        if case_id is not None:
            stmt = stmt.where(x.case_id == check_case_id(case_id))
        if state is not None:
            stmt = stmt.where(x.state == as_enum(ExpectationState, state, "state").value)
        if flow_run_id is not None:
            stmt = stmt.where(x.flow_run_id == str(flow_run_id))
        stmt = stmt.limit(check_limit(limit))
        with self._tx("expectations", write=False) as conn:
            return [expectation_record(r) for r in conn.execute(stmt).mappings()]

    def _try_satisfy(
        self, conn: Connection, expectation: dict[str, Any], actor: str, now: datetime
    ) -> None:
        """Match a waiting expectation (locked by the caller) with the oldest fitting kept
        message; updates ``expectation`` in place."""
        if expectation["state"] != ExpectationState.WAITING.value:
            return
        stmt = select(_M.id, _M.nachrichten_uuid).where(
            _M.direction == Direction.INBOUND.value,
            _M.correlation_state == CorrelationState.UNMATCHED.value,
            or_(_M.case_id.is_(None), _M.case_id == expectation["case_id"]),
        )
        if expectation["in_reply_to"] is not None:
            stmt = stmt.where(_M.in_reply_to == expectation["in_reply_to"])
        if expectation["message_type"] is not None:
            stmt = stmt.where(_M.message_type == expectation["message_type"])
        if expectation["from_agency"] is not None:
            stmt = stmt.where(_M.author == expectation["from_agency"])
        candidate = conn.execute(
            stmt.order_by(_M.recorded_at, _M.id).limit(1).with_for_update()
        ).first()
        if candidate is not None:
            self._satisfy(conn, expectation, candidate.id, candidate.nachrichten_uuid, actor, now)

    def _satisfy(
        self,
        conn: Connection,
        expectation: dict[str, Any],
        message_id: int,
        uuid: str,
        actor: str,
        now: datetime,
    ) -> None:
        case = expectation["case_id"]
        conn.execute(
            update(T_EXPECTATIONS)
            .where(T_EXPECTATIONS.c.id == expectation["id"])
            .values(state=ExpectationState.SATISFIED.value, reply_uuid=uuid, updated_at=now)
        )
        conn.execute(
            update(T_MESSAGES)
            .where(_M.id == message_id)
            .values(correlation_state=CorrelationState.MATCHED.value, case_id=case)
        )
        insert_events(
            conn,
            [
                event_row(
                    "correlation.matched",
                    actor,
                    now,
                    case_id=case,
                    nachrichten_uuid=uuid,
                    detail={
                        "expectation_id": expectation["id"],
                        "flow_run_id": expectation["flow_run_id"],
                    },
                )
            ],
        )
        expectation.update(state=ExpectationState.SATISFIED.value, reply_uuid=uuid, updated_at=now)

    @retry_on_disconnect
    def match_reply(
        self, nachrichten_uuid: str, *, actor: str = "inbox"
    ) -> ExpectationRecord | None:
        """Try to hand a received message to a waiting expectation. Returns the expectation it
        satisfies (its ``flow_run_id`` tells whom to wake) — also when it was matched before —
        or ``None``: the message stays ``unmatched`` and is kept for a later
        :meth:`expect_reply` or for :meth:`unmatched_replies`.

        Expectations naming ``in_reply_to`` are preferred, then the oldest."""
        uuid = normalize_uuid(nachrichten_uuid)
        actor = self._actor(actor)
        now = utcnow()
        x = T_EXPECTATIONS.c
        with self._tx("match_reply") as conn:
            self._lock_correlation(conn)
            message = message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
            if message.correlation_state is not CorrelationState.UNMATCHED:
                found = (
                    conn.execute(
                        select(T_EXPECTATIONS).where(x.reply_uuid == uuid).order_by(x.id).limit(1)
                    )
                    .mappings()
                    .first()
                )
                return expectation_record(found) if found is not None else None
            stmt = select(T_EXPECTATIONS).where(
                x.state == ExpectationState.WAITING.value,
                or_(x.expires_at.is_(None), x.expires_at > now),
                or_(x.in_reply_to.is_(None), x.in_reply_to == message.in_reply_to)
                if message.in_reply_to is not None
                else x.in_reply_to.is_(None),
                or_(x.message_type.is_(None), x.message_type == message.message_type),
                or_(x.from_agency.is_(None), x.from_agency == message.author)
                if message.author is not None
                else x.from_agency.is_(None),
            )
            if message.case_id is not None:
                stmt = stmt.where(x.case_id == message.case_id)
            stmt = stmt.order_by(x.in_reply_to.is_(None), x.id).limit(1).with_for_update()
            found = conn.execute(stmt).mappings().first()
            if found is None:
                return None
            expectation = dict(found)
            self._satisfy(conn, expectation, message.id, uuid, actor, now)
            return expectation_record(expectation)

    @retry_on_disconnect
    def consume_reply(
        self, nachrichten_uuid: str, *, case_id: str | None = None, actor: str = "flow"
    ) -> MessageRecord:
        """Mark an inbound message as processed (``consumed``), optionally assigning it to
        ``case_id`` — e.g. a new request that opened a case. A matched message can only be
        consumed for its own case. Consuming again for the same case is a no-op."""
        uuid = normalize_uuid(nachrichten_uuid)
        case = check_case_id(case_id) if case_id is not None else None
        actor = self._actor(actor)
        now = utcnow()
        with self._tx("consume_reply") as conn:
            message = message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
            state = message.correlation_state
            if case is not None and message.case_id is not None and case != message.case_id:
                raise InvalidTransitionError(
                    "message",
                    uuid,
                    f"{state} (case {message.case_id})",
                    f"consumed (case {case})",
                    allowed=(f"consumed for case {message.case_id}",),
                )
            if state is CorrelationState.CONSUMED:
                if case is not None and message.case_id is None:
                    raise InvalidTransitionError(
                        "message", uuid, "consumed", f"consumed (case {case})", allowed=()
                    )
                return message
            if case is not None:
                self._require_case(conn, case)
            new_case = case or message.case_id
            conn.execute(
                update(T_MESSAGES)
                .where(_M.id == message.id)
                .values(correlation_state=CorrelationState.CONSUMED.value, case_id=new_case)
            )
            insert_events(
                conn,
                [
                    event_row(
                        "correlation.consumed",
                        actor,
                        now,
                        case_id=new_case,
                        nachrichten_uuid=uuid,
                        detail={"from": state.value if state else None},
                    )
                ],
            )
            return replace_message(
                message, correlation_state=CorrelationState.CONSUMED, case_id=new_case
            )

    @retry_on_disconnect
    def unmatched_replies(
        self,
        *,
        message_type: str | None = None,
        author: str | None = None,
        recipient: str | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        """Inbound messages no procedure has claimed (oldest first): early replies, replies to
        unknown cases, requests nobody has picked up. ``recipient`` (an agency id): only those
        delivered to that agency — not the messages waiting in mailboxes it hosts for others."""
        stmt = (
            select(*MESSAGE_COLUMNS)
            .where(
                _M.direction == Direction.INBOUND.value,
                _M.correlation_state == CorrelationState.UNMATCHED.value,
            )
            .order_by(_M.recorded_at, _M.id)
        )
        if message_type is not None:
            stmt = stmt.where(_M.message_type == message_type)
        if author is not None:
            stmt = stmt.where(_M.author == author)
        if recipient is not None:
            d = T_DELIVERIES.c
            stmt = stmt.where(
                exists().where(
                    d.message_id == _M.id,
                    d.recipient == check_agency(recipient, "recipient"),
                )
            )
        stmt = stmt.limit(check_limit(limit))
        with self._tx("unmatched_replies", write=False) as conn:
            return [message_record(r) for r in conn.execute(stmt).mappings()]

    @retry_on_disconnect
    def expire_expectation(
        self, expectation_id: int, *, actor: str = "flow", reason: str | None = None
    ) -> ExpectationRecord:
        """Give up waiting: ``waiting → expired`` (already expired: no-op; satisfied: error)."""
        actor = self._actor(actor)
        now = utcnow()
        with self._tx("expire_expectation") as conn:
            self._lock_correlation(conn)
            expectation = dict(self._expectation_row(conn, int(expectation_id), lock=True))
            state = ExpectationState(expectation["state"])
            if state is ExpectationState.SATISFIED:
                raise InvalidTransitionError(
                    "expectation", expectation_id, state.value, "expired", allowed=()
                )
            if state is ExpectationState.WAITING:
                self._expire(conn, expectation, actor, now, reason=reason)
            return expectation_record(expectation)

    @retry_on_disconnect
    def expire_overdue(
        self, *, now: datetime | None = None, actor: str = "journal"
    ) -> list[ExpectationRecord]:
        """Expire every waiting expectation whose ``expires_at`` has passed."""
        at = as_aware(now, "now") or utcnow()
        actor = self._actor(actor)
        x = T_EXPECTATIONS.c
        with self._tx("expire_overdue") as conn:
            self._lock_correlation(conn)
            rows = (
                conn.execute(
                    select(T_EXPECTATIONS)
                    .where(x.state == ExpectationState.WAITING.value, x.expires_at <= at)
                    .order_by(x.id)
                    .with_for_update()
                )
                .mappings()
                .all()
            )
            result = []
            for row in rows:
                expectation = dict(row)
                self._expire(conn, expectation, actor, utcnow(), reason="deadline passed")
                result.append(expectation_record(expectation))
            return result

    def _expire(
        self,
        conn: Connection,
        expectation: dict[str, Any],
        actor: str,
        now: datetime,
        *,
        reason: str | None,
    ) -> None:
        conn.execute(
            update(T_EXPECTATIONS)
            .where(T_EXPECTATIONS.c.id == expectation["id"])
            .values(state=ExpectationState.EXPIRED.value, updated_at=now)
        )
        insert_events(
            conn,
            [
                event_row(
                    "correlation.expired",
                    actor,
                    now,
                    case_id=expectation["case_id"],
                    nachrichten_uuid=expectation["in_reply_to"],
                    detail={"expectation_id": expectation["id"], "reason": shorten(reason, 200)},
                )
            ],
        )
        expectation.update(state=ExpectationState.EXPIRED.value, updated_at=now)
