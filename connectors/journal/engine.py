"""Engines for the journal: SQLite (file, WAL) and PostgreSQL (psycopg 3), configured for many
short transactions from many threads.

SQLite
    Every connection gets ``journal_mode=WAL`` (readers never block the writer),
    ``synchronous=FULL`` (a commit survives power loss: nothing accepted is lost),
    ``foreign_keys=ON`` and ``busy_timeout``. Python's sqlite3 transaction handling is switched off
    and the journal emits ``BEGIN IMMEDIATE`` for write transactions itself, so concurrent writers
    queue on the busy timeout instead of failing with "database is locked" when upgrading a read
    lock. In-memory databases are refused (each pooled connection would see its own database).
PostgreSQL
    A ``QueuePool`` (``pool_size``/``max_overflow`` from :class:`JournalOptions`) with
    recycling; READ COMMITTED; psycopg prepares repeated statements server-side. A lost
    connection invalidates the pool; idempotent journal operations retry once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from ..config import mask_url
from ..exceptions import JournalValueError

__all__ = [
    "WRITE_OPTION",
    "JournalOptions",
    "create_journal_engine",
    "prepare_sqlite_file",
    "sqlite_file",
]

#: Execution option marking a connection whose transaction writes (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "amtsbote_write"


@dataclass(frozen=True, slots=True)
class JournalOptions:
    """Tuning of the journal's database access; the defaults suit the inbox and the flows."""

    pool_size: int = 10
    """Connections kept open (PostgreSQL; SQLite keeps 5). Match the number of worker threads."""
    max_overflow: int = 20
    """Extra connections under load beyond ``pool_size``."""
    pool_timeout: float = 30.0
    """Seconds a thread waits for a free connection before failing."""
    pool_recycle: int = 1800
    """Seconds after which a pooled connection is replaced."""
    pool_pre_ping: bool = False
    """Test each connection on checkout. Costs a round trip per operation (about a third of
    ``record_inbound``'s time on PostgreSQL); off by default because the journal instead retries
    idempotent operations once on a lost connection, which also covers database restarts."""
    sqlite_busy_timeout_ms: int = 30_000
    """How long a SQLite writer waits for the write lock."""
    sqlite_synchronous: str = "FULL"
    """``FULL`` (durable on power loss) or ``NORMAL`` (faster; may lose the last commits)."""
    compression_level: int = 1
    """zlib level for payloads."""
    echo: bool = False
    """Log SQL (statements only; never enable in production — parameters are not logged, but
    keep it off anyway)."""


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL, ``None`` for other backends."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise JournalValueError(
            "database_url", "in-memory SQLite is not supported; give a file (sqlite:///path)"
        )
    return Path(database)


def prepare_sqlite_file(path: Path) -> None:
    """Create the directory (0700) and an empty database file readable by the owner only (0600)
    — the journal holds personal data. SQLite gives its ``-wal``/``-shm`` files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        os.close(fd)


def create_journal_engine(url: str | URL, options: JournalOptions | None = None) -> Engine:
    opts = options or JournalOptions()
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise JournalValueError(
            "database_url", f"not a database URL: {mask_url(str(url))}"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        sqlite_file(parsed)
        return _sqlite_engine(parsed, opts)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain URL: psycopg 3, not psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_size=opts.pool_size,
            max_overflow=opts.max_overflow,
            pool_timeout=opts.pool_timeout,
            pool_recycle=opts.pool_recycle,
            pool_pre_ping=opts.pool_pre_ping,
            echo=opts.echo,
        )
    raise JournalValueError(
        "database_url", f"unsupported database {backend!r} (use sqlite or postgresql)"
    )


def _set_wal(cursor: sqlite3.Cursor, timeout: float) -> None:
    """Switch to WAL. On a new file the switch needs the exclusive lock and SQLite does not
    always apply the busy timeout to it (concurrent first connections get "database is
    locked" at once), so retry within the busy timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_engine(url: URL, opts: JournalOptions) -> Engine:
    if opts.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise JournalValueError("sqlite_synchronous", "use FULL, NORMAL or EXTRA")
    engine = create_engine(
        url,
        connect_args={"timeout": opts.sqlite_busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=5,
        max_overflow=opts.max_overflow,
        pool_timeout=opts.pool_timeout,
        echo=opts.echo,
    )
    synchronous = opts.sqlite_synchronous.upper()
    busy = int(opts.sqlite_busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Autocommit at the driver level: the "begin" hook below issues BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy}")
            _set_wal(cursor, busy / 1000)
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options: dict[str, Any] = dict(conn.get_execution_options())
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")

    return engine
