"""The :class:`Journal`: the one API through which messages, cases, deliveries, events and
correlation are stored and read.

Design rules
    * Every public method is one short transaction on a pooled connection; the class holds no
      per-call state and may be shared by FastAPI worker threads and Prefect task threads.
    * Every state change writes its event in the same transaction; a message, its deliveries and
      its events commit together or not at all.
    * Methods return frozen records (:mod:`connectors.journal.records`), never ORM objects.
    * Database errors are translated into :mod:`connectors.exceptions` (URL password masked).
    * Idempotent where callers retry: recording a message or creating a case twice returns the
      first record; a repeated state change to the current state is a no-op.

Correlation (replies to procedures)
    Inbound messages start ``unmatched`` and are kept until a procedure claims them. A flow that
    waits registers an expectation (:meth:`Journal.expect_reply`), which is matched at once against
    kept messages (reply arrived early). The inbox calls :meth:`Journal.match_reply` after
    recording a message; it returns the satisfied expectation (with the flow run id to resume) or
    ``None`` (the message stays listed in :meth:`Journal.unmatched_replies`). Both sides take a
    lock so that a reply and an expectation arriving at the same moment always meet. The flow then
    reads the payload and calls :meth:`Journal.consume_reply`.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    Select,
    Table,
    and_,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..config import Settings, mask_url
from ..exceptions import (
    CaseConflictError,
    InvalidTransitionError,
    JournalDatabaseError,
    JournalError,
    JournalNotFoundError,
    JournalSchemaError,
    JournalValueError,
    MessageConflictError,
    PayloadPurgedError,
)
from . import migrate
from .crypto import ENCODING_SEALED, EncodedPayload, PayloadCodec
from .engine import (
    WRITE_OPTION,
    JournalOptions,
    create_journal_engine,
    prepare_sqlite_file,
    sqlite_file,
)
from .models import metadata
from .records import (
    DELIVERY_TRANSITIONS,
    ENDED_CASE_STATUSES,
    FINAL_CASE_STATUSES,
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
    StatusChange,
    _check_text,
    check_agency,
    check_case_id,
    normalize_uuid,
)
from .retention import is_purged

__all__ = ["Journal"]

E = TypeVar("E", bound=StrEnum)
P = ParamSpec("P")
R = TypeVar("R")

T_CASES: Table = metadata.tables["cases"]
T_MESSAGES: Table = metadata.tables["messages"]
T_DELIVERIES: Table = metadata.tables["deliveries"]
T_ATTEMPTS: Table = metadata.tables["delivery_attempts"]
T_EVENTS: Table = metadata.tables["events"]
T_EXPECTATIONS: Table = metadata.tables["expectations"]

#: pg_advisory_xact_lock key serialising correlation (expect_reply / match_reply).
_CORRELATION_LOCK = 0x616D7473636F7272 & 0x7FFFFFFFFFFFFFFF
_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]*")
_CASE_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_ERROR_MAX = 500

_M = T_MESSAGES.c
_MESSAGE_COLUMNS = (
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
_D = T_DELIVERIES.c
_DELIVERY_COLUMNS = (*T_DELIVERIES.c, _M.nachrichten_uuid, _M.direction, _M.case_id)


_INS_DELIVERY = insert(T_DELIVERIES).returning(T_DELIVERIES.c.id)
_INS_EVENT = insert(T_EVENTS)

#: record_inbound on PostgreSQL: one statement, one round trip (see Journal._pg_insert_inbound).
_PG_INBOUND = text(
    """
WITH m AS (
    INSERT INTO messages (nachrichten_uuid, direction, standard, version, message_type, author,
        reader, sender_agency, case_id, payload, payload_encoding, payload_sha512, size,
        created_at, recorded_at, in_reply_to, correlation_state)
    VALUES (:nachrichten_uuid, :direction, :standard, :version, :message_type, :author,
        :reader, :sender_agency, :case_id, :payload, :payload_encoding, :payload_sha512, :size,
        :created_at, :recorded_at, :in_reply_to, :correlation_state)
    ON CONFLICT (nachrichten_uuid, direction) DO NOTHING
    RETURNING id
), d AS (
    INSERT INTO deliveries (message_id, recipient, state, attempts, created_at, updated_at)
    SELECT m.id, CAST(:recipient AS varchar), CAST(:state AS varchar), 0,
        CAST(:recorded_at AS timestamptz), CAST(:recorded_at AS timestamptz)
    FROM m WHERE CAST(:with_delivery AS boolean)
    RETURNING id
), e AS (
    INSERT INTO events (at, actor, kind, case_id, nachrichten_uuid, delivery_id, detail)
    SELECT CAST(:recorded_at AS timestamptz), CAST(:actor AS varchar), 'message.received',
        CAST(:case_id AS varchar), CAST(:nachrichten_uuid AS varchar), CAST(NULL AS bigint),
        CAST(:detail_received AS jsonb)
    FROM m
    UNION ALL
    SELECT CAST(:recorded_at AS timestamptz), CAST(:actor AS varchar), 'delivery.state',
        CAST(:case_id AS varchar), CAST(:nachrichten_uuid AS varchar), d.id,
        CAST(:detail_mailbox AS jsonb)
    FROM d
)
SELECT id FROM m
"""
)


def _now() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type[E], value: object, field: str) -> E:
    try:
        return cls(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise JournalValueError(field, f"{value!r} is not one of: {allowed}") from None


def _enums(cls: type[E], value: object, field: str) -> list[E]:
    if isinstance(value, (str, StrEnum)):
        return [_enum(cls, value, field)]
    if isinstance(value, Collection):
        return [_enum(cls, v, field) for v in value]
    raise JournalValueError(field, f"expected a {cls.__name__} or a collection of them")


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise JournalValueError(field, "expected an aware datetime (with time zone)")
    return value.astimezone(UTC)


def _json_object(value: Mapping[str, Any] | None, field: str) -> dict[str, Any]:
    """A plain JSON-able copy of ``value`` (a mapping with string keys)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JournalValueError(field, f"expected a mapping, got {type(value).__name__}")
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise JournalValueError(field, f"not JSON-serialisable: {exc}") from exc
    return dict(copied)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _short(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _limit(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise JournalValueError("limit", "must be a positive integer")
    return value


def _retry_on_disconnect(
    method: Callable[Concatenate[Journal, P], R],
) -> Callable[Concatenate[Journal, P], R]:
    """Run an idempotent operation once more when its connection turned out to be dead (server
    restart, network): the pool is invalidated by then, the retry gets a fresh connection. Only
    for operations whose repetition is harmless even if the first attempt committed."""

    @functools.wraps(method)
    def wrapper(self: Journal, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except JournalDatabaseError as exc:
            if not exc.disconnected or self._closed:
                raise
            return method(self, *args, **kwargs)

    return wrapper


class Journal:
    """The message journal. See the module docstring for the rules.

    ``url`` is a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``). Without
    ``url`` the settings come from the environment (:class:`connectors.config.Settings`),
    including ``AMTSBOTE_JOURNAL_KEY`` unless ``key`` is given. ``key``: Fernet key(s) to
    encrypt payloads (comma-separated to rotate). ``create=True`` creates the data directory and
    migrates the database to the current schema; otherwise the schema must be current
    (``amtsbote db upgrade``) or :class:`JournalSchemaError` is raised.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key: str | bytes | Sequence[str | bytes] | None = None,
        create: bool = False,
        options: JournalOptions | None = None,
    ) -> None:
        if url is None:
            settings = Settings.from_env()
            url = settings.database_url
            if key is None:
                key = settings.journal_key
        self._options = options or JournalOptions()
        self._url = mask_url(url)
        self._codec = PayloadCodec(key, level=self._options.compression_level)
        path = sqlite_file(url)
        if path is not None:
            if create:
                prepare_sqlite_file(path)
            elif not path.exists():
                raise JournalSchemaError(
                    f"no journal database file at {path}; create it with `amtsbote db upgrade`",
                    url=self._url,
                )
        self._engine = create_journal_engine(url, self._options)
        self._dialect = self._engine.dialect.name
        # Statements built once; values are passed at execution (cheap, cached compilation).
        self._ins_message = self._insert_ignore(
            T_MESSAGES, "nachrichten_uuid", "direction"
        ).returning(T_MESSAGES.c.id)
        self._ins_delivery_ignore = self._insert_ignore(
            T_DELIVERIES, "message_id", "recipient"
        ).returning(T_DELIVERIES.c.id)
        self._ins_case = self._insert_ignore(T_CASES, "case_id").returning(T_CASES.c.case_id)
        self._closed = False
        self._lock = threading.Lock()
        try:
            if create:
                self.upgrade()
            else:
                self.check_schema()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_env(
        cls,
        *,
        create: bool = False,
        options: JournalOptions | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Journal:
        """A journal configured by ``AMTSBOTE_DATABASE_URL``/``AMTSBOTE_DATA_DIR``/
        ``AMTSBOTE_JOURNAL_KEY``."""
        settings = Settings.from_env(environ)
        if create:
            settings.ensure_data_dir()
        return cls(settings.database_url, key=settings.journal_key, create=create, options=options)

    def __repr__(self) -> str:
        return f"Journal({self._url!r}, encrypted={self._codec.encrypts})"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return self._url

    @property
    def encrypts(self) -> bool:
        """Whether new payloads are encrypted (a key is configured)."""
        return self._codec.encrypts

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for read-only queries of reports (``pandas.read_sql``). Write
        only through the methods: they keep events, states and encryption consistent."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._dialect

    def close(self) -> None:
        """Close all pooled connections. The journal cannot be used afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._engine.dispose()

    # ------------------------------------------------------------------ schema

    def upgrade(self) -> migrate.UpgradeResult:
        """Migrate the database to the newest schema (Alembic ``upgrade head``). Idempotent."""
        try:
            return migrate.upgrade(self._engine)
        except JournalError:
            raise
        except SQLAlchemyError as exc:
            raise self._translate(exc, "upgrade") from exc

    @_retry_on_disconnect
    def schema_revision(self) -> str | None:
        """The schema revision of the database (``None``: not initialised)."""
        with self._tx("schema_revision", write=False) as conn:
            return migrate.current_revision(conn)

    def check_schema(self) -> None:
        """Raise :class:`JournalSchemaError` unless the database is at the current revision."""
        current = self.schema_revision()
        head = migrate.head_revision()
        if current == head:
            return
        if current is None:
            problem = "has no journal schema; run `amtsbote db upgrade`"
        else:
            problem = (
                f"is at schema revision {current}, this code needs {head}; "
                "run `amtsbote db upgrade` (or update amtsbote if the database is newer)"
            )
        raise JournalSchemaError(problem, url=self._url)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self, operation: str, *, write: bool = True) -> Iterator[Connection]:
        if self._closed:
            raise JournalDatabaseError("journal is closed", url=self._url, operation=operation)
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                elif self._dialect == "postgresql":
                    # Reads are single statements: no BEGIN/COMMIT round trips.
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    yield conn
        except JournalError:
            raise
        except SQLAlchemyError as exc:
            raise self._translate(exc, operation) from exc

    def _translate(self, exc: SQLAlchemyError, operation: str) -> JournalError:
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
            problem = f"{type(exc.orig).__name__}: {_short(first, 300)}"
        else:
            problem = f"{type(exc).__name__}: {_short(str(exc).splitlines()[0], 300)}"
        lost = isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
        return JournalDatabaseError(problem, url=self._url, operation=operation, disconnected=lost)

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        """INSERT … ON CONFLICT DO NOTHING (PostgreSQL and SQLite)."""
        factory = pg_insert if self._dialect == "postgresql" else sqlite_insert
        return factory(table).on_conflict_do_nothing(index_elements=list(conflict))

    def _lock_correlation(self, conn: Connection) -> None:
        if self._dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CORRELATION_LOCK})
        # SQLite: write transactions are BEGIN IMMEDIATE, serialised already.

    @staticmethod
    def _event(
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

    @staticmethod
    def _insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(_INS_EVENT, rows)

    @staticmethod
    def _require_case(conn: Connection, case_id: str) -> None:
        found = conn.execute(select(T_CASES.c.case_id).where(T_CASES.c.case_id == case_id)).first()
        if found is None:
            raise JournalNotFoundError("case", case_id)

    @staticmethod
    def _actor(actor: str) -> str:
        return _check_text(actor, "actor", 100)

    # ------------------------------------------------------------------ cases

    @_retry_on_disconnect
    def create_case(
        self,
        case_id: str,
        *,
        procedure: str,
        status: CaseStatus | str = CaseStatus.OPEN,
        reference: str | None = None,
        flow_run_id: str | None = None,
        summary: Mapping[str, Any] | None = None,
        actor: str = "journal",
    ) -> tuple[CaseRecord, bool]:
        """Create a case; idempotent on ``case_id``. Returns ``(case, created)``.

        An existing case with the same procedure is returned unchanged (``created=False``);
        another procedure raises :class:`CaseConflictError`. ``reference`` and ``summary`` must
        hold no personal data (pseudonymised facts only)."""
        case_id = check_case_id(case_id)
        procedure = _check_text(procedure, "procedure", 100)
        state = _enum(CaseStatus, status, "status")
        reference = _check_text(reference, "reference", 200) if reference is not None else None
        flow_run_id = str(flow_run_id) if flow_run_id is not None else None
        if flow_run_id is not None:
            _check_text(flow_run_id, "flow_run_id", 64)
        data = _json_object(summary, "summary")
        actor = self._actor(actor)
        now = _now()
        row = {
            "case_id": case_id,
            "procedure": procedure,
            "status": state.value,
            "reference": reference,
            "flow_run_id": flow_run_id,
            "summary": data,
            "created_at": now,
            "updated_at": now,
            "closed_at": now if state in ENDED_CASE_STATUSES else None,
        }
        with self._tx("create_case") as conn:
            inserted = conn.execute(self._ins_case, row).first()
            if inserted is not None:
                self._insert_events(
                    conn,
                    [
                        self._event(
                            "case.created",
                            actor,
                            now,
                            case_id=case_id,
                            detail={"procedure": procedure, "status": state.value},
                        )
                    ],
                )
                return _case_record(row), True
            existing = self._case_row(conn, case_id)
        if existing["procedure"] != procedure:
            raise CaseConflictError(
                case_id, f"procedure {existing['procedure']!r}, not {procedure!r}"
            )
        return _case_record(existing), False

    def _case_row(self, conn: Connection, case_id: str, *, lock: bool = False) -> RowMapping:
        stmt = select(T_CASES).where(T_CASES.c.case_id == case_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("case", case_id)
        return row

    @_retry_on_disconnect
    def get_case(self, case_id: str) -> CaseRecord:
        """The case ``case_id``; :class:`JournalNotFoundError` if there is none."""
        case_id = check_case_id(case_id)
        with self._tx("get_case", write=False) as conn:
            return _case_record(self._case_row(conn, case_id))

    @_retry_on_disconnect
    def list_cases(
        self,
        *,
        status: CaseStatus | str | Collection[CaseStatus | str] | None = None,
        procedure: str | None = None,
        flow_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[CaseRecord]:
        """Cases, oldest first, filtered by status (one or several), procedure, flow run."""
        stmt = select(T_CASES).order_by(T_CASES.c.created_at, T_CASES.c.case_id)
        if status is not None:
            stmt = stmt.where(
                T_CASES.c.status.in_([s.value for s in _enums(CaseStatus, status, "status")])
            )
        if procedure is not None:
            stmt = stmt.where(T_CASES.c.procedure == procedure)
        if flow_run_id is not None:
            stmt = stmt.where(T_CASES.c.flow_run_id == str(flow_run_id))
        stmt = stmt.limit(_limit(limit))
        with self._tx("list_cases", write=False) as conn:
            return [_case_record(r) for r in conn.execute(stmt).mappings()]

    @_retry_on_disconnect
    def update_case(
        self,
        case_id: str,
        *,
        status: CaseStatus | str | None = None,
        reference: str | None = None,
        flow_run_id: str | None = None,
        summary: Mapping[str, Any] | None = None,
        actor: str = "journal",
        detail: Mapping[str, Any] | None = None,
    ) -> CaseRecord:
        """Change a case's status, reference, flow run or summary (``None`` = unchanged;
        ``summary`` replaces the whole summary). Writes a ``case.updated`` event unless nothing
        changed. ``closed``/``cancelled`` are final; entering closed/cancelled/failed sets
        ``closed_at``, reopening a failed case clears it."""
        case_id = check_case_id(case_id)
        new_status = _enum(CaseStatus, status, "status") if status is not None else None
        if reference is not None:
            reference = _check_text(reference, "reference", 200)
        if flow_run_id is not None:
            flow_run_id = _check_text(str(flow_run_id), "flow_run_id", 64)
        data = _json_object(summary, "summary") if summary is not None else None
        extra = _json_object(detail, "detail")
        actor = self._actor(actor)
        now = _now()
        with self._tx("update_case") as conn:
            row = dict(self._case_row(conn, case_id, lock=True))
            old_status = CaseStatus(row["status"])
            changes: dict[str, Any] = {}
            if new_status is not None and new_status != old_status:
                if old_status in FINAL_CASE_STATUSES:
                    raise InvalidTransitionError(
                        "case", case_id, old_status.value, new_status.value, allowed=()
                    )
                changes["status"] = new_status.value
                if new_status in ENDED_CASE_STATUSES:
                    changes["closed_at"] = now
                elif row["closed_at"] is not None:
                    changes["closed_at"] = None
            if reference is not None and reference != row["reference"]:
                changes["reference"] = reference
            if flow_run_id is not None and flow_run_id != row["flow_run_id"]:
                changes["flow_run_id"] = flow_run_id
            if data is not None and data != row["summary"]:
                changes["summary"] = data
            if not changes:
                return _case_record(row)
            changes["updated_at"] = now
            conn.execute(update(T_CASES).where(T_CASES.c.case_id == case_id).values(changes))
            event_detail = {
                **extra,
                "changed": sorted(k for k in changes if k not in ("updated_at", "closed_at")),
            }
            if "status" in changes:
                event_detail["from"] = old_status.value
                event_detail["to"] = changes["status"]
            self._insert_events(
                conn,
                [self._event("case.updated", actor, now, case_id=case_id, detail=event_detail)],
            )
            row.update(changes)
            return _case_record(row)

    @_retry_on_disconnect
    def open_case_for_message(
        self,
        nachrichten_uuid: str,
        *,
        procedure: str,
        prefix: str,
        flow_run_id: str | None = None,
        reference: str | None = None,
        summary: Mapping[str, Any] | None = None,
        status: CaseStatus | str = CaseStatus.OPEN,
        actor: str = "journal",
        digits: int = 6,
    ) -> tuple[CaseRecord, bool]:
        """Open a new case for an inbound message that starts a procedure; idempotent per
        message. Returns ``(case, created)``.

        The case id is ``prefix`` plus the next free number of that prefix, zero-padded to
        ``digits`` (``05774032-2026-`` → ``05774032-2026-000124``); numbering is serialised, so
        concurrent calls never collide. The message gets the case and becomes ``consumed``
        (claimed by the procedure), with ``case.created`` and ``correlation.consumed`` events in
        the same transaction. If the message has a case already (a previous run, or it was
        matched as a reply), that case is returned with ``created=False`` — whatever its
        procedure; the caller compares."""
        uuid = normalize_uuid(nachrichten_uuid)
        procedure = _check_text(procedure, "procedure", 100)
        prefix = _check_text(prefix, "prefix", 40)
        if not prefix or not _CASE_PREFIX_RE.fullmatch(prefix):
            raise JournalValueError("prefix", f"{prefix!r}: letters, digits and . _ : / - only")
        if not isinstance(digits, int) or not 1 <= digits <= 12:
            raise JournalValueError("digits", "must be between 1 and 12")
        state = _enum(CaseStatus, status, "status")
        if reference is not None:
            reference = _check_text(reference, "reference", 200)
        run = _check_text(str(flow_run_id), "flow_run_id", 64) if flow_run_id is not None else None
        data = _json_object(summary, "summary")
        actor = self._actor(actor)
        now = _now()
        with self._tx("open_case_for_message") as conn:
            message = self._message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
            if message.case_id is not None:
                return _case_record(self._case_row(conn, message.case_id)), False
            if self._dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("case:" + prefix)}
                )
            last = conn.execute(
                select(T_CASES.c.case_id)
                .where(T_CASES.c.case_id.startswith(prefix, autoescape=True))
                .order_by(func.length(T_CASES.c.case_id).desc(), T_CASES.c.case_id.desc())
                .limit(1)
            ).scalar()
            number = 1
            if last is not None and last[len(prefix) :].isdigit():
                number = int(last[len(prefix) :]) + 1
            case_id = check_case_id(f"{prefix}{number:0{digits}d}")
            row = {
                "case_id": case_id,
                "procedure": procedure,
                "status": state.value,
                "reference": reference,
                "flow_run_id": run,
                "summary": data,
                "created_at": now,
                "updated_at": now,
                "closed_at": now if state in ENDED_CASE_STATUSES else None,
            }
            conn.execute(insert(T_CASES), row)
            conn.execute(
                update(T_MESSAGES)
                .where(_M.id == message.id)
                .values(correlation_state=CorrelationState.CONSUMED.value, case_id=case_id)
            )
            self._insert_events(
                conn,
                [
                    self._event(
                        "case.created",
                        actor,
                        now,
                        case_id=case_id,
                        nachrichten_uuid=uuid,
                        detail={"procedure": procedure, "status": state.value},
                    ),
                    self._event(
                        "correlation.consumed",
                        actor,
                        now,
                        case_id=case_id,
                        nachrichten_uuid=uuid,
                        detail={
                            "from": message.correlation_state.value
                            if message.correlation_state
                            else None
                        },
                    ),
                ],
            )
            return _case_record(row), True

    # ------------------------------------------------------------------ messages

    @_retry_on_disconnect
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
        state = _enum(DeliveryState, initial_state, "initial_state") if initial_state else None
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
        now = _now()
        row = self._message_row(meta, encoded, Direction.INBOUND, sender, case, now)
        row["correlation_state"] = CorrelationState.UNMATCHED.value
        uuid = meta.nachrichten_uuid
        received = self._event(
            "message.received",
            actor,
            now,
            case_id=case,
            nachrichten_uuid=uuid,
            detail=_message_detail(meta, encoded.size, sender),
        )
        mailbox = None
        if state is not None:
            assert recipient is not None
            mailbox = _state_event(
                actor, now, uuid, case, 0, Direction.INBOUND, recipient, None, state
            )
        if self._dialect == "postgresql":
            message_id = self._pg_insert_inbound(row, recipient, state, received, mailbox)
            if message_id is not None:
                return _message_record(row, message_id, len(encoded.data)), True
            with self._tx("record_inbound") as conn:
                existing, conflict = self._inbound_again(
                    conn, uuid, encoded.sha512, sender, recipient, state, actor, now
                )
        else:
            with self._tx("record_inbound") as conn:
                if case is not None:
                    self._require_case(conn, case)
                message_id = conn.execute(self._ins_message, row).scalar()
                if message_id is not None:
                    events = [received]
                    if state is not None and mailbox is not None:
                        assert recipient is not None
                        mailbox["delivery_id"] = self._add_delivery(
                            conn, message_id, recipient, state, now
                        )
                        events.append(mailbox)
                    self._insert_events(conn, events)
                    return _message_record(row, message_id, len(encoded.data)), True
                existing, conflict = self._inbound_again(
                    conn, uuid, encoded.sha512, sender, recipient, state, actor, now
                )
        if conflict is not None:
            raise MessageConflictError(uuid, "inbound", conflict)
        return existing, False

    def _pg_insert_inbound(
        self,
        row: dict[str, Any],
        recipient: str | None,
        state: DeliveryState | None,
        received: dict[str, Any],
        mailbox: dict[str, Any] | None,
    ) -> int | None:
        """PostgreSQL: message, mailbox delivery and events in one statement (one round trip,
        atomic by itself). ``None`` when the UUID is stored already."""
        params = dict(row)
        params.update(
            recipient=recipient,
            state=state.value if state is not None else None,
            with_delivery=state is not None,
            actor=received["actor"],
            detail_received=json.dumps(received["detail"]),
            detail_mailbox=json.dumps(mailbox["detail"] if mailbox else {}),
        )
        try:
            with self._engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                return conn.execute(_PG_INBOUND, params).scalar()
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
        """A repeated inbound UUID: the stored record and the conflict, if any."""
        existing = self._message_by_uuid(conn, uuid, Direction.INBOUND)
        if existing.payload_sha512 != sha512:
            self._insert_events(
                conn,
                [
                    self._event(
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
            added = self._add_delivery_ignore(conn, existing.id, recipient, state, now)
            if added is not None:
                self._insert_events(
                    conn,
                    [
                        _state_event(
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

    @_retry_on_disconnect
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
        if isinstance(recipients, str):
            raise JournalValueError("recipients", "expected a sequence of agency ids, not a string")
        wanted: list[str] = []
        for r in recipients:
            agency = check_agency(r, "recipients")
            if agency not in wanted:
                wanted.append(agency)
        if not wanted:
            raise JournalValueError("recipients", "at least one recipient is needed")
        sender_raw = sender_agency if sender_agency is not None else meta.author
        sender = check_agency(sender_raw, "sender_agency") if sender_raw is not None else None
        case = check_case_id(case_id) if case_id is not None else None
        actor = self._actor(actor)
        encoded = self._codec.encode(payload)
        now = _now()
        row = self._message_row(meta, encoded, Direction.OUTBOUND, sender, case, now)
        row["correlation_state"] = None
        uuid = meta.nachrichten_uuid
        with self._tx("record_outbound") as conn:
            if case is not None:
                self._require_case(conn, case)
            message_id = conn.execute(self._ins_message, row).scalar()
            if message_id is not None:
                rows = [_delivery_row(message_id, r, DeliveryState.CREATED, now) for r in wanted]
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
                events = [
                    self._event(
                        "message.queued",
                        actor,
                        now,
                        case_id=case,
                        nachrichten_uuid=uuid,
                        detail={
                            **_message_detail(meta, encoded.size, sender),
                            "recipients": wanted,
                        },
                    )
                ]
                events.extend(
                    _state_event(
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
                self._insert_events(conn, events)
                message = _message_record(row, message_id, len(encoded.data))
                deliveries = [
                    _delivery_record(
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
                return message, deliveries, True
            existing = self._message_by_uuid(conn, uuid, Direction.OUTBOUND)
            stored = self._deliveries_of(conn, existing.id)
        if existing.payload_sha512 != encoded.sha512:
            raise MessageConflictError(uuid, "outbound", "a different payload (SHA-512 differs)")
        if {d.recipient for d in stored} != set(wanted):
            raise MessageConflictError(
                uuid,
                "outbound",
                f"other recipients ({', '.join(sorted(d.recipient for d in stored))})",
            )
        return existing, stored, False

    @staticmethod
    def _message_row(
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

    @staticmethod
    def _add_delivery(
        conn: Connection, message_id: int, recipient: str, state: DeliveryState, now: datetime
    ) -> int:
        row = _delivery_row(message_id, recipient, state, now)
        return int(conn.execute(_INS_DELIVERY, row).scalar_one())

    def _add_delivery_ignore(
        self,
        conn: Connection,
        message_id: int,
        recipient: str,
        state: DeliveryState,
        now: datetime,
    ) -> int | None:
        row = _delivery_row(message_id, recipient, state, now)
        found = conn.execute(self._ins_delivery_ignore, row).scalar()
        return int(found) if found is not None else None

    def _message_by_uuid(
        self,
        conn: Connection,
        uuid: str,
        direction: Direction | None,
        *,
        lock: bool = False,
    ) -> MessageRecord:
        stmt = select(*_MESSAGE_COLUMNS).where(_M.nachrichten_uuid == uuid)
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
        return _message_record(row)

    @_retry_on_disconnect
    def get_message(
        self, nachrichten_uuid: str, *, direction: Direction | str | None = None
    ) -> MessageRecord:
        """Metadata of a message (no payload). Without ``direction``, when the journal holds
        both copies (a message between two agencies served here), the inbound one."""
        uuid = normalize_uuid(nachrichten_uuid)
        way = _enum(Direction, direction, "direction") if direction is not None else None
        with self._tx("get_message", write=False) as conn:
            return self._message_by_uuid(conn, uuid, way)

    @_retry_on_disconnect
    def payload(self, nachrichten_uuid: str, *, direction: Direction | str | None = None) -> bytes:
        """The original bytes of a message: decrypted, decompressed and checked against the
        recorded SHA-512 (:class:`PayloadIntegrityError` / :class:`JournalKeyError` otherwise;
        :class:`PayloadPurgedError` when retention has replaced it by its tombstone)."""
        uuid = normalize_uuid(nachrichten_uuid)
        way = _enum(Direction, direction, "direction") if direction is not None else None
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

    @_retry_on_disconnect
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
        stmt = select(*_MESSAGE_COLUMNS).order_by(_M.recorded_at, _M.id)
        if case_id is not None:
            stmt = stmt.where(_M.case_id == check_case_id(case_id))
        if direction is not None:
            stmt = stmt.where(_M.direction == _enum(Direction, direction, "direction").value)
        if message_type is not None:
            stmt = stmt.where(_M.message_type == message_type)
        if correlation_state is not None:
            cs = _enum(CorrelationState, correlation_state, "correlation_state")
            stmt = stmt.where(_M.correlation_state == cs.value)
        if since is not None:
            stmt = stmt.where(_M.recorded_at >= _aware(since, "since"))
        stmt = stmt.limit(_limit(limit))
        with self._tx("messages", write=False) as conn:
            return [_message_record(r) for r in conn.execute(stmt).mappings()]

    # ------------------------------------------------------------------ deliveries

    @staticmethod
    def _delivery_select() -> Select[Any]:
        return select(*_DELIVERY_COLUMNS).join_from(
            T_DELIVERIES, T_MESSAGES, _D.message_id == _M.id
        )

    def _deliveries_of(self, conn: Connection, message_id: int) -> list[DeliveryRecord]:
        stmt = self._delivery_select().where(_D.message_id == message_id).order_by(_D.id)
        return [_delivery_record(r) for r in conn.execute(stmt).mappings()]

    def _delivery_row(self, conn: Connection, delivery_id: int, *, lock: bool) -> RowMapping:
        stmt = self._delivery_select().where(_D.id == delivery_id)
        if lock:
            stmt = stmt.with_for_update(of=T_DELIVERIES)
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("delivery", delivery_id)
        return row

    @_retry_on_disconnect
    def get_delivery(self, delivery_id: int) -> DeliveryRecord:
        with self._tx("get_delivery", write=False) as conn:
            return _delivery_record(self._delivery_row(conn, int(delivery_id), lock=False))

    @_retry_on_disconnect
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
        stmt = self._delivery_select().order_by(_D.id)
        if case_id is not None:
            stmt = stmt.where(_M.case_id == check_case_id(case_id))
        if state is not None:
            stmt = stmt.where(
                _D.state.in_([s.value for s in _enums(DeliveryState, state, "state")])
            )
        if recipient is not None:
            stmt = stmt.where(_D.recipient == recipient)
        if nachrichten_uuid is not None:
            stmt = stmt.where(_M.nachrichten_uuid == normalize_uuid(nachrichten_uuid))
        if direction is not None:
            stmt = stmt.where(_M.direction == _enum(Direction, direction, "direction").value)
        stmt = stmt.limit(_limit(limit))
        with self._tx("deliveries", write=False) as conn:
            return [_delivery_record(r) for r in conn.execute(stmt).mappings()]

    @_retry_on_disconnect
    def due_deliveries(
        self, *, now: datetime | None = None, limit: int | None = 100
    ) -> list[DeliveryRecord]:
        """Outbound deliveries to (re)send now: ``created``, or ``failed`` whose
        ``next_attempt_at`` has come (or is unset). Oldest first."""
        at = _aware(now, "now") or _now()
        stmt = (
            self._delivery_select()
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
            .limit(_limit(limit))
        )
        with self._tx("due_deliveries", write=False) as conn:
            return [_delivery_record(r) for r in conn.execute(stmt).mappings()]

    @_retry_on_disconnect
    def attempts(self, delivery_id: int) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        stmt = (
            select(T_ATTEMPTS)
            .where(T_ATTEMPTS.c.delivery_id == int(delivery_id))
            .order_by(T_ATTEMPTS.c.id)
        )
        with self._tx("attempts", write=False) as conn:
            return [_attempt_record(r) for r in conn.execute(stmt).mappings()]

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
            _enum(DeliveryState, new_state, "new_state")
            if new_state is not None
            else (DeliveryState.SENT if ok else DeliveryState.FAILED)
        )
        retry_at = _aware(next_attempt_at, "next_attempt_at")
        actor = self._actor(actor)
        now = _now()
        attempt = {
            "delivery_id": int(delivery_id),
            "at": now,
            "outcome": "ok" if ok else "error",
            "status_code": int(status_code) if status_code is not None else None,
            "error_class": _short(error_class, 100),
            "error": _short(error, _ERROR_MAX),
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
                    _state_event(
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
            self._insert_events(conn, events)
            merged = dict(row)
            merged.update(changes)
            return _delivery_record(merged)

    @_retry_on_disconnect
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
        target = _enum(DeliveryState, new_state, "new_state")
        actor = self._actor(actor)
        extra = _json_object(detail, "detail")
        retry_at = _aware(next_attempt_at, "next_attempt_at")
        now = _now()
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
            return _delivery_record(row)
        if target not in DELIVERY_TRANSITIONS[current]:
            raise InvalidTransitionError(
                "delivery", row["id"], current.value, target.value, allowed=_allowed(current)
            )
        changes: dict[str, Any] = {"state": target.value, "updated_at": now}
        if target is DeliveryState.FAILED:
            changes["last_error"] = _short(error, _ERROR_MAX) if error else row["last_error"]
            changes["next_attempt_at"] = retry_at
        elif target in (DeliveryState.CREATED, DeliveryState.SENT):
            changes["next_attempt_at"] = None
        conn.execute(update(T_DELIVERIES).where(_D.id == row["id"]).values(changes))
        self._insert_events(
            conn,
            [
                _state_event(
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
        return _delivery_record(merged)

    # ------------------------------------------------------------------ mailbox

    @_retry_on_disconnect
    def mailbox(self, agency_id: str, *, limit: int | None = 100) -> list[MessageRecord]:
        """Inbound messages waiting for ``agency_id`` to fetch them (delivery ``delivered``),
        oldest first."""
        agency = check_agency(agency_id, "agency_id")
        stmt = (
            select(*_MESSAGE_COLUMNS)
            .join_from(T_MESSAGES, T_DELIVERIES, _D.message_id == _M.id)
            .where(
                _D.recipient == agency,
                _D.state == DeliveryState.DELIVERED.value,
                _M.direction == Direction.INBOUND.value,
            )
            .order_by(_M.recorded_at, _M.id)
            .limit(_limit(limit))
        )
        with self._tx("mailbox", write=False) as conn:
            return [_message_record(r) for r in conn.execute(stmt).mappings()]

    @_retry_on_disconnect
    def mark_fetched(
        self, nachrichten_uuid: str, agency_id: str, *, actor: str | None = None
    ) -> DeliveryRecord:
        """``agency_id`` has fetched the inbound message: its delivery becomes ``fetched``
        (again: no-op). :class:`JournalNotFoundError` if the message is not addressed to it."""
        uuid = normalize_uuid(nachrichten_uuid)
        agency = check_agency(agency_id, "agency_id")
        who = self._actor(actor if actor is not None else agency)
        now = _now()
        stmt = (
            self._delivery_select()
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

    @_retry_on_disconnect
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

    # ------------------------------------------------------------------ events

    def log_event(
        self,
        kind: str,
        *,
        actor: str,
        case_id: str | None = None,
        nachrichten_uuid: str | None = None,
        delivery_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> EventRecord:
        """Append an event (``kind`` like ``inbox.rejected``: lower-case, dots). ``detail`` must
        be JSON-serialisable and hold no personal data. There is no way to change or delete an
        event."""
        kind = _check_text(kind, "kind", 64)
        if not _KIND_RE.fullmatch(kind):
            raise JournalValueError("kind", f"{kind!r}: use lower-case letters, digits, . _ -")
        row = self._event(
            kind,
            self._actor(actor),
            _now(),
            case_id=check_case_id(case_id) if case_id is not None else None,
            nachrichten_uuid=normalize_uuid(nachrichten_uuid) if nachrichten_uuid else None,
            delivery_id=int(delivery_id) if delivery_id is not None else None,
            detail=_json_object(detail, "detail"),
        )
        with self._tx("log_event") as conn:
            event_id = conn.execute(
                insert(T_EVENTS).values(row).returning(T_EVENTS.c.id)
            ).scalar_one()
        return _event_record({**row, "id": event_id})

    @_retry_on_disconnect
    def events(
        self,
        *,
        case_id: str | None = None,
        nachrichten_uuid: str | None = None,
        delivery_id: int | None = None,
        kind: str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events in order, filtered; ``after_id`` pages/tails (events with a greater id)."""
        stmt = select(T_EVENTS).order_by(T_EVENTS.c.id)
        if case_id is not None:
            stmt = stmt.where(T_EVENTS.c.case_id == case_id)
        if nachrichten_uuid is not None:
            stmt = stmt.where(T_EVENTS.c.nachrichten_uuid == normalize_uuid(nachrichten_uuid))
        if delivery_id is not None:
            stmt = stmt.where(T_EVENTS.c.delivery_id == int(delivery_id))
        if kind is not None:
            stmt = stmt.where(T_EVENTS.c.kind == kind)
        if after_id is not None:
            stmt = stmt.where(T_EVENTS.c.id > int(after_id))
        stmt = stmt.limit(_limit(limit))
        with self._tx("events", write=False) as conn:
            return [_event_record(r) for r in conn.execute(stmt).mappings()]

    # ------------------------------------------------------------------ correlation

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
        deadline = _aware(expires_at, "expires_at")
        actor = self._actor(actor)
        now = _now()
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
                        _is(x.flow_run_id, run),
                        _is(x.message_type, message_type),
                        _is(x.from_agency, agency),
                        _is(x.in_reply_to, irt),
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
                self._insert_events(
                    conn,
                    [
                        self._event(
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
            return _expectation_record(expectation)

    @_retry_on_disconnect
    def check_expectation(self, expectation_id: int, *, actor: str = "flow") -> ExpectationRecord:
        """The expectation's current state, after trying once more to match it against kept
        messages and expiring it if its deadline has passed. For flows polling while they wait."""
        actor = self._actor(actor)
        now = _now()
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
            return _expectation_record(expectation)

    def _expectation_row(self, conn: Connection, expectation_id: int, *, lock: bool) -> RowMapping:
        stmt = select(T_EXPECTATIONS).where(T_EXPECTATIONS.c.id == expectation_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("expectation", expectation_id)
        return row

    @_retry_on_disconnect
    def get_expectation(self, expectation_id: int) -> ExpectationRecord:
        with self._tx("get_expectation", write=False) as conn:
            return _expectation_record(self._expectation_row(conn, int(expectation_id), lock=False))

    @_retry_on_disconnect
    def expectations(
        self,
        *,
        case_id: str | None = None,
        state: ExpectationState | str | None = None,
        flow_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExpectationRecord]:
        x = T_EXPECTATIONS.c
        stmt = select(T_EXPECTATIONS).order_by(x.id)
        if case_id is not None:
            stmt = stmt.where(x.case_id == check_case_id(case_id))
        if state is not None:
            stmt = stmt.where(x.state == _enum(ExpectationState, state, "state").value)
        if flow_run_id is not None:
            stmt = stmt.where(x.flow_run_id == str(flow_run_id))
        stmt = stmt.limit(_limit(limit))
        with self._tx("expectations", write=False) as conn:
            return [_expectation_record(r) for r in conn.execute(stmt).mappings()]

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
        self._insert_events(
            conn,
            [
                self._event(
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

    @_retry_on_disconnect
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
        now = _now()
        x = T_EXPECTATIONS.c
        with self._tx("match_reply") as conn:
            self._lock_correlation(conn)
            message = self._message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
            if message.correlation_state is not CorrelationState.UNMATCHED:
                found = (
                    conn.execute(
                        select(T_EXPECTATIONS).where(x.reply_uuid == uuid).order_by(x.id).limit(1)
                    )
                    .mappings()
                    .first()
                )
                return _expectation_record(found) if found is not None else None
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
            return _expectation_record(expectation)

    @_retry_on_disconnect
    def consume_reply(
        self, nachrichten_uuid: str, *, case_id: str | None = None, actor: str = "flow"
    ) -> MessageRecord:
        """Mark an inbound message as processed (``consumed``), optionally assigning it to
        ``case_id`` — e.g. a new request that opened a case. A matched message can only be
        consumed for its own case. Consuming again for the same case is a no-op."""
        uuid = normalize_uuid(nachrichten_uuid)
        case = check_case_id(case_id) if case_id is not None else None
        actor = self._actor(actor)
        now = _now()
        with self._tx("consume_reply") as conn:
            message = self._message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
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
            self._insert_events(
                conn,
                [
                    self._event(
                        "correlation.consumed",
                        actor,
                        now,
                        case_id=new_case,
                        nachrichten_uuid=uuid,
                        detail={"from": state.value if state else None},
                    )
                ],
            )
            return _replace_message(
                message, correlation_state=CorrelationState.CONSUMED, case_id=new_case
            )

    @_retry_on_disconnect
    def unmatched_replies(
        self,
        *,
        message_type: str | None = None,
        author: str | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        """Inbound messages no procedure has claimed (oldest first): early replies, replies to
        unknown cases, requests nobody has picked up."""
        stmt = (
            select(*_MESSAGE_COLUMNS)
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
        stmt = stmt.limit(_limit(limit))
        with self._tx("unmatched_replies", write=False) as conn:
            return [_message_record(r) for r in conn.execute(stmt).mappings()]

    @_retry_on_disconnect
    def expire_expectation(
        self, expectation_id: int, *, actor: str = "flow", reason: str | None = None
    ) -> ExpectationRecord:
        """Give up waiting: ``waiting → expired`` (already expired: no-op; satisfied: error)."""
        actor = self._actor(actor)
        now = _now()
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
            return _expectation_record(expectation)

    @_retry_on_disconnect
    def expire_overdue(
        self, *, now: datetime | None = None, actor: str = "journal"
    ) -> list[ExpectationRecord]:
        """Expire every waiting expectation whose ``expires_at`` has passed."""
        at = _aware(now, "now") or _now()
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
                self._expire(conn, expectation, actor, _now(), reason="deadline passed")
                result.append(_expectation_record(expectation))
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
        self._insert_events(
            conn,
            [
                self._event(
                    "correlation.expired",
                    actor,
                    now,
                    case_id=expectation["case_id"],
                    nachrichten_uuid=expectation["in_reply_to"],
                    detail={"expectation_id": expectation["id"], "reason": _short(reason, 200)},
                )
            ],
        )
        expectation.update(state=ExpectationState.EXPIRED.value, updated_at=now)


# ---------------------------------------------------------------------- helpers (module level)


def _lock_key(name: str) -> int:
    """A stable signed 63-bit key for pg_advisory_xact_lock."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def _is(column: Any, value: object) -> Any:
    return column.is_(None) if value is None else column == value


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


def _delivery_row(
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


def _message_detail(meta: MessageMeta, size: int, sender: str | None) -> dict[str, Any]:
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


def _state_event(
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
    detail = dict(extra or {})
    detail.update(
        {
            "from": from_state.value if from_state else None,
            "to": to_state.value,
            "recipient": recipient,
            "direction": direction.value,
        }
    )
    return Journal._event(
        "delivery.state",
        actor,
        at,
        case_id=case_id,
        nachrichten_uuid=uuid,
        delivery_id=delivery_id,
        detail=detail,
    )


def _case_record(row: Mapping[Any, Any]) -> CaseRecord:
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


def _message_record(
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


def _replace_message(message: MessageRecord, **changes: Any) -> MessageRecord:
    from dataclasses import replace

    return replace(message, **changes)


def _delivery_record(row: Mapping[Any, Any]) -> DeliveryRecord:
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


def _attempt_record(row: Mapping[Any, Any]) -> AttemptRecord:
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


def _event_record(row: Mapping[Any, Any]) -> EventRecord:
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


def _expectation_record(row: Mapping[Any, Any]) -> ExpectationRecord:
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
