"""Reading the journal into pandas: three aggregating SQL queries, no ORM objects.

The database does what it is good at — joins, GROUP BY per case, time arithmetic
(:class:`epoch` compiles to ``julianday`` on SQLite and ``date_part('epoch', …)`` on PostgreSQL,
so timestamps arrive as float seconds, not as Python datetimes) — and pandas gets one row per
case, one row per outbound delivery (agency, state, attempts, latency) and failed attempts
grouped by error class and agency. Rows are read straight from the DBAPI cursor in chunks
(SQLAlchemy ``Row`` objects cost more than the query at 600 000 rows) and strings become
categoricals per chunk.

A delivery's ``created_at`` is its message's ``recorded_at`` (the journal writes both in one
transaction with one timestamp), so the period of deliveries is filtered, and latency measured,
on the delivery itself; messages are joined only for their direction (from the
``(direction, correlation_state)`` index) and, per case, their ``case_id``.

Only metadata columns are read (ids, states, agency ids, timestamps, error classes, one short
error example per class); payloads are never selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from pandas.api.types import union_categoricals
from sqlalchemy import (
    Float,
    Select,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from connectors.config import mask_url
from connectors.journal.models import metadata

from .exceptions import ReportDataError

__all__ = [
    "ACKNOWLEDGED",
    "CHUNK_ROWS",
    "JournalFrames",
    "Window",
    "cases_query",
    "deliveries_query",
    "epoch",
    "errors_query",
    "load_frames",
]

ACKNOWLEDGED = ("delivered", "fetched")
#: Final case statuses: a case in one of them (with ``closed_at``) is done.
DONE = ("closed", "cancelled")
CHUNK_ROWS = 100_000
#: PostgreSQL ``work_mem`` for the report's transaction (per sort/hash node).
PG_WORK_MEM = "64MB"

CASES = metadata.tables["cases"]
MESSAGES = metadata.tables["messages"]
DELIVERIES = metadata.tables["deliveries"]
ATTEMPTS = metadata.tables["delivery_attempts"]


class epoch(FunctionElement[float]):
    """Seconds since 1970-01-01 UTC of a journal timestamp, as a float."""

    type = Float()
    name = "epoch"
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # The journal stores UTC as ISO text; julianday() parses it (fractions of seconds too).
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # date_part() returns double precision (extract() would return numeric → Decimal).
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True, slots=True)
class Window:
    """The period of a report: intake in ``[start, end)`` (``start=None``: from the
    beginning); open cases and deadlines are judged ``as_of``."""

    start: datetime | None
    end: datetime
    as_of: datetime


@dataclass(slots=True)
class JournalFrames:
    """What the report is computed from.

    ``cases``: one row per case received before ``window.end`` that is in the window or was
    still open at ``as_of`` — ``case_id``, ``procedure``, ``status``, ``created``, ``closed``
    (epoch seconds), the case's outbound ``deliveries``, ``acknowledged``, ``dead``,
    ``last_receipt`` (latest ``updated_at`` of its delivered/fetched outbound deliveries) and
    ``in_window``.

    ``deliveries``: one row per outbound delivery of a message recorded in the window —
    ``recipient``, ``state``, ``attempts``, ``latency`` (seconds from recording to
    ``delivered``; NaN unless acknowledged).

    ``errors``: the failed attempts of those deliveries per ``error_class``, ``status_code``
    and ``recipient`` — ``attempts``, ``deliveries``, ``dead_letters``, ``example``.
    """

    cases: pd.DataFrame
    deliveries: pd.DataFrame
    errors: pd.DataFrame


# --------------------------------------------------------------------------- queries


def _outbound_to(agencies: Sequence[str]) -> Any:
    """EXISTS an outbound delivery of the case to one of ``agencies``."""
    d, m = DELIVERIES.c, MESSAGES.c
    return exists(
        select(literal(1))
        .select_from(DELIVERIES.join(MESSAGES, d.message_id == m.id))
        .where(
            m.case_id == CASES.c.case_id, m.direction == "outbound", d.recipient.in_(list(agencies))
        )
    )


def cases_query(
    window: Window, *, procedures: Sequence[str] = (), agencies: Sequence[str] = ()
) -> Select[Any]:
    c, d, m = CASES.c, DELIVERIES.c, MESSAGES.c
    acknowledged = d.state.in_(ACKNOWLEDGED)
    per_case = (
        select(
            m.case_id.label("case_id"),
            func.count().label("deliveries"),
            func.sum(case((acknowledged, 1), else_=0)).label("acknowledged"),
            func.sum(case((d.state == "dead", 1), else_=0)).label("dead"),
            # max of the timestamps, converted once per case (ISO text sorts by time)
            epoch(func.max(case((acknowledged, d.updated_at)))).label("last_receipt"),
        )
        .select_from(DELIVERIES.join(MESSAGES, d.message_id == m.id))
        .where(m.direction == "outbound", m.case_id.is_not(None))
        .group_by(m.case_id)
        .subquery("per_case")
    )
    in_window = c.created_at >= window.start if window.start is not None else true()
    still_open = or_(c.status.not_in(DONE), c.closed_at.is_(None), c.closed_at > window.as_of)
    stmt = (
        select(
            c.case_id,
            c.procedure,
            c.status,
            epoch(c.created_at).label("created"),
            epoch(c.closed_at).label("closed"),
            per_case.c.deliveries,
            per_case.c.acknowledged,
            per_case.c.dead,
            per_case.c.last_receipt,
        )
        .select_from(CASES.outerjoin(per_case, per_case.c.case_id == c.case_id))
        .where(c.created_at < window.end, or_(in_window, still_open))
    )
    if procedures:
        stmt = stmt.where(c.procedure.in_(list(procedures)))
    if agencies:
        stmt = stmt.where(_outbound_to(agencies))
    return stmt


def _delivered_epoch() -> Any:
    """When an acknowledged outbound delivery became ``delivered``: its ``updated_at`` while
    still delivered; for a ``fetched`` one the time of its successful attempt (the journal
    writes attempt and state change with one timestamp) — looked up through the attempts'
    delivery index for those rows only."""
    d, a = DELIVERIES.c, ATTEMPTS.c
    ok_at = (
        select(epoch(func.max(a.at)))
        .where(a.delivery_id == d.id, a.outcome == "ok")
        .scalar_subquery()
    )
    return case((d.state == "delivered", epoch(d.updated_at)), (d.state == "fetched", ok_at))


def _in_period(
    stmt: Select[Any], window: Window, procedures: Sequence[str], agencies: Sequence[str]
) -> Select[Any]:
    """Outbound deliveries created (= message recorded) in the window, filtered. ``stmt``
    selects from deliveries joined to messages."""
    d, m = DELIVERIES.c, MESSAGES.c
    stmt = stmt.where(m.direction == "outbound", d.created_at < window.end)
    if window.start is not None:
        stmt = stmt.where(d.created_at >= window.start)
    if agencies:
        stmt = stmt.where(d.recipient.in_(list(agencies)))
    if procedures:
        stmt = stmt.where(
            m.case_id.in_(select(CASES.c.case_id).where(CASES.c.procedure.in_(list(procedures))))
        )
    return stmt


def deliveries_query(
    window: Window, *, procedures: Sequence[str] = (), agencies: Sequence[str] = ()
) -> Select[Any]:
    d, m = DELIVERIES.c, MESSAGES.c
    stmt = select(
        d.recipient,
        d.state,
        d.attempts,
        (_delivered_epoch() - epoch(d.created_at)).label("latency"),
    ).select_from(DELIVERIES.join(MESSAGES, d.message_id == m.id))
    return _in_period(stmt, window, procedures, agencies)


def errors_query(
    window: Window, *, procedures: Sequence[str] = (), agencies: Sequence[str] = ()
) -> Select[Any]:
    d, m, a = DELIVERIES.c, MESSAGES.c, ATTEMPTS.c
    stmt = (
        select(
            a.error_class,
            a.status_code,
            d.recipient,
            func.count().label("attempts"),
            func.count(func.distinct(a.delivery_id)).label("deliveries"),
            func.count(func.distinct(case((d.state == "dead", d.id)))).label("dead_letters"),
            func.min(a.error).label("example"),
        )
        .select_from(
            ATTEMPTS.join(DELIVERIES, a.delivery_id == d.id).join(MESSAGES, d.message_id == m.id)
        )
        .where(a.outcome == "error")
        .group_by(a.error_class, a.status_code, d.recipient)
    )
    return _in_period(stmt, window, procedures, agencies)


# --------------------------------------------------------------------------- reading


def _read(
    conn: Connection, stmt: Select[Any], *, categories: Sequence[str] = (), chunk: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Rows of ``stmt`` as a DataFrame: fetched from the DBAPI cursor in chunks (plain
    tuples; the selected types need no result processing), ``categories`` turned into
    categoricals per chunk (a string column of 600 000 rows costs ~40 MB as objects)."""
    result = conn.execute(stmt)
    columns = list(result.keys())
    cursor = result.cursor
    parts: list[pd.DataFrame] = []
    try:
        while rows := cursor.fetchmany(chunk):
            part = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
            for name in categories:
                part[name] = part[name].astype("category")
            parts.append(part)
    finally:
        result.close()
    if not parts:
        empty = pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
        for name in categories:
            empty[name] = pd.Categorical([])
        return empty
    if len(parts) == 1:
        return parts[0]
    merged = {
        name: union_categoricals([p[name] for p in parts], ignore_order=True) for name in categories
    }
    frame = pd.concat([p.drop(columns=list(categories)) for p in parts], ignore_index=True)
    for name in categories:
        frame[name] = merged[name]
    return frame[columns]


def load_frames(
    engine: Engine,
    window: Window,
    *,
    procedures: Sequence[str] = (),
    agencies: Sequence[str] = (),
    parallel: bool = True,
) -> JournalFrames:
    """Run the three queries — concurrently, each on its own connection, when ``parallel``
    (the database works on two cores while Python converts rows; SQLite releases the GIL while
    it steps). PostgreSQL: all three read one snapshot (REPEATABLE READ, the first transaction's
    snapshot exported to the others). SQLite: three read transactions begun together — a
    delivery recorded in between may show in one table and not yet in another."""
    jobs = [
        (cases_query(window, procedures=procedures, agencies=agencies), ("procedure", "status")),
        (
            deliveries_query(window, procedures=procedures, agencies=agencies),
            ("recipient", "state"),
        ),
        (errors_query(window, procedures=procedures, agencies=agencies), ()),
    ]
    try:
        if parallel:
            cases, deliveries, errors = _read_parallel(engine, jobs)
        else:
            with engine.connect() as conn:
                conn = _reporting(conn)
                with conn.begin():
                    _session(conn)
                    cases, deliveries, errors = (_read(conn, q, categories=c) for q, c in jobs)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
        raise ReportDataError(
            mask_url(str(engine.url)),
            f"{type(orig).__name__}: {first}",
            operation="reading the journal",
        ) from exc
    start = window.start.timestamp() if window.start is not None else float("-inf")
    cases["in_window"] = cases["created"] >= start
    for name in ("deliveries", "acknowledged", "dead"):
        cases[name] = cases[name].fillna(0).astype("int64")
    deliveries["attempts"] = deliveries["attempts"].fillna(0).astype("int64")
    deliveries["latency"] = deliveries["latency"].astype("float64")
    return JournalFrames(cases=cases, deliveries=deliveries, errors=errors)


def _reporting(conn: Connection) -> Connection:
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _session(conn: Connection, snapshot: str | None = None) -> None:
    """PostgreSQL: join an exported snapshot; no JIT (it costs more than it saves on one-off
    analytical queries); enough ``work_mem`` for the per-case GROUP BY to stay in memory."""
    if conn.dialect.name != "postgresql":
        return
    if snapshot is not None:
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    conn.exec_driver_sql("SET LOCAL jit = off")
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")


def _read_parallel(
    engine: Engine, jobs: Sequence[tuple[Select[Any], Sequence[str]]]
) -> list[pd.DataFrame]:
    from concurrent.futures import ThreadPoolExecutor

    with engine.connect() as first:
        first = _reporting(first)
        with first.begin():
            _session(first)
            snapshot = None
            if engine.dialect.name == "postgresql":
                snapshot = str(first.exec_driver_sql("SELECT pg_export_snapshot()").scalar())

            def other(job: tuple[Select[Any], Sequence[str]]) -> pd.DataFrame:
                with engine.connect() as conn:
                    conn = _reporting(conn)
                    with conn.begin():
                        _session(conn, snapshot)
                        return _read(conn, job[0], categories=job[1])

            with ThreadPoolExecutor(max_workers=len(jobs) - 1) as pool:
                futures = [pool.submit(other, job) for job in jobs[1:]]
                head = _read(first, jobs[0][0], categories=jobs[0][1])
                return [head, *(f.result() for f in futures)]
