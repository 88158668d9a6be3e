"""What the journal API takes and returns: states, :class:`MessageMeta` and frozen records.

Records are plain frozen dataclasses copied out of the database inside the transaction, so nothing
lazy-loads later and they may travel between threads, into Prefect results or into pandas
(``dataclasses.asdict``). Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import re
import uuid as _uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from xoev.message import XDOMEA_REPLY_TO, xdomea_message_key

from ..exceptions import JournalValueError

_TYPE_CODE = re.compile(r"(\d{4})$")

__all__ = [
    "AGENCY_MAX",
    "AttemptRecord",
    "CaseRecord",
    "CaseStatus",
    "CorrelationState",
    "DeliveryRecord",
    "DeliveryState",
    "Direction",
    "EventRecord",
    "ExpectationRecord",
    "ExpectationState",
    "MessageMeta",
    "MessageRecord",
    "OutboxEntry",
    "StatusChange",
    "check_agency",
    "check_case_id",
    "normalize_uuid",
    "xdomea_message_uuid",
]

AGENCY_MAX = 200
CASE_ID_MAX = 64
_CASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# whitespace other than the space (str.isspace semantics) and the C0 control characters
_CONTROL_RE = re.compile(r"[^\S ]|[\x00-\x1f\x7f]")
#: XÖV timestamps without offset are German local time.
XOEV_LOCAL_TZ = ZoneInfo("Europe/Berlin")


class Direction(StrEnum):
    INBOUND = "inbound"
    """Received by this installation (inbox)."""
    OUTBOUND = "outbound"
    """Sent by this installation (outbox)."""


class CaseStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    """Waiting for a reply or a deadline."""
    CLOSED = "closed"
    """Done; final."""
    FAILED = "failed"
    """Stopped by an error; may be reopened (→ open/waiting) after repair."""
    CANCELLED = "cancelled"
    """Withdrawn; final."""


#: Case statuses that cannot be left again.
FINAL_CASE_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED})
#: Case statuses that set ``closed_at``.
ENDED_CASE_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED, CaseStatus.FAILED})


class DeliveryState(StrEnum):
    """State of one message for one recipient agency (the XTA-like Laufzettel).

    ``created → sent → delivered → fetched``; ``created|sent|delivered|failed → failed`` on error,
    ``failed → sent`` on a successful retry, ``failed → dead`` when giving up, ``dead → created``
    to redeliver. ``fetched`` is final."""

    CREATED = "created"
    SENT = "sent"
    DELIVERED = "delivered"
    FETCHED = "fetched"
    FAILED = "failed"
    DEAD = "dead"


#: Allowed delivery transitions (a transition to the current state is a no-op, not listed).
DELIVERY_TRANSITIONS: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.CREATED: frozenset({DeliveryState.SENT, DeliveryState.FAILED}),
    DeliveryState.SENT: frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED}),
    DeliveryState.DELIVERED: frozenset({DeliveryState.FETCHED, DeliveryState.FAILED}),
    DeliveryState.FETCHED: frozenset(),
    DeliveryState.FAILED: frozenset({DeliveryState.SENT, DeliveryState.DEAD}),
    DeliveryState.DEAD: frozenset({DeliveryState.CREATED}),
}


class CorrelationState(StrEnum):
    """Where an inbound message stands with the procedures (outbound messages have none)."""

    UNMATCHED = "unmatched"
    """Kept; no procedure has claimed it yet (early reply, reply to an unknown case, request)."""
    MATCHED = "matched"
    """Assigned to a waiting expectation; its case is set."""
    CONSUMED = "consumed"
    """Processed by a procedure."""


class ExpectationState(StrEnum):
    WAITING = "waiting"
    SATISFIED = "satisfied"
    EXPIRED = "expired"


# --------------------------------------------------------------------------- validation


def normalize_uuid(value: object, field_name: str = "nachrichten_uuid") -> str:
    """The canonical lower-case 36-character form of a UUID; :class:`JournalValueError` if not."""
    if isinstance(value, _uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value.strip()):
        shown = value if isinstance(value, str) and len(value) <= 60 else type(value).__name__
        raise JournalValueError(field_name, f"not a UUID (8-4-4-4-12 hex digits): {shown!r}")
    return value.strip().lower()


def _check_text(value: object, field_name: str, max_len: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise JournalValueError(field_name, f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise JournalValueError(field_name, "must not be empty")
    if len(text) > max_len:
        raise JournalValueError(field_name, f"longer than {max_len} characters ({len(text)})")
    if _CONTROL_RE.search(text):
        raise JournalValueError(field_name, "contains control characters or line breaks")
    return text


def check_agency(value: object, field_name: str) -> str:
    """An agency id (Behördenkennung ``praefix:kennung``): non-empty, no whitespace, ≤ 200."""
    text = _check_text(value, field_name, AGENCY_MAX)
    if " " in text:
        raise JournalValueError(field_name, f"agency id contains a space: {text!r}")
    return text


def check_case_id(value: object, field_name: str = "case_id") -> str:
    """A case id such as ``05774032-2026-000123``: letters, digits, ``. _ : / -``, ≤ 64."""
    text = _check_text(value, field_name, CASE_ID_MAX)
    if not _CASE_ID_RE.fullmatch(text):
        raise JournalValueError(
            field_name, f"{text!r} is not a case id (letters, digits and . _ : / - only)"
        )
    return text


def _aware(value: datetime, field_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise JournalValueError(field_name, "timestamp without time zone (give an aware datetime)")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- message metadata


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message for :meth:`Journal.record_outbound_many`: its payload, Kopf facts,
    recipients (agency ids) and the actor the ``message.queued`` event names."""

    payload: bytes
    meta: MessageMeta
    recipients: Sequence[str]
    actor: str = "outbox"


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """The Nachrichtenkopf facts the journal keeps as columns. No personal data belongs here.

    ``author``/``reader`` are Behördenkennungen ``praefix:kennung``; ``created_at`` is the
    ``erstellungszeitpunkt`` (aware); ``in_reply_to`` the nachrichtenUUID this message answers,
    when the standard or the transport says so. Values are validated and normalised on creation
    (UUIDs lower-case, timestamps UTC)."""

    nachrichten_uuid: str
    standard: str
    version: str
    message_type: str
    author: str | None = None
    reader: str | None = None
    created_at: datetime | None = None
    in_reply_to: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "nachrichten_uuid", normalize_uuid(self.nachrichten_uuid))
        set_(self, "standard", _check_text(self.standard, "standard", 64))
        set_(self, "version", _check_text(self.version, "version", 32))
        set_(self, "message_type", _check_text(self.message_type, "message_type", 100))
        if self.author is not None:
            set_(self, "author", check_agency(self.author, "author"))
        if self.reader is not None:
            set_(self, "reader", check_agency(self.reader, "reader"))
        if self.created_at is not None:
            if not isinstance(self.created_at, datetime):
                raise JournalValueError("created_at", "expected a datetime")
            set_(self, "created_at", _aware(self.created_at, "created_at"))
        if self.in_reply_to is not None:
            set_(self, "in_reply_to", normalize_uuid(self.in_reply_to, "in_reply_to"))

    @classmethod
    def from_info(cls, info: object) -> MessageMeta:
        """Build from any object with the attributes ``nachrichten_uuid``, ``standard``,
        ``version``, ``message_type``, ``author``, ``reader``, ``erstellungszeitpunkt`` (and
        optionally ``in_reply_to``) — e.g. ``xoev.message.MessageInfo``.

        xdomea: the Kopf has only the ``ProzessID`` (one per process, for replies), which
        ``MessageInfo`` reports as ``nachrichten_uuid``. The journal then keys the message by
        :func:`xdomea_message_uuid` (ProzessID + message type) and sets ``in_reply_to`` to the
        ProzessID, so a procedure waits with ``expect_reply(in_reply_to=prozess_id,
        message_type=…)``. An ``info.prozess_id`` attribute, if present, is taken as the
        ProzessID and ``nachrichten_uuid`` kept as given.

        Code-like values (with a ``code`` attribute) give their code, other objects ``str()``;
        ``erstellungszeitpunkt`` may be a datetime or an ISO string, without offset meaning
        German local time."""

        def text(name: str, *, required: bool) -> str | None:
            value = getattr(info, name, None)
            if value is None:
                if required:
                    raise JournalValueError(name, f"missing on {type(info).__name__}")
                return None
            code = getattr(value, "code", None)
            if isinstance(code, str):
                return code
            return value if isinstance(value, str) else str(value)

        created = getattr(info, "erstellungszeitpunkt", None)
        if created is None:
            created = getattr(info, "created_at", None)
        if isinstance(created, str):
            try:
                created = datetime.fromisoformat(created.strip())
            except ValueError as exc:
                raise JournalValueError(
                    "erstellungszeitpunkt", f"not an ISO timestamp: {created!r}"
                ) from exc
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=XOEV_LOCAL_TZ)
        if created is not None and not isinstance(created, datetime):
            raise JournalValueError("erstellungszeitpunkt", f"unusable {type(created).__name__}")
        message_uuid = text("nachrichten_uuid", required=True) or ""
        standard = text("standard", required=True) or ""
        # the root element name (``abh.gewerbemeldung.0500``) names the type unambiguously
        # across standards; the bare code (``0500``) only where no root is given
        message_type = text("root", required=False) or text("message_type", required=True) or ""
        in_reply_to = text("in_reply_to", required=False)
        # xdomea has no per-message UUID: its Kopf carries the ProzessID, shared by every message
        # of one process. xoev.message.MessageInfo gives the key and in_reply_to (with
        # ``prozess_id``); an info that gives only the ProzessID is keyed here the same way.
        if standard.lower() == "xdomea" and text("prozess_id", required=False) is None:
            process = normalize_uuid(message_uuid, "ProzessID")
            code = _TYPE_CODE.search(message_type)
            type_code = code.group(1) if code else message_type
            message_uuid = xdomea_message_uuid(process, type_code)
            answered = XDOMEA_REPLY_TO.get(type_code)
            if in_reply_to is None and answered is not None:
                in_reply_to = xdomea_message_uuid(process, answered)
        return cls(
            nachrichten_uuid=message_uuid,
            standard=standard,
            version=text("version", required=True) or "",
            message_type=message_type,
            author=text("author", required=False),
            reader=text("reader", required=False),
            created_at=created,
            in_reply_to=in_reply_to,
        )


def xdomea_message_uuid(prozess_id: str, message_type: str) -> str:
    """The journal key of an xdomea message (:func:`xoev.message.xdomea_message_key` of its
    ProzessID and four-digit type code): stable for redeliveries, distinct for the messages of
    one process."""
    return xdomea_message_key(normalize_uuid(prozess_id, "ProzessID"), message_type)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CaseRecord:
    case_id: str
    procedure: str
    status: CaseStatus
    reference: str | None
    flow_run_id: str | None
    summary: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored message (without its payload: :meth:`Journal.payload`)."""

    id: int
    nachrichten_uuid: str
    direction: Direction
    standard: str
    version: str
    message_type: str
    author: str | None
    reader: str | None
    sender_agency: str | None
    case_id: str | None
    payload_sha512: str
    size: int
    """Bytes of the plaintext payload."""
    stored_size: int
    """Bytes stored (compressed, encrypted)."""
    encrypted: bool
    created_at: datetime | None
    """``erstellungszeitpunkt`` from the Nachrichtenkopf."""
    recorded_at: datetime
    """When the journal stored it (received, or queued for sending)."""
    in_reply_to: str | None
    correlation_state: CorrelationState | None
    """Inbound only: unmatched / matched / consumed."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One message for one recipient agency."""

    id: int
    message_id: int
    nachrichten_uuid: str
    direction: Direction
    case_id: str | None
    """The message's case."""
    recipient: str
    state: DeliveryState
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    delivery_id: int
    at: datetime
    ok: bool
    status_code: int | None
    error_class: str | None
    error: str | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    at: datetime
    actor: str
    kind: str
    case_id: str | None
    nachrichten_uuid: str | None
    delivery_id: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One line of a message's transport report (Laufzettel)."""

    at: datetime
    delivery_id: int
    direction: Direction
    recipient: str
    from_state: DeliveryState | None
    """``None`` when the delivery was created."""
    to_state: DeliveryState
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExpectationRecord:
    """A procedure waiting for a reply."""

    id: int
    case_id: str
    flow_run_id: str | None
    message_type: str | None
    from_agency: str | None
    in_reply_to: str | None
    state: ExpectationState
    reply_uuid: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
