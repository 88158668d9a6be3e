"""Deliveries: one per message and recipient agency (``deliveries``), moving through the states
of an XTA-like Laufzettel (:data:`~connectors.journal.records.DELIVERY_TRANSITIONS`), with every
send attempt (``delivery_attempts``); the mailboxes are inbound deliveries waiting to be
fetched."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from ...exceptions import InvalidTransitionError, JournalNotFoundError
from ..records import (
    DELIVERY_TRANSITIONS,
    AttemptRecord,
    DeliveryRecord,
    DeliveryState,
    Direction,
    MessageRecord,
    StatusChange,
    check_agency,
    check_case_id,
    normalize_uuid,
)
from .base import (
    T_ATTEMPTS,
    T_DELIVERIES,
    T_EVENTS,
    T_MESSAGES,
    JournalBase,
    as_aware,
    as_enum,
    as_enums,
    check_limit,
    insert_ignore,
    json_object,
    retry_on_disconnect,
    shorten,
    utcnow,
)
from .events import insert_events
from .rows import (
    DELIVERY_COLUMNS,
    MESSAGE_COLUMNS,
    attempt_record,
    delivery_record,
    message_record,
    new_delivery_row,
    state_event,
)

__all__ = [
    "DeliveryRepository",
    "add_delivery",
    "add_delivery_ignore",
    "deliveries_of",
    "delivery_select",
]

_M = T_MESSAGES.c
_D = T_DELIVERIES.c
_ERROR_MAX = 500
_INS_DELIVERY = insert(T_DELIVERIES).returning(T_DELIVERIES.c.id)


def delivery_select() -> Select[Any]:
    """Deliveries joined with what they need of their message (:data:`DELIVERY_COLUMNS`)."""
    return select(*DELIVERY_COLUMNS).join_from(T_DELIVERIES, T_MESSAGES, _D.message_id == _M.id)


def deliveries_of(conn: Connection, message_id: int) -> list[DeliveryRecord]:
    stmt = delivery_select().where(_D.message_id == message_id).order_by(_D.id)
    return [delivery_record(r) for r in conn.execute(stmt).mappings()]


def add_delivery(
    conn: Connection, message_id: int, recipient: str, state: DeliveryState, now: datetime
) -> int:
    row = new_delivery_row(message_id, recipient, state, now)
    return int(conn.execute(_INS_DELIVERY, row).scalar_one())


@functools.cache
def _insert_delivery_ignore(dialect: str) -> Any:
    return insert_ignore(dialect, T_DELIVERIES, "message_id", "recipient").returning(
        T_DELIVERIES.c.id
    )


def add_delivery_ignore(
    conn: Connection,
    dialect: str,
    message_id: int,
    recipient: str,
    state: DeliveryState,
    now: datetime,
) -> int | None:
    """A new delivery's id, or ``None`` when the message has one for ``recipient`` already."""
    row = new_delivery_row(message_id, recipient, state, now)
    found = conn.execute(_insert_delivery_ignore(dialect), row).scalar()
    return int(found) if found is not None else None


def _allowed(state: DeliveryState) -> tuple[str, ...]:
    return tuple(sorted(s.value for s in DELIVERY_TRANSITIONS[state]))


def _path(current: DeliveryState, target: DeliveryState) -> list[DeliveryState] | None:
    """The states to pass through from ``current`` to ``target`` for an attempt: ``[]`` when
    staying, ``[target]`` when allowed directly, ``[sent, delivered]`` for delivered."""
    if current == target:
        return []
    if target in DELIVERY_TRANSITIONS[current]:
        return [target]
    if target is DeliveryState.DELIVERED and DeliveryState.SENT in DELIVERY_TRANSITIONS[current]:
        return [DeliveryState.SENT, DeliveryState.DELIVERED]
    return None


class DeliveryRepository(JournalBase):
    """Deliveries and attempts, the state machine, the mailboxes and the Laufzettel."""

    def _delivery_row(self, conn: Connection, delivery_id: int, *, lock: bool) -> RowMapping:
        stmt = delivery_select().where(_D.id == delivery_id)
        if lock:
            stmt = stmt.with_for_update(of=T_DELIVERIES)
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("delivery", delivery_id)
        return row

    @retry_on_disconnect
    def get_delivery(self, delivery_id: int) -> DeliveryRecord:
        """The delivery ``delivery_id``; :class:`JournalNotFoundError` if there is none."""
        with self._tx("get_delivery", write=False) as conn:
            return delivery_record(self._delivery_row(conn, int(delivery_id), lock=False))

    @retry_on_disconnect
    def deliveries(
        self,
        *,
        case_id: str | None = None,
        state: DeliveryState | str | Collection[DeliveryState | str] | None = None,
        recipient: str | None = None,
        nachrichten_uuid: str | None = None,
        direction: Direction | str | None = None,
        limit: int | None = None,
    ) -> list[DeliveryRecord]:
        """Deliveries (oldest first) filtered by the message's case/UUID/direction, state (one
        or several) and recipient."""
        stmt = delivery_select().order_by(_D.id)
        if case_id is not None:
            stmt = stmt.where(_M.case_id == check_case_id(case_id))
        if state is not None:
            stmt = stmt.where(
                _D.state.in_([s.value for s in as_enums(DeliveryState, state, "state")])
            )
        if recipient is not None:
            stmt = stmt.where(_D.recipient == recipient)
        if nachrichten_uuid is not None:
            stmt = stmt.where(_M.nachrichten_uuid == normalize_uuid(nachrichten_uuid))
        if direction is not None:
            stmt = stmt.where(_M.direction == as_enum(Direction, direction, "direction").value)
        stmt = stmt.limit(check_limit(limit))
        with self._tx("deliveries", write=False) as conn:
            return [delivery_record(r) for r in conn.execute(stmt).mappings()]

    @retry_on_disconnect
    def due_deliveries(
        self, *, now: datetime | None = None, limit: int | None = 100
    ) -> list[DeliveryRecord]:
        """Outbound deliveries to (re)send now: ``created``, or ``failed`` whose
        ``next_attempt_at`` has come (or is unset). Oldest first."""
        at = as_aware(now, "now") or utcnow()
        stmt = (
            delivery_select()
            .where(
                _M.direction == Direction.OUTBOUND.value,
                or_(
                    _D.state == DeliveryState.CREATED.value,
                    and_(
                        _D.state == DeliveryState.FAILED.value,
                        or_(_D.next_attempt_at.is_(None), _D.next_attempt_at <= at),
                    ),
                ),
            )
            .order_by(_D.id)
            .limit(check_limit(limit))
        )
        with self._tx("due_deliveries", write=False) as conn:
            return [delivery_record(r) for r in conn.execute(stmt).mappings()]

    @retry_on_disconnect
    def attempts(self, delivery_id: int) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        stmt = (
            select(T_ATTEMPTS)
            .where(T_ATTEMPTS.c.delivery_id == int(delivery_id))
            .order_by(T_ATTEMPTS.c.id)
        )
        with self._tx("attempts", write=False) as conn:
            return [attempt_record(r) for r in conn.execute(stmt).mappings()]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        ok: bool,
        status_code: int | None = None,
        error_class: str | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
        new_state: DeliveryState | str | None = None,
        next_attempt_at: datetime | None = None,
        actor: str = "sender",
    ) -> DeliveryRecord:
        """Record one send attempt and move the delivery accordingly, in one transaction.

        The target state is ``new_state`` or, by default, ``sent`` when ``ok`` and ``failed``
        otherwise; ``delivered`` from ``created``/``failed`` passes through ``sent`` (both
        logged). Staying in the same state (another failure) only updates counters.
        ``next_attempt_at`` schedules the retry of a failure. ``error`` is shortened to 500
        characters and must not contain personal data."""
        target = (
            as_enum(DeliveryState, new_state, "new_state")
            if new_state is not None
            else (DeliveryState.SENT if ok else DeliveryState.FAILED)
        )
        retry_at = as_aware(next_attempt_at, "next_attempt_at")
        actor = self._actor(actor)
        now = utcnow()
        attempt = {
            "delivery_id": int(delivery_id),
            "at": now,
            "outcome": "ok" if ok else "error",
            "status_code": int(status_code) if status_code is not None else None,
            "error_class": shorten(error_class, 100),
            "error": shorten(error, _ERROR_MAX),
            "duration_ms": int(duration_ms) if duration_ms is not None else None,
        }
        with self._tx("record_attempt") as conn:
            row = self._delivery_row(conn, int(delivery_id), lock=True)
            current = DeliveryState(row["state"])
            path = _path(current, target)
            if path is None:
                raise InvalidTransitionError(
                    "delivery",
                    delivery_id,
                    current.value,
                    target.value,
                    allowed=_allowed(current),
                )
            conn.execute(insert(T_ATTEMPTS), attempt)
            changes: dict[str, Any] = {
                "attempts": row["attempts"] + 1,
                "last_status_code": attempt["status_code"],
                "last_error": None if ok else attempt["error"],
                "next_attempt_at": None if ok else retry_at,
                "updated_at": now,
                "state": target.value,
            }
            conn.execute(update(T_DELIVERIES).where(_D.id == row["id"]).values(changes))
            detail = {"attempt": changes["attempts"], "status_code": attempt["status_code"]}
            if not ok:
                detail["error_class"] = attempt["error_class"]
            events = []
            previous = current
            for step in path:
                events.append(
                    state_event(
                        actor,
                        now,
                        row["nachrichten_uuid"],
                        row["case_id"],
                        row["id"],
                        Direction(row["direction"]),
                        row["recipient"],
                        previous,
                        step,
                        detail,
                    )
                )
                previous = step
            insert_events(conn, events)
            merged = dict(row)
            merged.update(changes)
            return delivery_record(merged)

    @retry_on_disconnect
    def transition(
        self,
        delivery_id: int,
        new_state: DeliveryState | str,
        *,
        actor: str,
        detail: Mapping[str, Any] | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> DeliveryRecord:
        """Move a delivery to ``new_state`` if the state machine allows it
        (:data:`~connectors.journal.records.DELIVERY_TRANSITIONS`), writing a ``delivery.state``
        event; the current state again is a no-op. ``dead → created`` re-queues a delivery.
        ``error``/``next_attempt_at`` are stored with a change to ``failed``."""
        target = as_enum(DeliveryState, new_state, "new_state")
        actor = self._actor(actor)
        extra = json_object(detail, "detail")
        retry_at = as_aware(next_attempt_at, "next_attempt_at")
        now = utcnow()
        with self._tx("transition") as conn:
            row = self._delivery_row(conn, int(delivery_id), lock=True)
            return self._transition(conn, row, target, actor, extra, now, error, retry_at)

    def _transition(
        self,
        conn: Connection,
        row: RowMapping,
        target: DeliveryState,
        actor: str,
        extra: dict[str, Any],
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> DeliveryRecord:
        current = DeliveryState(row["state"])
        if current == target:
            return delivery_record(row)
        if target not in DELIVERY_TRANSITIONS[current]:
            raise InvalidTransitionError(
                "delivery", row["id"], current.value, target.value, allowed=_allowed(current)
            )
        changes: dict[str, Any] = {"state": target.value, "updated_at": now}
        if target is DeliveryState.FAILED:
            changes["last_error"] = shorten(error, _ERROR_MAX) if error else row["last_error"]
            changes["next_attempt_at"] = retry_at
        elif target in (DeliveryState.CREATED, DeliveryState.SENT):
            changes["next_attempt_at"] = None
        conn.execute(update(T_DELIVERIES).where(_D.id == row["id"]).values(changes))
        insert_events(
            conn,
            [
                state_event(
                    actor,
                    now,
                    row["nachrichten_uuid"],
                    row["case_id"],
                    row["id"],
                    Direction(row["direction"]),
                    row["recipient"],
                    current,
                    target,
                    extra,
                )
            ],
        )
        merged = dict(row)
        merged.update(changes)
        return delivery_record(merged)

    # ------------------------------------------------------------------ mailbox

    @retry_on_disconnect
    def mailbox(self, agency_id: str, *, limit: int | None = 100) -> list[MessageRecord]:
        """Inbound messages waiting for ``agency_id`` to fetch them (delivery ``delivered``),
        oldest first."""
        agency = check_agency(agency_id, "agency_id")
        stmt = (
            select(*MESSAGE_COLUMNS)
            .join_from(T_MESSAGES, T_DELIVERIES, _D.message_id == _M.id)
            .where(
                _D.recipient == agency,
                _D.state == DeliveryState.DELIVERED.value,
                _M.direction == Direction.INBOUND.value,
            )
            .order_by(_M.recorded_at, _M.id)
            .limit(check_limit(limit))
        )
        with self._tx("mailbox", write=False) as conn:
            return [message_record(r) for r in conn.execute(stmt).mappings()]

    @retry_on_disconnect
    def mark_fetched(
        self, nachrichten_uuid: str, agency_id: str, *, actor: str | None = None
    ) -> DeliveryRecord:
        """``agency_id`` has fetched the inbound message: its delivery becomes ``fetched``
        (again: no-op). :class:`JournalNotFoundError` if the message is not addressed to it."""
        uuid = normalize_uuid(nachrichten_uuid)
        agency = check_agency(agency_id, "agency_id")
        who = self._actor(actor if actor is not None else agency)
        now = utcnow()
        stmt = (
            delivery_select()
            .where(
                _M.nachrichten_uuid == uuid,
                _M.direction == Direction.INBOUND.value,
                _D.recipient == agency,
            )
            .with_for_update(of=T_DELIVERIES)
        )
        with self._tx("mark_fetched") as conn:
            row = conn.execute(stmt).mappings().first()
            if row is None:
                raise JournalNotFoundError("mailbox entry", uuid, detail=f"for agency {agency}")
            return self._transition(conn, row, DeliveryState.FETCHED, who, {}, now)

    @retry_on_disconnect
    def transport_report(self, nachrichten_uuid: str) -> list[StatusChange]:
        """The Laufzettel: every delivery state change of the message (both directions), in
        order, from the event log."""
        uuid = normalize_uuid(nachrichten_uuid)
        stmt = (
            select(T_EVENTS)
            .where(T_EVENTS.c.nachrichten_uuid == uuid, T_EVENTS.c.kind == "delivery.state")
            .order_by(T_EVENTS.c.id)
        )
        with self._tx("transport_report", write=False) as conn:
            rows = conn.execute(stmt).mappings().all()
        report = []
        for r in rows:
            detail = dict(r["detail"] or {})
            report.append(
                StatusChange(
                    at=r["at"],
                    delivery_id=int(r["delivery_id"]),
                    direction=Direction(detail.pop("direction")),
                    recipient=detail.pop("recipient"),
                    from_state=DeliveryState(f) if (f := detail.pop("from")) else None,
                    to_state=DeliveryState(detail.pop("to")),
                    actor=r["actor"],
                    detail=detail,
                )
            )
        return report
