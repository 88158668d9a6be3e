"""What every repository of the journal shares: the engine and its transactions, the payload
codec, the translation of database errors, and the checks of caller input.

:class:`JournalBase` owns the connection state; the repositories (:mod:`.cases`,
:mod:`.messages`, :mod:`.deliveries`, :mod:`.events`, :mod:`.expectations`) are mixins on it, and
:class:`connectors.journal.store.Journal` combines them. A method of one repository that needs
another aggregate's rows uses that module's connection-level functions (``message_by_uuid``,
``add_delivery``, ``insert_events``), never the other mixin's methods.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ...config import Settings, mask_url
from ...exceptions import (
    JournalDatabaseError,
    JournalError,
    JournalNotFoundError,
    JournalSchemaError,
    JournalValueError,
)
from ..crypto import PayloadCodec
from ..engine import (
    WRITE_OPTION,
    JournalOptions,
    create_journal_engine,
    prepare_sqlite_file,
    sqlite_file,
)
from ..models import metadata
from ..records import _check_text

__all__ = [
    "T_ATTEMPTS",
    "T_CASES",
    "T_DELIVERIES",
    "T_EVENTS",
    "T_EXPECTATIONS",
    "T_MESSAGES",
    "JournalBase",
    "as_aware",
    "as_enum",
    "as_enums",
    "check_limit",
    "insert_ignore",
    "is_value",
    "json_object",
    "lock_key",
    "retry_on_disconnect",
    "shorten",
    "utcnow",
]

E = TypeVar("E", bound=StrEnum)
B = TypeVar("B", bound="JournalBase")
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


class JournalBase:
    """The connection state shared by the repositories: engine, dialect, codec, masked URL.

    ``url``: a SQLAlchemy URL; without it the settings come from the environment
    (:class:`connectors.config.Settings`), including the key unless ``key`` is given. With
    ``create`` a missing SQLite file is created; otherwise it must exist. The schema is checked
    by the facade (:class:`connectors.journal.store.Journal`), not here."""

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
                from ..keyfile import journal_key_for

                key = journal_key_for(settings)
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
        self._closed = False
        self._lock = threading.Lock()

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
            problem = f"{type(exc.orig).__name__}: {shorten(first, 300)}"
        else:
            problem = f"{type(exc).__name__}: {shorten(str(exc).splitlines()[0], 300)}"
        lost = isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
        return JournalDatabaseError(problem, url=self._url, operation=operation, disconnected=lost)

    def _lock_correlation(self, conn: Connection) -> None:
        if self._dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CORRELATION_LOCK})
        # SQLite: write transactions are BEGIN IMMEDIATE, serialised already.

    @staticmethod
    def _require_case(conn: Connection, case_id: str) -> None:
        found = conn.execute(select(T_CASES.c.case_id).where(T_CASES.c.case_id == case_id)).first()
        if found is None:
            raise JournalNotFoundError("case", case_id)

    @staticmethod
    def _actor(actor: str) -> str:
        return _check_text(actor, "actor", 100)


def retry_on_disconnect(
    method: Callable[Concatenate[B, P], R],
) -> Callable[Concatenate[B, P], R]:
    """Run an idempotent operation once more when its connection turned out to be dead (server
    restart, network): the pool is invalidated by then, the retry gets a fresh connection. Only
    for operations whose repetition is harmless even if the first attempt committed."""

    @functools.wraps(method)
    def wrapper(self: B, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except JournalDatabaseError as exc:
            if not exc.disconnected or self._closed:
                raise
            return method(self, *args, **kwargs)

    return wrapper


@functools.cache
def insert_ignore(dialect: str, table: Table, *conflict: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING (PostgreSQL and SQLite); built once per dialect."""
    factory = pg_insert if dialect == "postgresql" else sqlite_insert
    return factory(table).on_conflict_do_nothing(index_elements=list(conflict))


# ---------------------------------------------------------------------- checks of caller input


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_enum(cls: type[E], value: object, field: str) -> E:
    try:
        return cls(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise JournalValueError(field, f"{value!r} is not one of: {allowed}") from None


def as_enums(cls: type[E], value: object, field: str) -> list[E]:
    if isinstance(value, (str, StrEnum)):
        return [as_enum(cls, value, field)]
    if isinstance(value, Collection):
        return [as_enum(cls, v, field) for v in value]
    raise JournalValueError(field, f"expected a {cls.__name__} or a collection of them")


def as_aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise JournalValueError(field, "expected an aware datetime (with time zone)")
    return value.astimezone(UTC)


def json_object(value: Mapping[str, Any] | None, field: str) -> dict[str, Any]:
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


def shorten(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def check_limit(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise JournalValueError("limit", "must be a positive integer")
    return value


def lock_key(name: str) -> int:
    """A stable signed 63-bit key for pg_advisory_xact_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def is_value(column: Any, value: object) -> Any:
    """``column IS NULL`` for ``None``, else ``column = value``."""
    return column.is_(None) if value is None else column == value
