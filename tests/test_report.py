"""``amtsbote report`` on generated journals (SQLite and PostgreSQL): every figure is checked
against an independent computation from the journal's own API (records, the event log), in
plain Python; deadlines against hand-made cases around Fronleichnam (a public holiday in NRW,
not in Berlin)."""

from __future__ import annotations

import statistics
import uuid
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pandas as pd
import pytest

from bench.generate import (
    GeneratorOptions,
    SynthAttempt,
    SynthCase,
    SynthDelivery,
    SynthMessage,
    epoch,
    generate,
    write_cases,
)
from connectors.journal import DeliveryRecord, Direction, Journal
from connectors.journal.engine import create_journal_engine
from flows.cli import main
from flows.reporting import (
    ReportInputError,
    ReportOptions,
    WorkCalendar,
    build_report,
)
from flows.reporting.prefect_runs import flow_run_durations, prefect_reachable

BERLIN = ZoneInfo("Europe/Berlin")
#: End of the generated period: 90 days back cover Christi Himmelfahrt (14 May), Pfingstmontag
#: (25 May) and Fronleichnam (4 June 2026, NRW only).
NOW = datetime(2026, 6, 30, 10, 0, tzinfo=UTC)
NRW = holidays.Germany(subdiv="NW", years=range(2025, 2028))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite journal with 250 generated cases, shared by the CLI tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('gen') / 'journal.sqlite'}"
    generate(url, GeneratorOptions(cases=250, seed=11, now=NOW, days=60))
    return url


@pytest.fixture(autouse=True)
def _no_prefect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


# ----------------------------------------------------------------------------- independent


def working_deadline(received: date, days: int = 10) -> date:
    """The 10th working day after ``received`` — a plain loop over the calendar."""
    day, counted = received, 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in NRW:
            counted += 1
    return day


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


@dataclass
class Expected:
    states: Counter[tuple[str, str]]
    lead: dict[str, list[float]]
    open: set[str]
    overdue: set[str]
    agencies: dict[str, dict[str, float]]
    failures: Counter[tuple[str, int | None]]
    cases: int


def expected(journal: Journal, now: datetime) -> Expected:
    """Every figure of the report, from the Journal API (no SQL, no pandas)."""
    cases = journal.list_cases()
    outbound = journal.deliveries(direction=Direction.OUTBOUND)
    by_case: dict[str, list[DeliveryRecord]] = defaultdict(list)
    for d in outbound:
        by_case[d.case_id or ""].append(d)
    states = Counter((c.procedure, c.status.value) for c in cases)
    lead: dict[str, list[float]] = defaultdict(list)
    for c in cases:
        ds = by_case.get(c.case_id, [])
        if ds and all(d.state.value in ("delivered", "fetched") for d in ds):
            hours = (max(d.updated_at for d in ds) - c.created_at).total_seconds() / 3600
            lead[c.procedure].append(hours)
            lead["all"].append(hours)
    as_of_day = now.astimezone(BERLIN).date()
    open_ids: set[str] = set()
    overdue_ids: set[str] = set()
    for c in cases:
        if c.status.value in ("closed", "cancelled"):
            continue
        open_ids.add(c.case_id)
        if as_of_day > working_deadline(c.created_at.astimezone(BERLIN).date()):
            overdue_ids.add(c.case_id)
    recorded = {
        m.nachrichten_uuid: m.recorded_at for m in journal.messages(direction=Direction.OUTBOUND)
    }
    delivered_at = {}
    for e in journal.events(kind="delivery.state"):
        if e.detail["to"] == "delivered" and e.detail["direction"] == "outbound":
            delivered_at[e.delivery_id] = e.at
    agencies: dict[str, dict[str, float]] = {}
    for agency in sorted({d.recipient for d in outbound}):
        mine = [d for d in outbound if d.recipient == agency]
        ack = [d for d in mine if d.state.value in ("delivered", "fetched")]
        dead = [d for d in mine if d.state.value == "dead"]
        latency = [(delivered_at[d.id] - recorded[d.nachrichten_uuid]).total_seconds() for d in ack]
        agencies[agency] = {
            "messages": len(mine),
            "acknowledged": len(ack),
            "dead": len(dead),
            "success_rate": len(ack) / (len(ack) + len(dead)),
            "attempts": sum(d.attempts for d in mine),
            "latency_p50_s": statistics.median(latency),
            "latency_p90_s": p90(latency),
        }
    failures: Counter[tuple[str, int | None]] = Counter()
    for d in outbound:
        if d.attempts > 1 or d.state.value not in ("delivered", "fetched"):
            for a in journal.attempts(d.id):
                if not a.ok:
                    failures[(a.error_class or "unknown", a.status_code)] += 1
    return Expected(states, lead, open_ids, overdue_ids, agencies, failures, len(cases))


# ----------------------------------------------------------------------------- the figures


def test_report_matches_an_independent_computation(db_url: str) -> None:
    stats = generate(db_url, GeneratorOptions(cases=220, seed=5, now=NOW, days=60))
    assert stats.cases == 220 and stats.dead > 0
    journal = Journal(db_url)
    try:
        want = expected(journal, NOW)
        report = build_report(journal.engine, ReportOptions(now=NOW))
    finally:
        journal.close()

    states = report.cases_by_state.set_index("procedure")
    for (procedure, status), n in want.states.items():
        assert states.loc[procedure, status] == n
    assert states.loc["all", "total"] == want.cases == 220

    lead = report.lead_times.set_index("procedure")
    for procedure, hours in want.lead.items():
        assert lead.loc[procedure, "with_lead_time"] == len(hours)
        assert lead.loc[procedure, "median_h"] == pytest.approx(statistics.median(hours), abs=1e-4)
        assert lead.loc[procedure, "p90_h"] == pytest.approx(p90(hours), abs=1e-4)

    assert set(report.open["case_id"]) == want.open
    assert set(report.open.loc[report.open["overdue"], "case_id"]) == want.overdue
    assert want.overdue, "the generated data has overdue cases (stuck approvals, dead letters)"
    assert report.overview()["overdue"] == len(want.overdue)

    agencies = report.agencies.set_index("agency")
    assert set(agencies.index) == set(want.agencies)
    for agency, figures in want.agencies.items():
        for key, value in figures.items():
            assert agencies.loc[agency, key] == pytest.approx(value, abs=2e-3), (agency, key)

    failures = {
        (r.error_class, None if pd.isna(r.status_code) else int(r.status_code)): r.attempts
        for r in report.failures.itertuples()
    }
    assert len(want.failures) <= 10
    assert failures == dict(want.failures)


def _simple_case(
    case_id: str,
    received: datetime,
    *,
    closed: datetime | None = None,
    delivered: dict[str, datetime] | None = None,
    status: str | None = None,
) -> SynthCase:
    """A case received at ``received`` with outbound messages delivered at the given times."""
    t0 = epoch(received)
    case = SynthCase(
        case_id=case_id,
        procedure="gewerbeanmeldung",
        created_at=t0 + 1,
        statuses=[(t0 + 1, "open")],
        summary={"facts": {"meldungsart": "anmeldung"}},
    )
    case.messages.append(
        SynthMessage(
            nachrichten_uuid=str(uuid.uuid4()),
            direction="inbound",
            message_type="gwa.x.0010",
            recorded_at=t0,
            author="PORTAL:05-wsp",
            reader="MELDID:05774032",
            sender_agency="wsp-nrw",
            payload=b"<x/>",
            correlation_state="consumed",
            deliveries=[SynthDelivery("stadt-paderborn", [(t0, "delivered", "inbox")])],
        )
    )
    for agency, at in (delivered or {}).items():
        sent = epoch(at)
        case.messages.append(
            SynthMessage(
                nachrichten_uuid=str(uuid.uuid4()),
                direction="outbound",
                message_type="x.0100",
                recorded_at=t0 + 5,
                author="MELDID:05774032",
                reader="X:1",
                sender_agency="stadt-paderborn",
                payload=b"<y/>",
                deliveries=[
                    SynthDelivery(
                        agency,
                        [
                            (t0 + 5, "created", "rule"),
                            (sent, "sent", "sender"),
                            (sent, "delivered", "sender"),
                        ],
                        [SynthAttempt(sent, True, 202)],
                    )
                ],
            )
        )
    if status == "waiting":
        case.statuses.append((t0 + 10, "waiting"))
    if closed is not None:
        case.statuses.append((epoch(closed), "closed"))
    return case


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_deadline_counts_fronleichnam_in_nrw(db_url: str) -> None:
    """Received Monday 1 June 2026; Thursday 4 June is Fronleichnam in NRW, so the 10th working
    day is Tuesday 16 June (Monday 15 June in Berlin, where it is a working day)."""
    cases = [
        _simple_case("05774032-2026-000001", berlin(2026, 6, 1, 10, 0), status="waiting"),
        # closed on 16 June: on time in NRW, late under the Berlin calendar
        _simple_case(
            "05774032-2026-000002",
            berlin(2026, 6, 1, 11, 0),
            delivered={"it-nrw": berlin(2026, 6, 16, 9, 0), "dguv": berlin(2026, 6, 3, 12, 0)},
            closed=berlin(2026, 6, 16, 9, 5),
        ),
        # received Saturday 6 June: counts from Monday 8 June, deadline Friday 19 June
        _simple_case("05774032-2026-000003", berlin(2026, 6, 6, 15, 0), status="waiting"),
    ]
    write_cases(db_url, cases, now=datetime(2026, 7, 1, tzinfo=UTC))
    engine = create_journal_engine(db_url)
    try:

        def report_at(moment: datetime, calendar: WorkCalendar | None = None) -> pd.DataFrame:
            opts = ReportOptions(now=moment, calendar=calendar or WorkCalendar())
            return build_report(engine, opts).open.set_index("case_id")

        on_16 = report_at(berlin(2026, 6, 16, 18, 0))
        assert on_16.loc["05774032-2026-000001", "deadline"] == "2026-06-16"
        assert on_16.loc["05774032-2026-000001", "working_days"] == 10
        assert not on_16.loc["05774032-2026-000001", "overdue"]
        assert on_16.loc["05774032-2026-000003", "deadline"] == "2026-06-19"
        assert "05774032-2026-000002" not in on_16.index  # closed before as_of

        on_17 = report_at(berlin(2026, 6, 17, 8, 0))
        assert on_17.loc["05774032-2026-000001", "overdue"]
        assert on_17.loc["05774032-2026-000001", "working_days"] == 11
        assert not on_17.loc["05774032-2026-000003", "overdue"]

        in_berlin = report_at(berlin(2026, 6, 16, 18, 0), WorkCalendar(subdiv="BE"))
        assert in_berlin.loc["05774032-2026-000001", "deadline"] == "2026-06-15"
        assert in_berlin.loc["05774032-2026-000001", "overdue"]

        # as of 10 June the closed case was open and within its period
        before = report_at(berlin(2026, 6, 10, 12, 0))
        assert not before.loc["05774032-2026-000002", "overdue"]

        full = build_report(engine, ReportOptions(now=berlin(2026, 6, 30, 12, 0)))
        lead = full.lead_times.set_index("procedure")
        exact = (berlin(2026, 6, 16, 9, 0) - berlin(2026, 6, 1, 11, 0)).total_seconds()
        assert lead.loc["gewerbeanmeldung", "with_lead_time"] == 1
        assert lead.loc["gewerbeanmeldung", "median_h"] == pytest.approx(
            (exact - 1) / 3600, abs=1e-6
        )
        assert lead.loc["gewerbeanmeldung", "on_time_share"] == 1.0
        berlin_cal = build_report(
            engine,
            ReportOptions(now=berlin(2026, 6, 30, 12, 0), calendar=WorkCalendar(subdiv="BE")),
        )
        assert (
            berlin_cal.lead_times.set_index("procedure").loc["gewerbeanmeldung", "on_time_share"]
            == 0.0
        )
    finally:
        engine.dispose()


def test_period_and_filters(generated: str) -> None:
    engine = create_journal_engine(generated)
    try:
        everything = build_report(engine, ReportOptions(now=NOW))
        june = build_report(
            engine, ReportOptions(now=NOW, since=date(2026, 6, 1), until=date(2026, 6, 14))
        )
        ihk = build_report(engine, ReportOptions(now=NOW, agencies=("ihk-owl",)))
        abm = build_report(engine, ReportOptions(now=NOW, procedures=("gewerbeabmeldung",)))
    finally:
        engine.dispose()
    days = june.daily["date"]
    assert days.min() >= "2026-06-01" and days.max() <= "2026-06-14"
    assert june.daily["total"].sum() == june.overview()["cases"]
    assert june.overview()["cases"] < everything.overview()["cases"]
    # open cases are judged whatever their intake date: older ones are listed too
    assert june.open["received"].min() < "2026-06-01"
    assert june.window.as_of == datetime(2026, 6, 14, 22, 0, tzinfo=UTC)
    assert list(ihk.agencies["agency"]) == ["ihk-owl"]
    assert ihk.overview()["cases"] < everything.overview()["cases"]
    assert list(abm.cases_by_state["procedure"]) == ["gewerbeabmeldung", "all"]
    with pytest.raises(ReportInputError, match="--since"):
        ReportOptions(since=date(2026, 6, 2), until=date(2026, 6, 1))


# ----------------------------------------------------------------------------- the command


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("AMTSBOTE_DATABASE_URL", url)
    code = main(["report", "--no-prefect", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_formats(
    generated: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, generated, "--until", "2026-06-30")
    assert code == 0  # overdue cases are reported, not an error
    assert "Open and overdue cases" in out and "Deliveries per recipient agency" in out
    assert "overdue" in out.splitlines()[2]

    code, out, _ = run_cli(
        monkeypatch, capsys, generated, "--format", "csv", "--out", str(tmp_path / "csv")
    )
    assert code == 0
    import csv

    with open(tmp_path / "csv" / "agencies.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["agency"] for r in rows} >= {"it-nrw", "dguv", "finanzamt-paderborn"}
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    for name in (
        "overview",
        "cases_by_state",
        "lead_times",
        "deadlines",
        "open_cases",
        "failures",
        "daily_volume",
    ):
        assert (tmp_path / "csv" / f"{name}.csv").stat().st_size > 0

    xlsx = tmp_path / "r.xlsx"
    code, out, _ = run_cli(monkeypatch, capsys, generated, "--format", "xlsx", "--out", str(xlsx))
    assert code == 0 and f"wrote {xlsx}" in out
    from openpyxl import load_workbook

    book = load_workbook(xlsx, read_only=True)
    assert {"overview", "agencies", "open_cases", "lead_times"} <= set(book.sheetnames)
    sheet = book["cases_by_state"]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    assert header[:2] == ["procedure", "open"]
    assert zipfile.is_zipfile(xlsx)

    page = tmp_path / "r.html"
    plots = tmp_path / "plots"
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        generated,
        "--format",
        "html",
        "--out",
        str(page),
        "--plots",
        str(plots),
    )
    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<table" in text
    assert text.count('src="data:image/png;base64,') == 4
    for name in ("lead_time", "daily_volume", "agency_latency", "agency_failures"):
        png = (plots / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_cli_unusable_input(
    generated: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = [
        (("--since", "2026-02-30"), "not a date"),
        (("--since", "2026-06-02", "--until", "2026-06-01"), "after --until"),
        (("--format", "pdf"), "unknown format"),
        (("--format", "html", "--out", str(tmp_path / "missing" / "r.html")), "does not exist"),
        (("--format", "xlsx", "--out", str(tmp_path)), "is a directory"),
        (("--format", "csv", "--out", str(tmp_path / "file.txt")), "not a directory"),
    ]
    (tmp_path / "file.txt").write_text("x")
    for args, message in cases:
        code, out, err = run_cli(monkeypatch, capsys, generated, *args)
        assert code == 2, args
        assert message in err and out == ""
    code, _, err = run_cli(monkeypatch, capsys, f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert code == 2 and "no journal database file" in err
    assert not (tmp_path / "none.sqlite").exists()
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run_cli(
        monkeypatch, capsys, f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/journal"
    )
    assert code == 2 and "journal database" in err and "secret" not in err


def test_empty_journal_still_gives_every_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    Journal(url, create=True).close()
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        url,
        "--format",
        "html",
        "--out",
        str(tmp_path / "e.html"),
        "--plots",
        str(tmp_path / "p"),
    )
    assert code == 0
    assert len(list((tmp_path / "p").glob("*.png"))) == 4
    code, out, _ = run_cli(monkeypatch, capsys, url)
    assert code == 0 and "(none)" in out


def test_prefect_durations_are_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    assert prefect_reachable() is None  # PREFECT_API_URL unset
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    assert prefect_reachable(timeout=0.5) is None
    assert flow_run_durations(None, NOW, timeout=0.5) is None
