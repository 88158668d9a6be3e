"""The sealed journal: a SHA-256 hash chain over the event log that also binds the message rows.

Every event row carries ``seq`` (its position, 1, 2, 3 … without gaps), ``prev_hash`` (the hash
of the event before it; :data:`GENESIS` for the first) and ``hash``::

    hash = sha256(bytes.fromhex(prev_hash) || canonical(event))

``canonical(event)`` is the compact JSON array of :data:`CHAIN_VERSION`, ``seq``, ``at`` (UTC,
microseconds), ``actor``, ``kind``, ``case_id``, ``nachrichten_uuid``, ``delivery_id``,
``detail`` (keys sorted), ``message_id`` and ``message_digest`` (see :func:`event_content`).

Message rows: the event that records a message (``message.received``, ``message.queued``, and
``message.sealed`` for messages stored before the seal existed) carries its ``message_id`` and
``message_digest`` = sha256 of the message's identifying columns and its payload SHA-512
(:data:`SEALED_MESSAGE_COLUMNS`; not the payload bytes, which retention may replace by a
tombstone, nor the correlation state and case, which change legitimately). The payload itself
is covered by its SHA-512, which :meth:`Journal.payload` checks on every read.

The head (``journal_seal``, one row) holds the last ``seq`` and ``hash``. :func:`append_events`
locks it (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers with ``BEGIN
IMMEDIATE``), chains the new rows, inserts them and moves the head — all in the caller's
transaction, so concurrent writers never fork the chain and a rolled-back transaction leaves
no hole. Cost per append: one primary-key read and one update of the head row.

:func:`verify` checks the whole journal: schema revision, append-only triggers, the chain
(gaps, changed rows, unsealed rows, a truncated tail) and the message rows. It needs only an
engine; no Prefect, no key (payloads are not decrypted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.engine import Connection

from . import migrate
from .models import metadata

__all__ = [
    "CHAIN_VERSION",
    "GENESIS",
    "SEALED_MESSAGE_COLUMNS",
    "Finding",
    "SealReport",
    "append_events",
    "chain_head",
    "event_content",
    "event_hash",
    "expected_triggers",
    "message_digest",
    "seal_existing",
    "verify",
]

CHAIN_VERSION = "amtsbote-chain-1"
#: ``prev_hash`` of the first event.
GENESIS = "0" * 64
T_EVENTS = metadata.tables["events"]
T_MESSAGES = metadata.tables["messages"]
T_SEAL = metadata.tables["journal_seal"]
#: The message columns bound into the chain (they never change after the insert; a trigger
#: refuses updates of them).
SEALED_MESSAGE_COLUMNS = (
    "id",
    "nachrichten_uuid",
    "direction",
    "standard",
    "version",
    "message_type",
    "author",
    "reader",
    "sender_agency",
    "payload_sha512",
    "size",
    "created_at",
    "recorded_at",
    "in_reply_to",
)
EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "kind",
    "case_id",
    "nachrichten_uuid",
    "delivery_id",
    "detail",
    "message_id",
    "message_digest",
)
#: Triggers that keep ``events`` append-only and the sealed message columns unchanged.
_TRIGGERS = {
    "sqlite": ("events_no_update", "events_no_delete", "messages_sealed", "messages_no_delete"),
    "postgresql": ("events_append_only", "events_no_truncate", "messages_sealed"),
}


# --------------------------------------------------------------------------- canonical forms


def _ts(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # raw SQLite text (UTC without offset)
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    """JSON values as every backend gives them back: integral floats as ints (PostgreSQL
    ``jsonb`` stores numbers as ``numeric``), tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _detail(value: Any) -> Any:
    if isinstance(value, (str, bytes)):  # a JSON column read as text
        value = json.loads(value)
    return _plain(value if value is not None else {})


def event_content(row: Mapping[Any, Any]) -> bytes:
    """The canonical bytes of an event row (as inserted or as read back)."""
    delivery = row.get("delivery_id")
    message = row.get("message_id")
    return _dumps(
        [
            CHAIN_VERSION,
            int(row["seq"]),
            _ts(row["at"]),
            row["actor"],
            row["kind"],
            row.get("case_id"),
            row.get("nachrichten_uuid"),
            int(delivery) if delivery is not None else None,
            _detail(row.get("detail")),
            int(message) if message is not None else None,
            row.get("message_digest"),
        ]
    )


def event_hash(prev_hash: str, row: Mapping[Any, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + event_content(row)).hexdigest()


def message_digest(row: Mapping[Any, Any]) -> str:
    """sha256 over a message row's :data:`SEALED_MESSAGE_COLUMNS` (``row`` needs ``id``)."""
    values: list[Any] = [CHAIN_VERSION]
    for name in SEALED_MESSAGE_COLUMNS:
        value = row.get(name)
        if name in ("created_at", "recorded_at"):
            value = _ts(value)
        elif name in ("id", "size") and value is not None:
            value = int(value)
        values.append(value)
    return hashlib.sha256(_dumps(values)).hexdigest()


# --------------------------------------------------------------------------- appending


_HEAD = text("SELECT seq, hash FROM journal_seal WHERE id = 1")
_HEAD_LOCKED = text("SELECT seq, hash FROM journal_seal WHERE id = 1 FOR UPDATE")
_MOVE_HEAD = text("UPDATE journal_seal SET seq = :seq, hash = :hash WHERE id = 1")
_INSERT = insert(T_EVENTS)
_INSERT_ID = insert(T_EVENTS).returning(T_EVENTS.c.id)
_INSERT_IDS = insert(T_EVENTS).returning(T_EVENTS.c.id, sort_by_parameter_order=True)


def chain_head(conn: Connection, *, lock: bool = False) -> tuple[int, str]:
    """``(seq, hash)`` of the last sealed event; ``lock`` holds the head until commit
    (PostgreSQL; SQLite's write transactions are serialised already)."""
    locked = lock and conn.dialect.name == "postgresql"
    row = conn.execute(_HEAD_LOCKED if locked else _HEAD).first()
    if row is None:
        raise LookupError("the journal's chain head (table journal_seal) is missing")
    return int(row[0]), str(row[1])


def _chain(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    seq, prev = chain_head(conn, lock=True)
    for row in rows:
        seq += 1
        row.setdefault("message_id", None)
        row.setdefault("message_digest", None)
        row["seq"] = seq
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(prev, row)
    conn.execute(_MOVE_HEAD, {"seq": seq, "hash": prev})


def append_events(
    conn: Connection, rows: Sequence[dict[str, Any]], *, ids: bool = False
) -> list[int]:
    """Seal and insert ``rows`` (dicts with the event columns) in the caller's write
    transaction; the rows get ``seq``/``prev_hash``/``hash`` set. With ``ids`` the new event ids
    are returned (in order)."""
    if not rows:
        return []
    _chain(conn, rows)
    if not ids:
        conn.execute(_INSERT, rows[0] if len(rows) == 1 else list(rows))
        return []
    if len(rows) == 1:
        return [int(conn.execute(_INSERT_ID, rows[0]).scalar_one())]
    return [int(i) for i in conn.execute(_INSERT_IDS, list(rows)).scalars()]


def seal_existing(conn: Connection, at: datetime) -> tuple[int, int]:
    """Chain the events stored before the seal (in id order) and append one ``message.sealed``
    event per stored message. For the migration; the triggers must be off. Returns
    ``(events, messages)`` sealed."""
    conn.execute(insert(T_SEAL).values(id=1, seq=0, hash=GENESIS))
    e = T_EVENTS.c
    cols = [e.id, e.at, e.actor, e.kind, e.case_id, e.nachrichten_uuid, e.delivery_id, e.detail]
    seq, prev, count = 0, GENESIS, 0
    last_id = 0
    while True:
        batch = (
            conn.execute(select(*cols).where(e.id > last_id).order_by(e.id).limit(1000))
            .mappings()
            .all()
        )
        if not batch:
            break
        for r in batch:
            seq += 1
            row = {**r, "seq": seq, "message_id": None, "message_digest": None}
            digest = event_hash(prev, row)
            conn.execute(
                update(T_EVENTS).where(e.id == r["id"]).values(seq=seq, prev_hash=prev, hash=digest)
            )
            prev = digest
            last_id = int(r["id"])
            count += 1
    conn.execute(update(T_SEAL).where(T_SEAL.c.id == 1).values(seq=seq, hash=prev))
    m = T_MESSAGES.c
    messages = 0
    last_id = 0
    while True:
        found = (
            conn.execute(
                select(*(m[c] for c in SEALED_MESSAGE_COLUMNS))
                .where(m.id > last_id)
                .order_by(m.id)
                .limit(1000)
            )
            .mappings()
            .all()
        )
        if not found:
            break
        append_events(
            conn,
            [
                {
                    "at": at,
                    "actor": "journal.seal",
                    "kind": "message.sealed",
                    "case_id": None,
                    "nachrichten_uuid": r["nachrichten_uuid"],
                    "delivery_id": None,
                    "detail": {"direction": r["direction"]},
                    "message_id": int(r["id"]),
                    "message_digest": message_digest(r),
                }
                for r in found
            ],
        )
        messages += len(found)
        last_id = int(found[-1]["id"])
    return count, messages


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong. ``what``: ``revision``, ``trigger``, ``head``, ``unsealed``, ``gap``,
    ``link``, ``changed``, ``message-changed``, ``message-deleted``, ``message-unsealed``."""

    what: str
    text: str
    event_id: int | None = None
    message_id: int | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class SealReport:
    revision: str | None = None
    head_revision: str = field(default_factory=migrate.head_revision)
    events: int = 0
    messages: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def expected_triggers(dialect: str) -> tuple[str, ...]:
    return _TRIGGERS.get(dialect, ())


def _triggers(conn: Connection) -> dict[str, bool]:
    """name → enabled, of the triggers on events and messages."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('events', 'messages')"
            )
        )
        return {str(r[0]): True for r in rows}
    rows = conn.execute(
        text(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid IN (to_regclass('events'), to_regclass('messages'))"
        )
    )
    return {str(r[0]): str(r[1]) != "D" for r in rows}


def _check_triggers(conn: Connection, report: SealReport) -> None:
    present = _triggers(conn)
    for name in expected_triggers(conn.dialect.name):
        if name not in present:
            report.findings.append(Finding("trigger", f"trigger {name} is missing (dropped)"))
        elif not present[name]:
            report.findings.append(Finding("trigger", f"trigger {name} is disabled"))


def _events(conn: Connection) -> Iterator[Mapping[Any, Any]]:
    e = T_EVENTS.c
    cols = [e.id, e.prev_hash, e.hash, *(e[c] for c in EVENT_COLUMNS)]
    last = 0
    while True:
        batch = (
            conn.execute(select(*cols).where(e.seq > last).order_by(e.seq).limit(2000))
            .mappings()
            .all()
        )
        if not batch:
            return
        yield from batch
        last = int(batch[-1]["seq"])


def _check_chain(conn: Connection, report: SealReport) -> dict[int, tuple[int, str]]:
    """Walk the chain; stop at the first broken link. Returns message_id → (event id, digest)."""
    e = T_EVENTS.c
    sealed: dict[int, tuple[int, str]] = {}
    unsealed = conn.execute(
        select(e.id).where(e.seq.is_(None) | e.hash.is_(None)).order_by(e.id).limit(1)
    ).scalar()
    if unsealed is not None:
        report.findings.append(
            Finding(
                "unsealed",
                f"event {unsealed}: not sealed (no seq/hash; inserted behind the journal's back)",
                event_id=int(unsealed),
            )
        )
    seq, prev, count = 0, GENESIS, 0
    for row in _events(conn):
        event_id = int(row["id"])
        if int(row["seq"]) != seq + 1:
            missing = (
                f"seq {seq + 1}"
                if int(row["seq"]) == seq + 2
                else (f"seq {seq + 1}..{int(row['seq']) - 1}")
            )
            report.findings.append(
                Finding(
                    "gap",
                    f"event {event_id} (seq {row['seq']}): gap, {missing} missing "
                    "(deleted event rows)",
                    event_id=event_id,
                )
            )
            return sealed
        if row["prev_hash"] != prev:
            report.findings.append(
                Finding(
                    "link",
                    f"event {event_id} (seq {row['seq']}): prev_hash does not match the hash of "
                    "the event before it (a row was replaced or rewritten)",
                    event_id=event_id,
                )
            )
            return sealed
        if event_hash(prev, row) != row["hash"]:
            report.findings.append(
                Finding(
                    "changed",
                    f"event {event_id} (seq {row['seq']}): hash mismatch, the row was changed "
                    "after it was written",
                    event_id=event_id,
                )
            )
            return sealed
        prev = str(row["hash"])
        seq = int(row["seq"])
        count += 1
        if row["message_id"] is not None:
            sealed[int(row["message_id"])] = (event_id, str(row["message_digest"]))
    report.events = count
    report.head_seq, report.head_hash = seq, prev
    try:
        head_seq, head_hash = chain_head(conn)
    except LookupError as exc:
        report.findings.append(Finding("head", str(exc)))
        return sealed
    if (head_seq, head_hash) != (seq, prev):
        report.findings.append(
            Finding(
                "head",
                f"chain head says seq {head_seq} ({head_hash[:16]}…) but the last event is "
                f"seq {seq} ({prev[:16]}…): events at the end were deleted, or the head altered",
            )
        )
    return sealed


def _check_messages(
    conn: Connection, report: SealReport, sealed: dict[int, tuple[int, str]]
) -> None:
    m = T_MESSAGES.c
    seen: set[int] = set()
    last = 0
    while True:
        batch = (
            conn.execute(
                select(*(m[c] for c in SEALED_MESSAGE_COLUMNS))
                .where(m.id > last)
                .order_by(m.id)
                .limit(2000)
            )
            .mappings()
            .all()
        )
        if not batch:
            break
        for row in batch:
            mid = int(row["id"])
            seen.add(mid)
            found = sealed.get(mid)
            if found is None:
                report.findings.append(
                    Finding(
                        "message-unsealed",
                        f"message {mid} ({row['nachrichten_uuid']}): no event seals it "
                        "(inserted behind the journal's back)",
                        message_id=mid,
                    )
                )
                return
            if message_digest(row) != found[1]:
                report.findings.append(
                    Finding(
                        "message-changed",
                        f"message {mid} ({row['nachrichten_uuid']}): row changed since event "
                        f"{found[0]} sealed it (payload hash or identifying columns differ)",
                        event_id=found[0],
                        message_id=mid,
                    )
                )
                return
        last = int(batch[-1]["id"])
    report.messages = len(seen)
    for mid in sorted(set(sealed) - seen):
        report.findings.append(
            Finding(
                "message-deleted",
                f"message {mid}: sealed by event {sealed[mid][0]} but the row is gone (deleted)",
                event_id=sealed[mid][0],
                message_id=mid,
            )
        )
        return


def verify(engine: Engine) -> SealReport:
    """Check the journal behind ``engine``: schema revision, triggers, chain, message rows.
    Database errors propagate (:class:`sqlalchemy.exc.SQLAlchemyError`)."""
    report = SealReport()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            report.revision = migrate.current_revision(conn)
            if report.revision != report.head_revision:
                report.findings.append(
                    Finding(
                        "revision",
                        f"schema revision is {report.revision or 'none'}, the head is "
                        f"{report.head_revision} (stale or foreign schema; "
                        "`amtsbote db upgrade`)",
                    )
                )
                return report
            sealed = _check_chain(conn, report)
            if not any(f.what in ("gap", "link", "changed") for f in report.findings):
                _check_messages(conn, report, sealed)
            _check_triggers(conn, report)  # after: the first finding names the broken link
    return report
