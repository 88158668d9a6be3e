"""Maintenance flows: ``daily-report`` and ``retention``.

``daily-report`` builds the report of the previous day (Europe/Berlin) — open and overdue cases
as of the end of that day — from the journal and publishes it as Prefect artifacts: a Markdown
summary (key ``daily-report``) and table artifacts (``daily-report-cases``, ``-lead-times``,
``-agencies``, ``-overdue``, ``-failures``). With ``out_dir`` it also writes the HTML report and
the PNG plots there. Artifacts carry case ids, procedures, agency ids, states, times, counts and
error classes — never payloads or free text from the journal.

``retention`` applies ``deployments/owl/retention.yaml`` (see
:mod:`connectors.journal.retention`) and publishes what it did as a Markdown artifact (counts
per rule only).

Deployments (``prefect.yaml``): daily-report at 06:00 Europe/Berlin, retention nightly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from connectors.journal import Journal
from connectors.journal.retention import RetentionConfig, run_retention
from flows.reporting.data import ReportOptions, build_report, parse_day, window_for
from flows.reporting.prefect_runs import flow_run_durations
from flows.reporting.render import artifact_tables, render_html, render_markdown, write_text

__all__ = ["daily_report", "retention", "retention_markdown"]

_OPTIONS: dict[str, Any] = {
    "persist_result": False,
    "log_prints": False,
    "validate_parameters": True,
}


@flow(name="daily-report", **_OPTIONS)
def daily_report(
    day: str | None = None,
    days: int = 1,
    out_dir: str | None = None,
    prefect_durations: bool = True,
) -> dict[str, Any]:
    """Report ``days`` days ending with ``day`` (YYYY-MM-DD; default: yesterday in
    Europe/Berlin) and publish it as artifacts. Returns the headline figures."""
    logger = get_run_logger()
    tz = ZoneInfo("Europe/Berlin")
    last = parse_day(day, "day") if day else datetime.now(tz).date() - timedelta(days=1)
    if days < 1:
        raise ValueError("days must be at least 1")
    options = ReportOptions(since=last - timedelta(days=days - 1), until=last)
    window = window_for(options)
    durations = None
    if prefect_durations:
        try:
            from prefect.settings import get_current_settings

            api = get_current_settings().api.url
            durations = flow_run_durations(
                window.start, window.end, api_url=str(api) if api else None
            )
        except Exception as exc:  # optional: never fails the report
            logger.warning("flow-run durations left out (%s)", type(exc).__name__)
    journal = Journal.from_env()
    try:
        report = build_report(journal.engine, options, flow_runs=durations)
    finally:
        journal.close()
    overview = report.overview()
    create_markdown_artifact(
        markdown=render_markdown(report),
        key="daily-report",
        description=f"amtsbote report {_period(options.since, last)}",
    )
    for key, rows in artifact_tables(report).items():
        create_table_artifact(
            table=rows or [{"none": ""}],
            key=key,
            description=f"{key} {_period(options.since, last)}",
        )
    if out_dir:
        from .plots import render_plots, write_plots

        target = Path(out_dir) / last.isoformat()
        pngs = render_plots(report)
        write_plots(report, target, pngs)
        write_text(render_html(report, pngs), target / "report.html")
        logger.info("report written to %s", target)
    logger.info(
        "%s cases, %s open, %s overdue, %s dead letters",
        overview["cases"],
        overview["open"],
        overview["overdue"],
        overview["dead_letters"],
    )
    return overview


def _period(first: date | None, last: date) -> str:
    return last.isoformat() if first in (None, last) else f"{first} – {last}"


def retention_markdown(result: Any) -> str:
    """Counts per rule as Markdown (no ids)."""
    totals = result.totals
    lines = [
        f"# Journal retention {'(dry run) ' if result.dry_run else ''}"
        f"{result.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| rule | cases | messages | payload bytes | summaries | error texts |",
        "|---|---|---|---|---|---|",
    ]
    for r in [*sorted(result.rules.values(), key=lambda r: r.rule), totals]:
        lines.append(
            f"| {r.rule} | {r.cases} | {r.messages} | {r.payload_bytes} | "
            f"{r.summaries} | {r.error_texts} |"
        )
    lines.extend(
        [
            "",
            f"* messages kept because a delivery is pending: {result.kept_pending}",
            f"* approval comments left in the immutable event log: {len(result.comment_events)}",
            f"* configuration: {result.config.get('source') or 'defaults'}",
        ]
    )
    return "\n".join(lines) + "\n"


@flow(name="retention", **_OPTIONS)
def retention(dry_run: bool = False, config_path: str | None = None) -> dict[str, Any]:
    """Apply the retention periods to the journal; returns the totals."""
    logger = get_run_logger()
    config = RetentionConfig.load(config_path)
    journal = Journal.from_env()
    try:
        result = run_retention(journal.engine, config, dry_run=dry_run)
    finally:
        journal.close()
    create_markdown_artifact(
        markdown=retention_markdown(result), key="retention", description="journal retention run"
    )
    totals = result.totals
    logger.info(
        "retention%s: %s cases, %s unassigned messages, %s payload bytes",
        " (dry run)" if dry_run else "",
        totals.cases,
        len(result.unassigned_ids),
        totals.payload_bytes,
    )
    return {
        "dry_run": dry_run,
        "cases": totals.cases,
        "messages": totals.messages,
        "payload_bytes": totals.payload_bytes,
        "kept_pending": result.kept_pending,
        "comment_events": len(result.comment_events),
    }
