"""The ``daily-report`` and ``retention`` flows against a temporary Prefect server: artifacts are
published, carry no personal data, and flow-run durations come from the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.generate import FICTITIOUS_NAMES, GeneratorOptions, generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_daily_report_and_retention_flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.reporting.flow import daily_report, retention
    from flows.reporting.prefect_runs import flow_run_durations

    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    generate(url, GeneratorOptions(cases=120, seed=9, now=now, days=20))
    monkeypatch.setenv("AMTSBOTE_DATABASE_URL", url)
    monkeypatch.setenv("AMTSBOTE_DATA_DIR", str(tmp_path / "data"))  # the key file goes here
    monkeypatch.setenv("AMTSBOTE_RETENTION", str(tmp_path / "retention.yaml"))
    (tmp_path / "retention.yaml").write_text("version: 1\ndefaults: {closed: 5}\n")
    yesterday = (now - timedelta(days=1)).date().isoformat()
    with prefect_test_harness(server_startup_timeout=120):
        overview = daily_report(day=yesterday, days=7, out_dir=str(tmp_path / "reports"))
        purged = retention(dry_run=True)
        from prefect.settings import get_current_settings

        durations = flow_run_durations(
            None,
            datetime.now(UTC) + timedelta(minutes=1),
            api_url=str(get_current_settings().api.url),
        )
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
    assert overview["cases"] > 0 and overview["open"] >= overview["overdue"]
    assert purged["dry_run"] and purged["cases"] > 0
    assert {
        "daily-report",
        "daily-report-cases",
        "daily-report-agencies",
        "daily-report-overdue",
        "daily-report-lead-times",
        "daily-report-failures",
        "retention",
    } <= set(artifacts)
    markdown = str(artifacts["daily-report"].data)
    assert "Deliveries per recipient agency" in markdown and "it-nrw" in markdown
    cases = json.loads(str(artifacts["daily-report-cases"].data))
    assert cases[-1]["procedure"] == "all" and cases[-1]["total"] == overview["cases"]
    everything = " ".join(str(a.data) for a in artifacts.values())
    for group in ("vorname", "familienname", "strasse"):
        for name in FICTITIOUS_NAMES[group]:
            assert name not in everything
    assert "recipient's inbox" not in everything  # no free error text in Prefect
    report_dir = tmp_path / "reports" / yesterday
    assert (report_dir / "report.html").stat().st_size > 10_000
    assert len(list(report_dir.glob("*.png"))) == 4
    assert durations is not None
    runs = durations.set_index("flow")
    assert runs.loc["daily-report", "completed"] == 1
    assert runs.loc["retention", "runs"] == 1
