"""The report's figures: pure functions from :class:`~.queries.JournalFrames` to tables.

Definitions (also in ``docs/reporting.md``)

*Period* — cases by their intake (``cases.created_at``) in ``[since 00:00, until+1 00:00)``
Europe/Berlin; deliveries (and their failed attempts) by the recording of their message.

*Lead time* — intake to last receipt: from ``created_at`` to the latest ``updated_at`` of the
case's outbound deliveries in ``delivered``/``fetched`` (a delivery's last change is its receipt).
Only for cases whose outbound deliveries are *all* acknowledged; others have none yet.

*Agency* — per recipient of outbound deliveries: ``messages`` (deliveries), ``acknowledged``
(delivered or fetched), ``dead`` (dead letters now), ``in_flight`` (created/sent/failed),
``success_rate`` = acknowledged / (acknowledged + dead), ``attempts``, ``failed_attempts``,
``attempt_failure_rate``, latency p50/p90 in seconds from the message's ``recorded_at`` to the
delivered state (``updated_at`` of a delivery still ``delivered``; for a ``fetched`` one the time
of its successful attempt, written together with the change to ``delivered``).

*Deadline* — § 3 Abs. 5 GewAnzV: 10 working days after the day of intake (see
:mod:`.workdays`). A case is *open* at the report's ``as_of`` unless its status is ``closed`` or
``cancelled`` with ``closed_at`` before ``as_of`` — ``failed`` cases (dead letters) count as open.
It is *overdue* when open after the end of its deadline day. Completed cases count as *on time*
when closed on or before their deadline day. Open cases are judged whatever their intake date
(``since`` does not hide an old open case).

Overdue cases are reported, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from .exceptions import ReportInputError
from .queries import JournalFrames, Window, load_frames
from .workdays import WorkCalendar

__all__ = [
    "CASE_STATUSES",
    "ReportData",
    "ReportOptions",
    "agency_table",
    "as_records",
    "build_report",
    "case_state_table",
    "daily_volume",
    "deadline_table",
    "failure_table",
    "lead_hours",
    "lead_time_table",
    "open_cases",
    "parse_day",
    "records_by_section",
    "summarise",
    "window_for",
]

CASE_STATUSES = ("open", "waiting", "failed", "closed", "cancelled")
_DONE = ("closed", "cancelled")
_IN_FLIGHT = ("created", "sent", "failed")


def parse_day(value: str, field_name: str) -> date:
    """``YYYY-MM-DD`` → date; :class:`ReportInputError` naming the option otherwise."""
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ReportInputError(field_name, value, "not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What a report covers and how deadlines are counted."""

    since: date | None = None
    """First day of the period (Europe/Berlin, inclusive); ``None``: from the first case."""
    until: date | None = None
    """Last day (inclusive); ``None``: today."""
    procedures: tuple[str, ...] = ()
    """Only these procedures (empty: all)."""
    agencies: tuple[str, ...] = ()
    """Only deliveries to these agencies, and cases with a delivery to one of them."""
    deadline_days: int = 10
    """Working days of the rule (§ 3 Abs. 5 GewAnzV)."""
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    """Working days: Mon–Fri without the public holidays of NRW."""
    timezone: str = "Europe/Berlin"
    top_failures: int = 10
    now: datetime | None = None
    """The moment the report is made (default: now); tests fix it."""

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ReportInputError(
                "--since", self.since.isoformat(), f"after --until {self.until.isoformat()}"
            )
        if self.deadline_days < 1:
            raise ReportInputError("deadline_days", self.deadline_days, "must be at least 1")
        if self.top_failures < 1:
            raise ReportInputError("top_failures", self.top_failures, "must be at least 1")
        if self.now is not None and self.now.tzinfo is None:
            raise ReportInputError("now", self.now.isoformat(), "needs a time zone")


def window_for(options: ReportOptions) -> Window:
    """The UTC period of ``options`` and the moment open cases are judged."""
    tz = ZoneInfo(options.timezone)
    now = (options.now or datetime.now(UTC)).astimezone(UTC)
    until = options.until or now.astimezone(tz).date()
    end = datetime.combine(until + timedelta(days=1), time(0), tz).astimezone(UTC)
    start = None
    if options.since is not None:
        start = datetime.combine(options.since, time(0), tz).astimezone(UTC)
    return Window(start=start, end=end, as_of=min(end, now))


@dataclass(slots=True)
class ReportData:
    """The report: tables (DataFrames) plus what the plots need. Holds no personal data —
    case ids, procedures, agency ids, states, times and error classes only."""

    options: ReportOptions
    window: Window
    generated_at: datetime
    cases_by_state: pd.DataFrame
    lead_times: pd.DataFrame
    lead_time_hours: pd.DataFrame
    """One row per case with a lead time: ``procedure``, ``hours`` (for the plot)."""
    daily: pd.DataFrame
    agencies: pd.DataFrame
    deadlines: pd.DataFrame
    open: pd.DataFrame
    failures: pd.DataFrame
    flow_runs: pd.DataFrame | None = None
    chain_head: tuple[int, str] | None = None
    """``(seq, sha256)`` of the journal's hash chain when the report was read (anchor it
    outside the journal: ``amtsbote journal verify`` checks the chain up to it)."""

    @property
    def overdue(self) -> int:
        return int(self.open["overdue"].sum()) if len(self.open) else 0

    def sections(self) -> dict[str, tuple[str, pd.DataFrame]]:
        """Name → (title, table), in report order."""
        out = {
            "cases_by_state": ("Cases per procedure and status", self.cases_by_state),
            "lead_times": ("Lead time: intake to last receipt (hours)", self.lead_times),
            "deadlines": (
                f"Open and overdue cases ({self.options.deadline_days} working days, "
                f"§ 3 Abs. 5 GewAnzV)",
                self.deadlines,
            ),
            "open_cases": ("Open cases", self.open),
            "agencies": ("Deliveries per recipient agency", self.agencies),
            "failures": ("Top failure reasons", self.failures),
            "daily_volume": ("Daily intake per procedure", self.daily),
        }
        if self.flow_runs is not None:
            out["flow_runs"] = ("Prefect flow-run durations (seconds)", self.flow_runs)
        return out

    def overview(self) -> dict[str, Any]:
        """Headline figures (JSON-ready)."""
        states = self.cases_by_state
        in_window = int(states.loc[states["procedure"] == "all", "total"].sum())
        ag = self.agencies
        messages = int(ag["messages"].sum()) if len(ag) else 0
        ack = int(ag["acknowledged"].sum()) if len(ag) else 0
        dead = int(ag["dead"].sum()) if len(ag) else 0
        return {
            "period_start": self.window.start.isoformat() if self.window.start else None,
            "period_end": self.window.end.isoformat(),
            "as_of": self.window.as_of.isoformat(),
            "cases": in_window,
            "open": len(self.open),
            "overdue": self.overdue,
            "deliveries": messages,
            "acknowledged": ack,
            "dead_letters": dead,
            "success_rate": round(ack / (ack + dead), 4) if ack + dead else None,
            "chain_head": (
                f"{self.chain_head[0]}:{self.chain_head[1]}" if self.chain_head else None
            ),
        }


# --------------------------------------------------------------------------- pure functions


def _quantile(values: pd.Series, q: float) -> float:
    return float(values.quantile(q)) if len(values) else float("nan")


def _local_days(seconds: pd.Series | np.ndarray, tz: str) -> np.ndarray:
    """Epoch seconds → local calendar days (``datetime64[D]``)."""
    stamps = pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True)
    return stamps.dt.tz_convert(tz).dt.tz_localize(None).to_numpy().astype("datetime64[D]")


def _procedures(frame: pd.DataFrame, column: str = "procedure") -> list[str]:
    return sorted(str(p) for p in pd.unique(frame[column].astype(str))) if len(frame) else []


def case_state_table(cases: pd.DataFrame) -> pd.DataFrame:
    """Cases received in the period per procedure (rows) and current status (columns)."""
    sel = cases[cases["in_window"]]
    table = pd.crosstab(sel["procedure"].astype(str), sel["status"].astype(str))
    table = table.reindex(columns=list(CASE_STATUSES), fill_value=0)
    table["total"] = table.sum(axis=1)
    table = table.reset_index()
    table.columns.name = None
    if len(table):
        total = {"procedure": "all", **{c: int(table[c].sum()) for c in table.columns[1:]}}
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.astype({c: "int64" for c in table.columns if c != "procedure"})


def lead_hours(cases: pd.DataFrame) -> pd.DataFrame:
    """Lead time in hours of the cases in the period whose deliveries are all acknowledged."""
    sel = cases[
        cases["in_window"]
        & (cases["deliveries"] > 0)
        & (cases["acknowledged"] == cases["deliveries"])
        & cases["last_receipt"].notna()
    ]
    return pd.DataFrame(
        {
            "procedure": sel["procedure"].astype(str).to_numpy(),
            "hours": ((sel["last_receipt"] - sel["created"]) / 3600.0).to_numpy(),
        }
    )


def _deadline_frame(cases: pd.DataFrame, options: ReportOptions, window: Window) -> pd.DataFrame:
    """Per case: intake day, deadline day, done (closed/cancelled by as_of), open, overdue."""
    tz = options.timezone
    as_of = window.as_of.timestamp()
    received = _local_days(cases["created"], tz)
    deadline = options.calendar.deadline(received, options.deadline_days)
    as_of_day = np.datetime64(window.as_of.astimezone(ZoneInfo(tz)).date(), "D")
    done = cases["status"].astype(str).isin(_DONE).to_numpy() & (
        cases["closed"].fillna(np.inf).to_numpy() <= as_of
    )
    is_open = ~done & (cases["created"].to_numpy() <= as_of)
    closed_day = _local_days(cases["closed"].fillna(as_of), tz)
    frame = pd.DataFrame(
        {
            "case_id": cases["case_id"].to_numpy(),
            "procedure": cases["procedure"].astype(str).to_numpy(),
            "status": cases["status"].astype(str).to_numpy(),
            "created": cases["created"].to_numpy(),
            "received": received,
            "deadline": deadline,
            "done": done,
            "open": is_open,
            "overdue": is_open & (as_of_day > deadline),
            "on_time": done & (closed_day <= deadline),
            "in_window": cases["in_window"].to_numpy(),
        }
    )
    frame["working_days"] = options.calendar.elapsed(received, as_of_day) if len(frame) else []
    return frame


def lead_time_table(cases: pd.DataFrame, deadlines: pd.DataFrame) -> pd.DataFrame:
    """Per procedure: cases in the period, completed, lead-time median/p90/max (hours), and the
    share of completed cases closed within the deadline."""
    hours = lead_hours(cases)
    in_window = deadlines[deadlines["in_window"]]
    rows = []
    for proc in [*_procedures(in_window), "all"]:
        sel_h = hours["hours"] if proc == "all" else hours.loc[hours["procedure"] == proc, "hours"]
        sel = in_window if proc == "all" else in_window[in_window["procedure"] == proc]
        done = int(sel["done"].sum())
        rows.append(
            {
                "procedure": proc,
                "cases": len(sel),
                "with_lead_time": len(sel_h),
                "median_h": _quantile(sel_h, 0.5),
                "p90_h": _quantile(sel_h, 0.9),
                "max_h": float(sel_h.max()) if len(sel_h) else float("nan"),
                "completed": done,
                "on_time_share": float(sel["on_time"].sum() / done) if done else float("nan"),
            }
        )
    if len(rows) == 1 and rows[0]["cases"] == 0:
        rows = []
    return pd.DataFrame(
        rows,
        columns=[
            "procedure",
            "cases",
            "with_lead_time",
            "median_h",
            "p90_h",
            "max_h",
            "completed",
            "on_time_share",
        ],
    )


def deadline_table(deadlines: pd.DataFrame) -> pd.DataFrame:
    """Per procedure: open cases at ``as_of`` and how many of them are overdue."""
    opened = deadlines[deadlines["open"]]
    rows = []
    for proc in [*_procedures(opened), "all"]:
        sel = opened if proc == "all" else opened[opened["procedure"] == proc]
        rows.append(
            {
                "procedure": proc,
                "open": len(sel),
                "waiting": int((sel["status"] == "waiting").sum()),
                "failed": int((sel["status"] == "failed").sum()),
                "overdue": int(sel["overdue"].sum()),
                "oldest_working_days": int(sel["working_days"].max()) if len(sel) else 0,
            }
        )
    return pd.DataFrame(
        rows, columns=["procedure", "open", "waiting", "failed", "overdue", "oldest_working_days"]
    )


def open_cases(deadlines: pd.DataFrame, options: ReportOptions) -> pd.DataFrame:
    """The open cases, overdue first, oldest first."""
    sel = deadlines[deadlines["open"]].sort_values(["overdue", "created"], ascending=[False, True])
    received = pd.to_datetime(sel["created"], unit="s", utc=True).dt.tz_convert(options.timezone)
    return pd.DataFrame(
        {
            "case_id": sel["case_id"].to_numpy(),
            "procedure": sel["procedure"].to_numpy(),
            "status": sel["status"].to_numpy(),
            "received": received.dt.strftime("%Y-%m-%d %H:%M").to_numpy(),
            "deadline": pd.to_datetime(sel["deadline"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "working_days": sel["working_days"].astype("int64").to_numpy(),
            "overdue": sel["overdue"].to_numpy(),
        }
    )


def daily_volume(cases: pd.DataFrame, options: ReportOptions) -> pd.DataFrame:
    """Cases received per local day (rows) and procedure (columns), zero-filled."""
    sel = cases[cases["in_window"]]
    if not len(sel):
        return pd.DataFrame(columns=["date"])
    days = _local_days(sel["created"], options.timezone)
    table = pd.crosstab(pd.Index(days, name="date"), sel["procedure"].astype(str).to_numpy())
    full = pd.date_range(days.min(), days.max(), freq="D")
    table = table.reindex(full, fill_value=0)
    table.index.name = "date"
    table.columns.name = None
    table["total"] = table.sum(axis=1)
    table = table.reset_index()
    table["date"] = table["date"].dt.strftime("%Y-%m-%d")
    return table


def agency_table(deliveries: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """Per recipient agency: volume, success, attempts, latency p50/p90 (s), dead letters."""
    columns = [
        "agency",
        "messages",
        "acknowledged",
        "dead",
        "in_flight",
        "success_rate",
        "attempts",
        "failed_attempts",
        "attempt_failure_rate",
        "latency_p50_s",
        "latency_p90_s",
    ]
    if not len(deliveries):
        return pd.DataFrame(columns=columns)
    d = deliveries
    state = d["state"].astype(str)
    frame = pd.DataFrame(
        {
            "agency": d["recipient"].astype(str),
            "ack": state.isin(["delivered", "fetched"]).astype("int64"),
            "dead": (state == "dead").astype("int64"),
            "in_flight": state.isin(_IN_FLIGHT).astype("int64"),
            "attempts": d["attempts"],
            "latency": d["latency"],
        }
    )
    grouped = frame.groupby("agency", sort=True)
    table = pd.DataFrame(
        {
            "messages": grouped.size(),
            "acknowledged": grouped["ack"].sum(),
            "dead": grouped["dead"].sum(),
            "in_flight": grouped["in_flight"].sum(),
            "attempts": grouped["attempts"].sum(),
            "latency_p50_s": grouped["latency"].quantile(0.5),
            "latency_p90_s": grouped["latency"].quantile(0.9),
        }
    )
    failed = (
        errors.groupby(errors["recipient"].astype(str))["attempts"].sum()
        if len(errors)
        else pd.Series(dtype="int64")
    )
    table["failed_attempts"] = failed.reindex(table.index).fillna(0).astype("int64")
    settled = table["acknowledged"] + table["dead"]
    table["success_rate"] = (table["acknowledged"] / settled.where(settled > 0)).astype(float)
    table["attempt_failure_rate"] = (
        table["failed_attempts"] / table["attempts"].where(table["attempts"] > 0)
    ).astype(float)
    table.index.name = "agency"
    return table.reset_index()[columns]


def failure_table(errors: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` error classes (with HTTP status) by failed attempts: attempts, deliveries,
    dead letters, agencies affected, one example text."""
    columns = [
        "error_class",
        "status_code",
        "attempts",
        "deliveries",
        "dead_letters",
        "agencies",
        "example",
    ]
    if not len(errors):
        return pd.DataFrame(columns=columns)
    keyed = errors.assign(
        error_class=errors["error_class"].fillna("unknown").astype(str),
        status_code=errors["status_code"].astype("Int64"),
    )
    grouped = keyed.groupby(["error_class", "status_code"], dropna=False, sort=False)
    table = grouped.agg(
        attempts=("attempts", "sum"),
        deliveries=("deliveries", "sum"),  # a delivery has one recipient: sums are distinct
        dead_letters=("dead_letters", "sum"),
        agencies=("recipient", "nunique"),
        example=("example", "min"),
    ).reset_index()
    table = table.sort_values(["attempts", "error_class"], ascending=[False, True]).head(top)
    table["example"] = table["example"].fillna("").astype(str).str.slice(0, 120)
    table["status_code"] = table["status_code"].astype("Int64")
    return table.reset_index(drop=True)[columns]


def summarise(
    frames: JournalFrames,
    options: ReportOptions,
    window: Window,
    *,
    flow_runs: pd.DataFrame | None = None,
    chain_head: tuple[int, str] | None = None,
) -> ReportData:
    """All tables of the report from the frames (no database access)."""
    deadlines = _deadline_frame(frames.cases, options, window)
    return ReportData(
        options=options,
        window=window,
        generated_at=(options.now or datetime.now(UTC)).astimezone(UTC),
        cases_by_state=case_state_table(frames.cases),
        lead_times=lead_time_table(frames.cases, deadlines),
        lead_time_hours=lead_hours(frames.cases),
        daily=daily_volume(frames.cases, options),
        agencies=agency_table(frames.deliveries, frames.errors),
        deadlines=deadline_table(deadlines),
        open=open_cases(deadlines, options),
        failures=failure_table(frames.errors, options.top_failures),
        flow_runs=flow_runs,
        chain_head=chain_head,
    )


def read_chain_head(engine: Engine) -> tuple[int, str] | None:
    """The journal's chain head ``(seq, hash)``; ``None`` for a journal without a seal."""
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.journal.seal import chain_head

    try:
        with engine.connect() as conn:
            return chain_head(conn)
    except (LookupError, SQLAlchemyError):
        return None


def build_report(
    engine: Engine, options: ReportOptions | None = None, *, flow_runs: pd.DataFrame | None = None
) -> ReportData:
    """Read the journal behind ``engine`` and compute the report."""
    opts = options or ReportOptions()
    window = window_for(opts)
    head = read_chain_head(engine)  # first: the tables below cover at least what it seals
    frames = load_frames(engine, window, procedures=opts.procedures, agencies=opts.agencies)
    return summarise(frames, opts, window, flow_runs=flow_runs, chain_head=head)


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN → None, numpy scalars → Python)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{str(k): _plain(v) for k, v in row.items()} for row in clean.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def records_by_section(report: ReportData) -> Mapping[str, Sequence[dict[str, Any]]]:
    return {name: as_records(frame) for name, (_, frame) in report.sections().items()}
