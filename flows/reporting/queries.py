"""Reading the journal into pandas: a few aggregating SQL queries, no ORM objects.

The database does what it is good at — joins, GROUP BY per case and per delivery, time
arithmetic (:class:`epoch` compiles to ``julianday`` on SQLite and ``date_part('epoch', …)`` on
PostgreSQL, so timestamps arrive as float seconds, not as Python datetimes) — and pandas gets
one row per case and one row per outbound delivery, with strings turned into categoricals chunk
by chunk. At 100 000 cases (≈ 650 000 deliveries) that is a few seconds and well under 500 MB.

Only metadata columns are read (ids, states, agency ids, timestamps, error classes); payloads
are never selected.
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
    "attempt_errors_query",
    "cases_query",
    "deliveries_query",
    "epoch",
    "failures_query",
    "load_frames",
]

ACKNOWLEDGED = ("delivered", "fetched")
#: Final case statuses: a case in one of them (with ``closed_at``) is done.
DONE = ("closed", "cancelled")
CHUNK_ROWS = 100_000

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
    ``recipient``, ``state``, ``attempts``, ``recorded``, ``delivered`` (when it became
    ``delivered``); ``attempt_errors``: failed attempts of those deliveries per ``agency``.

    ``failures``: failed attempts in the window grouped by ``error_class`` and ``status_code``.
    """

    cases: pd.DataFrame
    deliveries: pd.DataFrame
    attempt_errors: pd.DataFrame
    failures: pd.DataFrame


# --------------------------------------------------------------------------- queries


def _outbound_to(agencies: Sequence[str]) -> Any:
    """EXISTS an outbound delivery of the case to one of ``agencies``."""
    d, m = DELIVERIES.c, MESSAGES.c
    return exists(
        select(literal(1))
        .select_from(DELIVERIES.join(MESSAGES, d.message_id == m.id))
        .where(m.case_id == CASES.c.case_id, m.direction == "outbound",
               d.recipient.in_(list(agencies)))
    )


def cases_query(window: Window, *, procedures: Sequence[str] = (),
                agencies: Sequence[str] = ()) -> Select[Any]:
    c, d, m = CASES.c, DELIVERIES.c, MESSAGES.c
    acknowledged = d.state.in_(ACKNOWLEDGED)
    per_case = (
        select(
            m.case_id.label("case_id"),
            func.count().label("deliveries"),
            func.sum(case((acknowledged, 1), else_=0)).label("acknowledged"),
            func.sum(case((d.state == "dead", 1), else_=0)).label("dead"),
            func.max(case((acknowledged, epoch(d.updated_at)))).label("last_receipt"),
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


def deliveries_query(window: Window, *, procedures: Sequence[str] = (),
                     agencies: Sequence[str] = ()) -> Select[Any]:
    """One row per outbound delivery of a message recorded in the window. ``delivered``: when
    it became ``delivered`` — its ``updated_at`` while still delivered; for ``fetched`` the time
    of its successful attempt (the journal writes attempt and state change with one timestamp),
    looked up through the attempts' delivery index for those rows only."""
    d, m, a = DELIVERIES.c, MESSAGES.c, ATTEMPTS.c
    ok_at = (
        select(func.max(epoch(a.at)))
        .where(a.delivery_id == d.id, a.outcome == "ok")
        .scalar_subquery()
    )
    stmt = (
        select(
            d.recipient,
            d.state,
            d.attempts,
            epoch(m.recorded_at).label("recorded"),
            case(
                (d.state == "delivered", epoch(d.updated_at)),
                (d.state == "fetched", ok_at),
            ).label("delivered"),
        )
        .select_from(DELIVERIES.join(MESSAGES, d.message_id == m.id))
        .where(m.direction == "outbound", m.recorded_at < window.end)
    )
    return _delivery_filters(stmt, window, procedures, agencies)


def _delivery_filters(stmt: Select[Any], window: Window, procedures: Sequence[str],
                      agencies: Sequence[str]) -> Select[Any]:
    d, m = DELIVERIES.c, MESSAGES.c
    if window.start is not None:
        stmt = stmt.where(m.recorded_at >= window.start)
    if agencies:
        stmt = stmt.where(d.recipient.in_(list(agencies)))
    if procedures:
        stmt = stmt.where(
            m.case_id.in_(select(CASES.c.case_id).where(CASES.c.procedure.in_(list(procedures))))
        )
    return stmt


def attempt_errors_query(window: Window, *, procedures: Sequence[str] = (),
                         agencies: Sequence[str] = ()) -> Select[Any]:
    """Failed attempts per recipient, for the deliveries of :func:`deliveries_query`."""
    d, m, a = DELIVERIES.c, MESSAGES.c, ATTEMPTS.c
    stmt = (
        select(d.recipient.label("agency"), func.count().label("failed_attempts"))
        .select_from(ATTEMPTS.join(DELIVERIES, a.delivery_id == d.id)
                     .join(MESSAGES, d.message_id == m.id))
        .where(a.outcome == "error", m.direction == "outbound", m.recorded_at < window.end)
        .group_by(d.recipient)
    )
    return _delivery_filters(stmt, window, procedures, agencies)


def failures_query(window: Window, *, procedures: Sequence[str] = (),
                   agencies: Sequence[str] = ()) -> Select[Any]:
    d, m, a = DELIVERIES.c, MESSAGES.c, ATTEMPTS.c
    stmt = (
        select(
            a.error_class,
            a.status_code,
            func.count().label("attempts"),
            func.count(func.distinct(a.delivery_id)).label("deliveries"),
            func.count(func.distinct(case((d.state == "dead", d.id)))).label("dead_letters"),
            func.count(func.distinct(d.recipient)).label("agencies"),
            func.min(a.error).label("example"),
        )
        .select_from(ATTEMPTS.join(DELIVERIES, a.delivery_id == d.id)
                     .join(MESSAGES, d.message_id == m.id))
        .where(a.outcome == "error", m.direction == "outbound", a.at < window.end)
        .group_by(a.error_class, a.status_code)
    )
    if window.start is not None:
        stmt = stmt.where(a.at >= window.start)
    if agencies:
        stmt = stmt.where(d.recipient.in_(list(agencies)))
    if procedures:
        stmt = stmt.where(
            m.case_id.in_(select(CASES.c.case_id).where(CASES.c.procedure.in_(list(procedures))))
        )
    return stmt


# --------------------------------------------------------------------------- reading


def _read(conn: Connection, stmt: Select[Any], *, categories: Sequence[str] = (),
          chunk: int = CHUNK_ROWS) -> pd.DataFrame:
    """Rows of ``stmt`` as a DataFrame, fetched in chunks; ``categories`` become categoricals
    per chunk (a string column of 650 000 rows costs ~40 MB as objects, ~1 MB as codes)."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(stmt)
    columns = list(result.keys())
    parts: list[pd.DataFrame] = []
    for rows in result.partitions(chunk):
        # plain tuples: pandas probes Row objects attribute by attribute otherwise (slow)
        part = pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns,
                                         coerce_float=True)
        for name in categories:
            part[name] = part[name].astype("category")
        parts.append(part)
    if not parts:
        empty = pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
        for name in categories:
            empty[name] = pd.Categorical([])
        return empty
    if len(parts) == 1:
        return parts[0]
    merged = {
        name: union_categoricals([p[name] for p in parts], ignore_order=True)
        for name in categories
    }
    frame = pd.concat([p.drop(columns=list(categories)) for p in parts], ignore_index=True)
    for name in categories:
        frame[name] = merged[name]
    return frame[columns]


def load_frames(engine: Engine, window: Window, *, procedures: Sequence[str] = (),
                agencies: Sequence[str] = ()) -> JournalFrames:
    """Run the queries on one connection (one snapshot on PostgreSQL: REPEATABLE READ)."""
    operation = "reading the journal"
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                cases = _read(conn, cases_query(window, procedures=procedures,
                                                agencies=agencies),
                              categories=("procedure", "status"))
                deliveries = _read(conn, deliveries_query(window, procedures=procedures,
                                                          agencies=agencies),
                                   categories=("recipient", "state"))
                errors = _read(conn, attempt_errors_query(window, procedures=procedures,
                                                          agencies=agencies))
                failures = _read(conn, failures_query(window, procedures=procedures,
                                                      agencies=agencies))
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
        raise ReportDataError(mask_url(str(engine.url)), f"{type(orig).__name__}: {first}",
                              operation=operation) from exc
    start = window.start.timestamp() if window.start is not None else float("-inf")
    cases["in_window"] = cases["created"] >= start
    for name in ("deliveries", "acknowledged", "dead"):
        cases[name] = cases[name].fillna(0).astype("int64")
    deliveries["attempts"] = deliveries["attempts"].fillna(0).astype("int64")
    return JournalFrames(cases=cases, deliveries=deliveries, attempt_errors=errors,
                         failures=failures)
