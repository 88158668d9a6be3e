"""Rows and records: the dicts the repositories insert, the columns they select, and the
conversion of selected rows into the frozen records of :mod:`connectors.journal.records`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func

from ..crypto import ENCODING_SEALED, EncodedPayload
from ..records import (
    AttemptRecord,
    CaseRecord,
    CaseStatus,
    CorrelationState,
    DeliveryRecord,
    DeliveryState,
    Direction,
    EventRecord,
    ExpectationRecord,
    ExpectationState,
    MessageMeta,
    MessageRecord,
)
from .base import T_DELIVERIES, T_MESSAGES

__all__ = [
    "DELIVERY_COLUMNS",
    "MESSAGE_COLUMNS",
    "attempt_record",
    "case_record",
    "delivery_record",
    "event_record",
    "event_row",
    "expectation_record",
    "message_detail",
    "message_record",
    "message_row",
    "new_delivery_row",
    "replace_message",
    "state_event",
]

_M = T_MESSAGES.c
#: A message's metadata (never the payload) and the stored size of its payload.
MESSAGE_COLUMNS = (
    _M.id,
    _M.nachrichten_uuid,
    _M.direction,
    _M.standard,
    _M.version,
    _M.message_type,
    _M.author,
    _M.reader,
    _M.sender_agency,
    _M.case_id,
    _M.payload_sha512,
    _M.size,
    func.length(_M.payload).label("stored_size"),
    _M.payload_encoding,
    _M.created_at,
    _M.recorded_at,
    _M.in_reply_to,
    _M.correlation_state,
)
#: A delivery with what it needs of its message (selected with a join).
DELIVERY_COLUMNS = (*T_DELIVERIES.c, _M.nachrichten_uuid, _M.direction, _M.case_id)


# ---------------------------------------------------------------------- rows to insert


def message_row(
    meta: MessageMeta,
    encoded: EncodedPayload,
    direction: Direction,
    sender: str | None,
    case: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "nachrichten_uuid": meta.nachrichten_uuid,
        "direction": direction.value,
        "standard": meta.standard,
        "version": meta.version,
        "message_type": meta.message_type,
        "author": meta.author,
        "reader": meta.reader,
        "sender_agency": sender,
        "case_id": case,
        "payload": encoded.data,
        "payload_encoding": encoded.encoding,
        "payload_sha512": encoded.sha512,
        "size": encoded.size,
        "created_at": meta.created_at,
        "recorded_at": now,
        "in_reply_to": meta.in_reply_to,
    }


def new_delivery_row(
    message_id: int, recipient: str, state: DeliveryState, now: datetime
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "recipient": recipient,
        "state": state.value,
        "attempts": 0,
        "last_status_code": None,
        "last_error": None,
        "next_attempt_at": None,
        "created_at": now,
        "updated_at": now,
    }


def event_row(
    kind: str,
    actor: str,
    at: datetime,
    *,
    case_id: str | None = None,
    nachrichten_uuid: str | None = None,
    delivery_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor,
        "kind": kind,
        "case_id": case_id,
        "nachrichten_uuid": nachrichten_uuid,
        "delivery_id": delivery_id,
        "detail": dict(detail or {}),
    }


def message_detail(meta: MessageMeta, size: int, sender: str | None) -> dict[str, Any]:
    return {
        "standard": meta.standard,
        "version": meta.version,
        "message_type": meta.message_type,
        "author": meta.author,
        "reader": meta.reader,
        "sender_agency": sender,
        "size": size,
        "in_reply_to": meta.in_reply_to,
    }


def state_event(
    actor: str,
    at: datetime,
    uuid: str,
    case_id: str | None,
    delivery_id: int,
    direction: Direction,
    recipient: str,
    from_state: DeliveryState | None,
    to_state: DeliveryState,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``delivery.state`` event of one step of a delivery (the Laufzettel's rows)."""
    detail = dict(extra or {})
    detail.update(
        {
            "from": from_state.value if from_state else None,
            "to": to_state.value,
            "recipient": recipient,
            "direction": direction.value,
        }
    )
    return event_row(
        "delivery.state",
        actor,
        at,
        case_id=case_id,
        nachrichten_uuid=uuid,
        delivery_id=delivery_id,
        detail=detail,
    )


# ---------------------------------------------------------------------- rows to records


def case_record(row: Mapping[Any, Any]) -> CaseRecord:
    return CaseRecord(
        case_id=row["case_id"],
        procedure=row["procedure"],
        status=CaseStatus(row["status"]),
        reference=row["reference"],
        flow_run_id=row["flow_run_id"],
        summary=dict(row["summary"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
    )


def message_record(
    row: Mapping[Any, Any], message_id: int | None = None, stored_size: int | None = None
) -> MessageRecord:
    cs = row["correlation_state"]
    return MessageRecord(
        id=int(message_id if message_id is not None else row["id"]),
        nachrichten_uuid=row["nachrichten_uuid"],
        direction=Direction(row["direction"]),
        standard=row["standard"],
        version=row["version"],
        message_type=row["message_type"],
        author=row["author"],
        reader=row["reader"],
        sender_agency=row["sender_agency"],
        case_id=row["case_id"],
        payload_sha512=row["payload_sha512"],
        size=int(row["size"]),
        stored_size=int(stored_size if stored_size is not None else row["stored_size"]),
        encrypted=row["payload_encoding"] == ENCODING_SEALED,
        created_at=row["created_at"],
        recorded_at=row["recorded_at"],
        in_reply_to=row["in_reply_to"],
        correlation_state=CorrelationState(cs) if cs is not None else None,
    )


def replace_message(message: MessageRecord, **changes: Any) -> MessageRecord:
    return replace(message, **changes)


def delivery_record(row: Mapping[Any, Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        nachrichten_uuid=row["nachrichten_uuid"],
        direction=Direction(row["direction"]),
        case_id=row["case_id"],
        recipient=row["recipient"],
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def attempt_record(row: Mapping[Any, Any]) -> AttemptRecord:
    return AttemptRecord(
        id=int(row["id"]),
        delivery_id=int(row["delivery_id"]),
        at=row["at"],
        ok=row["outcome"] == "ok",
        status_code=row["status_code"],
        error_class=row["error_class"],
        error=row["error"],
        duration_ms=row["duration_ms"],
    )


def event_record(row: Mapping[Any, Any]) -> EventRecord:
    return EventRecord(
        id=int(row["id"]),
        at=row["at"],
        actor=row["actor"],
        kind=row["kind"],
        case_id=row["case_id"],
        nachrichten_uuid=row["nachrichten_uuid"],
        delivery_id=row["delivery_id"],
        detail=dict(row["detail"] or {}),
    )


def expectation_record(row: Mapping[Any, Any]) -> ExpectationRecord:
    return ExpectationRecord(
        id=int(row["id"]),
        case_id=row["case_id"],
        flow_run_id=row["flow_run_id"],
        message_type=row["message_type"],
        from_agency=row["from_agency"],
        in_reply_to=row["in_reply_to"],
        state=ExpectationState(row["state"]),
        reply_uuid=row["reply_uuid"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
    )
