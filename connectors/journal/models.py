"""The journal's tables (SQLAlchemy 2 declarative, typed).

The schema is created by the Alembic migrations in ``migrations/versions`` — never by
``metadata.create_all`` — and a test checks that the migrated database and these models agree.
States are stored as short strings with CHECK constraints (readable from pandas and ``psql``).

Timestamps are UTC: ``timestamptz`` on PostgreSQL; on SQLite ISO text without offset
(``2026-03-01 09:30:00.000000``), read back as aware UTC by :class:`UTCDateTime` — with pandas,
``pd.read_sql(..., parse_dates=[...])`` and ``utc=True``.

No personal data in any column except ``messages.payload`` (compressed, encrypted when a key is
set): the metadata columns come from the Nachrichtenkopf (agency ids, types, UUIDs); ``reference``,
``summary`` and event ``detail`` are for pseudonymised, non-personal facts only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .records import (
    CaseStatus,
    CorrelationState,
    DeliveryState,
    Direction,
    ExpectationState,
)

__all__ = [
    "Base",
    "Blob",
    "Case",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "Expectation",
    "JournalSeal",
    "Message",
    "MessageBlob",
    "UTCDateTime",
    "metadata",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC
    and get ``tzinfo=UTC`` back when read. Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the journal; use an aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: 64-bit ids; SQLite only autoincrements ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: type) -> str:
    members = ", ".join(f"'{m.value}'" for m in values)  # type: ignore[attr-defined]
    return f"{column} IN ({members})"


metadata = MetaData(naming_convention=NAMING)


class Base(DeclarativeBase):
    metadata = metadata


class Case(Base):
    """A procedure instance (Vorgang): one Prefect flow run or a chain of them."""

    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    procedure: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(200))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(_in("status", CaseStatus), name="status"),
        Index(None, "status"),
        Index(None, "procedure"),
        Index(None, "flow_run_id"),
    )


class Message(Base):
    """A message as received (inbound) or to be sent (outbound).

    ``(nachrichten_uuid, direction)`` is unique: a message sent to an agency served by this same
    installation is stored twice, once per side, each with its own case."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nachrichten_uuid: Mapped[str] = mapped_column(String(36))
    direction: Mapped[str] = mapped_column(String(8))
    standard: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    message_type: Mapped[str] = mapped_column(String(100))
    author: Mapped[str | None] = mapped_column(String(200))
    reader: Mapped[str | None] = mapped_column(String(200))
    sender_agency: Mapped[str | None] = mapped_column(String(200))
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.case_id"))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_encoding: Mapped[str] = mapped_column(String(16))
    payload_sha512: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    in_reply_to: Mapped[str | None] = mapped_column(String(36))
    correlation_state: Mapped[str | None] = mapped_column(String(10))

    __table_args__ = (
        UniqueConstraint("nachrichten_uuid", "direction"),
        CheckConstraint(_in("direction", Direction), name="direction"),
        CheckConstraint("payload_encoding IN ('zlib', 'zlib+fernet')", name="payload_encoding"),
        CheckConstraint(
            f"(direction = 'outbound' AND correlation_state IS NULL) OR "
            f"(direction = 'inbound' AND {_in('correlation_state', CorrelationState)})",
            name="correlation_state",
        ),
        Index(None, "case_id"),
        Index(None, "in_reply_to"),
        Index(None, "direction", "correlation_state"),
        Index(None, "recorded_at"),
    )


class Delivery(Base):
    """One message for one recipient agency; its state is the Laufzettel's current line."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    recipient: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("message_id", "recipient"),
        CheckConstraint(_in("state", DeliveryState), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(None, "recipient", "state"),
        Index(None, "state", "next_attempt_at"),
    )


class DeliveryAttempt(Base):
    """One try to hand a delivery to its recipient."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(8))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("outcome IN ('ok', 'error')", name="outcome"),
        Index(None, "delivery_id"),
    )


class Event(Base):
    """Append-only audit log. Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    No foreign keys on purpose: the log also records things about messages that were refused and
    never stored, and must stay writable whatever else happens."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(64))
    nachrichten_uuid: Mapped[str | None] = mapped_column(String(36))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The seal (:mod:`connectors.journal.seal`): position in the hash chain, the previous event's
    # hash and this event's hash = sha256(prev_hash || canonical content). ``message_id`` and
    # ``message_digest`` bind the message row an event records (acceptance, queueing) into the
    # chain. Nullable only so that a row inserted behind the journal's back is visible as
    # unsealed to ``amtsbote journal verify`` instead of failing the insert.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    message_digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(None, "case_id"),
        Index(None, "nachrichten_uuid"),
        Index(None, "delivery_id"),
        Index(None, "at"),
        Index(None, "seq", unique=True),
        Index(None, "message_id"),
    )


class JournalSeal(Base):
    """The head of the event hash chain: one row (``id = 1``), locked by every append
    (``SELECT … FOR UPDATE`` on PostgreSQL) so that concurrent writers never fork the chain."""

    __tablename__ = "journal_seal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("seq >= 0", name="seq"),
    )


class Expectation(Base):
    """A procedure waiting for a reply (correlation).

    A waiting expectation matches an *unmatched* inbound message when every criterion it sets
    holds: ``in_reply_to`` equal, ``message_type`` equal, ``from_agency`` equal to the message's
    author, and the message has no case or this case."""

    __tablename__ = "expectations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    message_type: Mapped[str | None] = mapped_column(String(100))
    from_agency: Mapped[str | None] = mapped_column(String(200))
    in_reply_to: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(10))
    reply_uuid: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(_in("state", ExpectationState), name="state"),
        CheckConstraint("in_reply_to IS NOT NULL OR message_type IS NOT NULL", name="criterion"),
        Index(None, "case_id"),
        Index(None, "state", "in_reply_to"),
        Index(None, "flow_run_id"),
    )


class Blob(Base):
    """A primary document stored outside the rows: a content-addressed file below the data dir
    (:mod:`connectors.journal.blobs`). ``digest`` is the SHA-512 (hex) of the plaintext; ``size``
    the plaintext's bytes, ``stored_size`` the file's (larger when encrypted)."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    encrypted: Mapped[bool] = mapped_column(Boolean)
    created: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("size >= 0 AND stored_size >= 0", name="size"),
        CheckConstraint("length(digest) = 128", name="digest"),
    )


class MessageBlob(Base):
    """A file of a message (e.g. a primary document of an xdomea 0503) under the name the message
    gives it (``Dateiname``). ``message_key`` is the message's journal key (nachrichtenUUID, for
    xdomea the key derived from ProzessID and type); no foreign key to ``messages``, because a big
    delivery is streamed to disk before its message is recorded."""

    __tablename__ = "message_blobs"

    message_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"))

    __table_args__ = (Index(None, "digest"),)


class JournalSecret(Base):
    """Random secrets of this installation, created on first use and never changed: the keys of
    keyed derivations (outgoing nachrichtenUUIDs; the journal key of a message whose UUID another
    sender used first). Kept in the journal so that every node of an installation derives the
    same values (:mod:`connectors.journal.repo.secrets`)."""

    __tablename__ = "journal_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
