"""Messages: every XÖV message received or sent (``messages``), its payload compressed and —
with a key — encrypted, recorded idempotently by nachrichtenUUID together with its deliveries
and events in one transaction."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ...exceptions import (
    JournalNotFoundError,
    JournalValueError,
    MessageConflictError,
    PayloadPurgedError,
)
from ..crypto import EncodedPayload
from ..engine import WRITE_OPTION
from ..records import (
    CorrelationState,
    DeliveryRecord,
    DeliveryState,
    Direction,
    MessageMeta,
    MessageRecord,
    OutboxEntry,
    check_agency,
    check_case_id,
    normalize_uuid,
)
from ..retention import is_purged
from ..seal import event_hash, message_digest
from .base import (
    T_DELIVERIES,
    T_MESSAGES,
    JournalBase,
    as_aware,
    as_enum,
    check_limit,
    insert_ignore,
    retry_on_disconnect,
    utcnow,
)
from .deliveries import add_delivery, add_delivery_ignore, deliveries_of
from .events import insert_events
from .rows import (
    MESSAGE_COLUMNS,
    delivery_record,
    event_row,
    message_detail,
    message_record,
    message_row,
    new_delivery_row,
    state_event,
)
from .secrets import keyed_uuid, secret_of

__all__ = ["MessageRepository", "insert_message", "message_by_uuid"]

_M = T_MESSAGES.c
#: The secret the per-sender keys of inbound messages are derived from.
_INBOUND_KEY = "inbound-key"
#: ``_inbound_again``'s conflict when the stored message is another sender's.
_FOREIGN = "another sender's message"


#: record_inbound on PostgreSQL, 1 of 2: lock the chain head and reserve the ids the events
#: must name (they are part of the sealed content).
_PG_RESERVE = text(
    "SELECT s.seq, s.hash, nextval(pg_get_serial_sequence('messages', 'id')), "
    "nextval(pg_get_serial_sequence('deliveries', 'id')) "
    "FROM journal_seal s WHERE s.id = 1 FOR UPDATE"
)
#: 2 of 2: message, mailbox delivery, sealed events and the new head in one statement.
_PG_INBOUND = text(
    """
WITH m AS (
    INSERT INTO messages (id, nachrichten_uuid, direction, standard, version, message_type,
        author, reader, sender_agency, case_id, payload, payload_encoding, payload_sha512, size,
        created_at, recorded_at, in_reply_to, correlation_state)
    VALUES (:message_id, :nachrichten_uuid, :direction, :standard, :version, :message_type,
        :author, :reader, :sender_agency, :case_id, :payload, :payload_encoding,
        :payload_sha512, :size, :created_at, :recorded_at, :in_reply_to, :correlation_state)
    ON CONFLICT (nachrichten_uuid, direction) DO NOTHING
    RETURNING id
), d AS (
    INSERT INTO deliveries (id, message_id, recipient, state, attempts, created_at, updated_at)
    SELECT CAST(:delivery_id AS bigint), m.id, CAST(:recipient AS varchar),
        CAST(:state AS varchar), 0, CAST(:recorded_at AS timestamptz),
        CAST(:recorded_at AS timestamptz)
    FROM m WHERE CAST(:with_delivery AS boolean)
    RETURNING id
), e AS (
    INSERT INTO events (at, actor, kind, case_id, nachrichten_uuid, delivery_id, detail,
        seq, prev_hash, hash, message_id, message_digest)
    SELECT CAST(:recorded_at AS timestamptz), CAST(:actor AS varchar), 'message.received',
        CAST(:case_id AS varchar), CAST(:nachrichten_uuid AS varchar), CAST(NULL AS bigint),
        CAST(:detail_received AS jsonb), CAST(:seq1 AS bigint), CAST(:prev1 AS varchar),
        CAST(:hash1 AS varchar), m.id, CAST(:digest AS varchar)
    FROM m
    UNION ALL
    SELECT CAST(:recorded_at AS timestamptz), CAST(:actor AS varchar), 'delivery.state',
        CAST(:case_id AS varchar), CAST(:nachrichten_uuid AS varchar), d.id,
        CAST(:detail_mailbox AS jsonb), CAST(:seq2 AS bigint), CAST(:hash1 AS varchar),
        CAST(:hash2 AS varchar), CAST(NULL AS bigint), CAST(NULL AS varchar)
    FROM d
), h AS (
    UPDATE journal_seal SET seq = CAST(:head_seq AS bigint), hash = CAST(:head_hash AS varchar)
    WHERE id = 1 AND EXISTS (SELECT 1 FROM m)
)
SELECT id FROM m
"""
)


@functools.cache
def insert_message(dialect: str) -> Any:
    """INSERT of a message, ignored when (nachrichtenUUID, direction) is stored already."""
    return insert_ignore(dialect, T_MESSAGES, "nachrichten_uuid", "direction").returning(
        T_MESSAGES.c.id
    )


def seal_message(event: dict[str, Any], row: dict[str, Any], message_id: int) -> None:
    """Bind the message row just inserted into the chain through the event recording it."""
    event["message_id"] = int(message_id)
    event["message_digest"] = message_digest({**row, "id": int(message_id)})


def message_by_uuid(
    conn: Connection,
    uuid: str,
    direction: Direction | None,
    *,
    lock: bool = False,
) -> MessageRecord:
    """The message ``uuid`` (of ``direction``; without it the inbound copy first)."""
    stmt = select(*MESSAGE_COLUMNS).where(_M.nachrichten_uuid == uuid)
    if direction is not None:
        stmt = stmt.where(_M.direction == direction.value)
    # Both copies exist only for a message between two agencies of this installation:
    # prefer the receiving side's ("inbound" sorts first).
    stmt = stmt.order_by(_M.direction)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt.limit(1)).mappings().first()
    if row is None:
        what = f"{direction.value} message" if direction else "message"
        raise JournalNotFoundError(what, uuid)
    return message_record(row)


class MessageRepository(JournalBase):
    """Recording inbound and outbound messages; reading their metadata and payloads."""

    @retry_on_disconnect
    def record_inbound(
        self,
        payload: bytes,
        meta: MessageMeta,
        *,
        sender_agency: str | None = None,
        recipient: str | None = None,
        case_id: str | None = None,
        initial_state: DeliveryState | str | None = DeliveryState.DELIVERED,
        actor: str = "inbox",
    ) -> tuple[MessageRecord, bool]:
        """Store a received message; idempotent by nachrichtenUUID. Returns ``(message, created)``.

        One transaction: the message (``correlation_state=unmatched``), its mailbox delivery for
        ``recipient`` (default ``meta.reader``) in ``initial_state`` (default ``delivered``, i.e.
        waiting in the mailbox; ``None``: no mailbox entry) and the events. A repeat with the
        same payload returns the stored message (``created=False``) and adds a mailbox delivery
        only for a recipient not seen before; a repeat with a different payload raises
        :class:`MessageConflictError` (the first one stays, the attempt is logged).
        ``sender_agency`` is the transport-level sender (authenticated client), if known."""
        if not isinstance(meta, MessageMeta):
            raise JournalValueError("meta", f"expected MessageMeta, got {type(meta).__name__}")
        sender = check_agency(sender_agency, "sender_agency") if sender_agency is not None else None
        state = as_enum(DeliveryState, initial_state, "initial_state") if initial_state else None
        if state is not None:
            recipient = recipient if recipient is not None else meta.reader
            if recipient is None:
                raise JournalValueError(
                    "recipient",
                    f"message {meta.nachrichten_uuid} has no reader; name the recipient",
                )
            recipient = check_agency(recipient, "recipient")
        case = check_case_id(case_id) if case_id is not None else None
        actor = self._actor(actor)
        encoded = self._codec.encode(payload)
        now = utcnow()
        uuid = meta.nachrichten_uuid
        # The UUID as sent first; when another sender holds it, this sender's own key.
        keys = (uuid if i == 0 else self.inbound_key(uuid, sender) for i in range(2))
        for key in keys:
            row = message_row(meta, encoded, Direction.INBOUND, sender, case, now)
            row["nachrichten_uuid"] = key
            row["correlation_state"] = CorrelationState.UNMATCHED.value
            detail = message_detail(meta, encoded.size, sender)
            if key != uuid:
                detail["sent_as"] = uuid
            received = event_row(
                "message.received", actor, now, case_id=case, nachrichten_uuid=key, detail=detail
            )
            mailbox = None
            if state is not None:
                assert recipient is not None
                mailbox = state_event(
                    actor, now, key, case, 0, Direction.INBOUND, recipient, None, state
                )
            # One transaction: the message, its mailbox delivery and the events, sealed into
            # the hash chain (the chain head is locked until commit).
            if self._dialect == "postgresql":
                message_id = self._pg_insert_inbound(row, recipient, state, received, mailbox)
                if message_id is not None:
                    return message_record(row, message_id, len(encoded.data)), True
                with self._tx("record_inbound") as conn:
                    existing, conflict = self._inbound_again(
                        conn, key, encoded.sha512, sender, recipient, state, actor, now
                    )
            else:
                with self._tx("record_inbound") as conn:
                    if case is not None:
                        self._require_case(conn, case)
                    message_id = conn.execute(insert_message(self._dialect), row).scalar()
                    if message_id is not None:
                        seal_message(received, row, message_id)
                        events = [received]
                        if state is not None and mailbox is not None:
                            assert recipient is not None
                            mailbox["delivery_id"] = add_delivery(
                                conn, message_id, recipient, state, now
                            )
                            events.append(mailbox)
                        insert_events(conn, events)
                        return message_record(row, message_id, len(encoded.data)), True
                    existing, conflict = self._inbound_again(
                        conn, key, encoded.sha512, sender, recipient, state, actor, now
                    )
            if conflict is _FOREIGN:
                continue  # another sender's message: try this sender's own key
            if conflict is not None:
                raise MessageConflictError(uuid, "inbound", conflict)
            return existing, False
        # the sender's own key is held by another sender: only by tampering with the rows
        raise MessageConflictError(uuid, "inbound", "its key is held by another sender")

    def inbound_key(self, nachrichten_uuid: str, sender_agency: str | None) -> str:
        """The journal key of an inbound message of ``sender_agency`` whose UUID another sender
        used first: keyed from the installation's secret, the sender and the UUID, so the same
        for every repeat and unguessable for the other senders (no one can take it first)."""
        return keyed_uuid(secret_of(self, _INBOUND_KEY), sender_agency or "", nachrichten_uuid)

    def _pg_insert_inbound(
        self,
        row: dict[str, Any],
        recipient: str | None,
        state: DeliveryState | None,
        received: dict[str, Any],
        mailbox: dict[str, Any] | None,
    ) -> int | None:
        """PostgreSQL: two statements in one transaction — lock the chain head and reserve the
        ids, then message, mailbox delivery, sealed events and head in one statement. ``None``
        when the UUID is stored already (nothing written, the head unchanged)."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    seq, prev, message_id, delivery_id = conn.execute(_PG_RESERVE).one()
                    seal_message(received, row, int(message_id))
                    received["seq"], received["prev_hash"] = int(seq) + 1, str(prev)
                    received["hash"] = event_hash(str(prev), received)
                    head_seq, head_hash = received["seq"], received["hash"]
                    params = dict(row)
                    params.update(
                        message_id=int(message_id),
                        delivery_id=int(delivery_id),
                        recipient=recipient,
                        state=state.value if state is not None else None,
                        with_delivery=state is not None,
                        actor=received["actor"],
                        detail_received=json.dumps(received["detail"]),
                        detail_mailbox=json.dumps(mailbox["detail"] if mailbox else {}),
                        seq1=received["seq"],
                        prev1=str(prev),
                        hash1=received["hash"],
                        digest=received["message_digest"],
                        seq2=None,
                        hash2=None,
                    )
                    if state is not None and mailbox is not None:
                        mailbox.update(
                            delivery_id=int(delivery_id),
                            message_id=None,
                            message_digest=None,
                            seq=head_seq + 1,
                            prev_hash=head_hash,
                        )
                        mailbox["hash"] = event_hash(head_hash, mailbox)
                        head_seq, head_hash = mailbox["seq"], mailbox["hash"]
                        params.update(seq2=mailbox["seq"], hash2=mailbox["hash"])
                    params.update(head_seq=head_seq, head_hash=head_hash)
                    inserted = conn.execute(_PG_INBOUND, params).scalar()
                    return int(inserted) if inserted is not None else None
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == "23503" and row["case_id"] is not None:
                raise JournalNotFoundError("case", row["case_id"]) from exc
            raise self._translate(exc, "record_inbound") from exc
        except SQLAlchemyError as exc:
            raise self._translate(exc, "record_inbound") from exc

    def _inbound_again(
        self,
        conn: Connection,
        uuid: str,
        sha512: str,
        sender: str | None,
        recipient: str | None,
        state: DeliveryState | None,
        actor: str,
        now: datetime,
    ) -> tuple[MessageRecord, str | None]:
        """A repeated inbound UUID: the stored record and the conflict, if any — :data:`_FOREIGN`
        (nothing written) when another sender's message holds it."""
        existing = message_by_uuid(conn, uuid, Direction.INBOUND)
        if existing.sender_agency != sender:
            return existing, _FOREIGN
        if existing.payload_sha512 != sha512:
            insert_events(
                conn,
                [
                    event_row(
                        "message.conflict",
                        actor,
                        now,
                        nachrichten_uuid=uuid,
                        detail={
                            "direction": "inbound",
                            "stored_sha512": existing.payload_sha512,
                            "offered_sha512": sha512,
                            "sender_agency": sender,
                        },
                    )
                ],
            )
            return existing, "a different payload (SHA-512 differs)"
        if state is not None and recipient is not None:
            added = add_delivery_ignore(conn, self._dialect, existing.id, recipient, state, now)
            if added is not None:
                insert_events(
                    conn,
                    [
                        state_event(
                            actor,
                            now,
                            uuid,
                            existing.case_id,
                            added,
                            Direction.INBOUND,
                            recipient,
                            None,
                            state,
                        )
                    ],
                )
        return existing, None

    def record_outbound(
        self,
        payload: bytes,
        meta: MessageMeta,
        *,
        recipients: Sequence[str],
        case_id: str | None = None,
        sender_agency: str | None = None,
        actor: str = "outbox",
    ) -> tuple[MessageRecord, list[DeliveryRecord], bool]:
        """Put a message into the outbox: the message and one ``created`` delivery per recipient,
        in one transaction. Returns ``(message, deliveries, created)``.

        The nachrichtenUUID is fixed from here on; a repeat with the same payload and recipients
        returns what is stored (``created=False``), anything else raises
        :class:`MessageConflictError`. ``sender_agency`` defaults to ``meta.author``."""
        if not isinstance(meta, MessageMeta):
            raise JournalValueError("meta", f"expected MessageMeta, got {type(meta).__name__}")
        [result] = self.record_outbound_many(
            [OutboxEntry(payload, meta, recipients, actor)],
            case_id=case_id,
            sender_agency=sender_agency if sender_agency is not None else meta.author,
        )
        return result

    @retry_on_disconnect
    def record_outbound_many(
        self,
        entries: Sequence[OutboxEntry],
        *,
        case_id: str | None = None,
        sender_agency: str | None = None,
    ) -> list[tuple[MessageRecord, list[DeliveryRecord], bool]]:
        """:meth:`record_outbound` for several messages of one case and sender, all in one
        transaction (one seal of the chain for all their events): either every message is in
        the outbox afterwards or — on a conflict or an error — none of those new. Returns one
        ``(message, deliveries, created)`` per entry, in order."""
        sender = check_agency(sender_agency, "sender_agency") if sender_agency is not None else None
        case = check_case_id(case_id) if case_id is not None else None
        prepared = [self._outbox_entry(e, sender, case) for e in entries]
        if not prepared:
            return []
        results: list[tuple[MessageRecord, list[DeliveryRecord], bool]] = []
        events: list[dict[str, Any]] = []
        with self._tx("record_outbound") as conn:
            if case is not None:
                self._require_case(conn, case)
            for entry, encoded, row, wanted, actor in prepared:
                uuid = entry.meta.nachrichten_uuid
                message_id = conn.execute(insert_message(self._dialect), row).scalar()
                if message_id is None:
                    existing = message_by_uuid(conn, uuid, Direction.OUTBOUND)
                    stored = deliveries_of(conn, existing.id)
                    _check_repeat(uuid, existing, stored, encoded.sha512, wanted)
                    results.append((existing, stored, False))
                    continue
                now = row["recorded_at"]
                rows = [new_delivery_row(message_id, r, DeliveryState.CREATED, now) for r in wanted]
                ids = (
                    conn.execute(
                        insert(T_DELIVERIES).returning(
                            T_DELIVERIES.c.id, sort_by_parameter_order=True
                        ),
                        rows,
                    )
                    .scalars()
                    .all()
                )
                queued = event_row(
                    "message.queued",
                    actor,
                    now,
                    case_id=case,
                    nachrichten_uuid=uuid,
                    detail={
                        **message_detail(entry.meta, encoded.size, sender),
                        "recipients": wanted,
                    },
                )
                seal_message(queued, row, message_id)
                events.append(queued)
                events.extend(
                    state_event(
                        actor,
                        now,
                        uuid,
                        case,
                        did,
                        Direction.OUTBOUND,
                        r,
                        None,
                        DeliveryState.CREATED,
                    )
                    for did, r in zip(ids, wanted, strict=True)
                )
                deliveries = [
                    delivery_record(
                        {
                            **r,
                            "id": did,
                            "nachrichten_uuid": uuid,
                            "direction": Direction.OUTBOUND.value,
                            "case_id": case,
                        }
                    )
                    for did, r in zip(ids, rows, strict=True)
                ]
                results.append(
                    (message_record(row, message_id, len(encoded.data)), deliveries, True)
                )
            insert_events(conn, events)
        return results

    def _outbox_entry(
        self, entry: OutboxEntry, sender: str | None, case: str | None
    ) -> tuple[OutboxEntry, EncodedPayload, dict[str, Any], list[str], str]:
        """An entry checked and encoded: ``(entry, encoded, row, recipients, actor)``."""
        if not isinstance(entry, OutboxEntry):
            raise JournalValueError("entries", f"expected OutboxEntry, got {type(entry).__name__}")
        if not isinstance(entry.meta, MessageMeta):
            raise JournalValueError(
                "meta", f"expected MessageMeta, got {type(entry.meta).__name__}"
            )
        if isinstance(entry.recipients, str):
            raise JournalValueError("recipients", "expected a sequence of agency ids, not a string")
        wanted: list[str] = []
        for r in entry.recipients:
            agency = check_agency(r, "recipients")
            if agency not in wanted:
                wanted.append(agency)
        if not wanted:
            raise JournalValueError("recipients", "at least one recipient is needed")
        encoded = self._codec.encode(entry.payload)
        row = message_row(entry.meta, encoded, Direction.OUTBOUND, sender, case, utcnow())
        row["correlation_state"] = None
        return entry, encoded, row, wanted, self._actor(entry.actor)

    @retry_on_disconnect
    def get_message(
        self,
        nachrichten_uuid: str,
        *,
        direction: Direction | str | None = None,
        sender_agency: str | None = None,
    ) -> MessageRecord:
        """Metadata of a message (no payload). Without ``direction``, when the journal holds
        both copies (a message between two agencies served here), the inbound one. With
        ``sender_agency``, the inbound message that agency sent with this UUID (whether it is
        kept under the UUID or under the sender's own key): another sender's is not found."""
        uuid = normalize_uuid(nachrichten_uuid)
        way = as_enum(Direction, direction, "direction") if direction is not None else None
        if sender_agency is not None:
            sender = check_agency(sender_agency, "sender_agency")
            keys = [uuid, self.inbound_key(uuid, sender)]
            stmt = select(*MESSAGE_COLUMNS).where(
                _M.nachrichten_uuid.in_(keys),
                _M.direction == Direction.INBOUND.value,
                _M.sender_agency == sender,
            )
            with self._tx("get_message", write=False) as conn:
                row = conn.execute(stmt.limit(1)).mappings().first()
            if row is None:
                raise JournalNotFoundError("inbound message", uuid)
            return message_record(row)
        with self._tx("get_message", write=False) as conn:
            return message_by_uuid(conn, uuid, way)

    @retry_on_disconnect
    def payload(self, nachrichten_uuid: str, *, direction: Direction | str | None = None) -> bytes:
        """The original bytes of a message (by its journal key): decrypted, decompressed and
        checked against the recorded SHA-512 (:class:`PayloadIntegrityError` /
        :class:`JournalKeyError` otherwise; :class:`PayloadPurgedError` when retention has
        replaced it by its tombstone)."""
        uuid = normalize_uuid(nachrichten_uuid)
        way = as_enum(Direction, direction, "direction") if direction is not None else None
        stmt = select(_M.payload, _M.payload_encoding, _M.payload_sha512).where(
            _M.nachrichten_uuid == uuid
        )
        if way is not None:
            stmt = stmt.where(_M.direction == way.value)
        with self._tx("payload", write=False) as conn:
            row = conn.execute(stmt.order_by(_M.direction).limit(1)).first()
        if row is None:
            raise JournalNotFoundError("message", uuid)
        if is_purged(row.payload):
            raise PayloadPurgedError(uuid)
        return self._codec.decode(
            row.payload, row.payload_encoding, row.payload_sha512, nachrichten_uuid=uuid
        )

    @retry_on_disconnect
    def messages(
        self,
        *,
        case_id: str | None = None,
        direction: Direction | str | None = None,
        message_type: str | None = None,
        correlation_state: CorrelationState | str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        """Messages in the order recorded, filtered by case, direction, type, correlation
        state, and ``recorded_at >= since``."""
        stmt = select(*MESSAGE_COLUMNS).order_by(_M.recorded_at, _M.id)
        if case_id is not None:
            stmt = stmt.where(_M.case_id == check_case_id(case_id))
        if direction is not None:
            stmt = stmt.where(_M.direction == as_enum(Direction, direction, "direction").value)
        if message_type is not None:
            stmt = stmt.where(_M.message_type == message_type)
        if correlation_state is not None:
            cs = as_enum(CorrelationState, correlation_state, "correlation_state")
            stmt = stmt.where(_M.correlation_state == cs.value)
        if since is not None:
            stmt = stmt.where(_M.recorded_at >= as_aware(since, "since"))
        stmt = stmt.limit(check_limit(limit))
        with self._tx("messages", write=False) as conn:
            return [message_record(r) for r in conn.execute(stmt).mappings()]


def _check_repeat(
    uuid: str,
    existing: MessageRecord,
    stored: list[DeliveryRecord],
    sha512: str,
    wanted: list[str],
) -> None:
    """A repeated outbound message must be the stored one: same payload, same recipients."""
    if existing.payload_sha512 != sha512:
        raise MessageConflictError(uuid, "outbound", "a different payload (SHA-512 differs)")
    if {d.recipient for d in stored} != set(wanted):
        raise MessageConflictError(
            uuid,
            "outbound",
            f"other recipients ({', '.join(sorted(d.recipient for d in stored))})",
        )
