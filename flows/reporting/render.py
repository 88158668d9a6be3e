"""Writing a :class:`~.data.ReportData`: text table, CSV files, an Excel workbook, an HTML page.

=========  ===================================================================================
format     output
=========  ===================================================================================
table      plain text (stdout, or ``--out FILE``); long lists are cut, with a note
csv        a directory (``--out DIR``, created) with one ``<section>.csv`` per section plus
           ``overview.csv``; raw numbers, UTF-8, comma-separated
xlsx       one workbook (``--out FILE.xlsx``): an ``overview`` sheet and one sheet per section
html       one self-contained page (``--out FILE.html``): tables with simple CSS and the plots
           embedded as base64 ``data:`` URIs, so the file can be mailed or attached as it is
=========  ===================================================================================

Without ``--out`` the files are named ``amtsbote-report-<until>.<ext>`` (csv: a directory of
that name) in the current directory. Times are shown in Europe/Berlin.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from .data import ReportData
from .exceptions import ReportInputError, ReportOutputError

__all__ = [
    "FORMATS",
    "artifact_tables",
    "check_output",
    "default_output",
    "display_frame",
    "render_html",
    "render_markdown",
    "render_text",
    "write_csv",
    "write_text",
    "write_xlsx",
]

FORMATS = ("table", "csv", "xlsx", "html")
TEXT_ROWS = 25
HTML_ROWS = 200

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; color: #1b1b1b; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccd; padding-bottom: .2rem; }
p.meta { color: #555; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.card { border: 1px solid #ccd; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.card b { display: block; font-size: 1.3rem; }
.card.alert b { color: #b00020; }
table.t { border-collapse: collapse; font-size: .88rem; margin: .5rem 0; }
table.t th, table.t td { border: 1px solid #d5d8e0; padding: .25rem .5rem; text-align: right; }
table.t th { background: #eef1f6; }
table.t td:first-child, table.t th:first-child { text-align: left; }
table.t tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; border: 1px solid #e3e5ea; margin: .5rem 0; }
.note { color: #666; font-size: .85rem; }
"""


# --------------------------------------------------------------------------- paths


def default_output(report: ReportData, fmt: str) -> Path:
    """``amtsbote-report-<until>.<ext>`` (csv: a directory) in the current directory."""
    tz = ZoneInfo(report.options.timezone)
    last = (report.window.end.astimezone(tz)).date().toordinal() - 1
    day = datetime.fromordinal(last).date().isoformat()
    name = f"amtsbote-report-{day}"
    return Path(name if fmt == "csv" else f"{name}.{fmt}")


def check_output(fmt: str, out: Path | None, plots: Path | None = None) -> None:
    """Refuse, before any work, a format that does not exist or a path that cannot be written
    (:class:`ReportInputError` / :class:`ReportOutputError`)."""
    if fmt not in FORMATS:
        raise ReportInputError("--format", fmt, f"unknown format (use {', '.join(FORMATS)})")
    if out is not None:
        if fmt == "csv":
            _check_dir(out)
        else:
            _check_file(out)
    if plots is not None:
        _check_dir(plots)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise ReportOutputError(path, "is a directory, expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ReportOutputError(path, f"directory {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise ReportOutputError(path, "file is not writable")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ReportOutputError(path, f"directory {parent} is not writable")


def _check_dir(path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise ReportOutputError(path, "exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ReportOutputError(path, "directory is not writable")
        return
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ReportOutputError(path, f"cannot be created in {existing}")


# --------------------------------------------------------------------------- formatting


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rounded, human-readable copy: rates/shares as percent, hours to 1 and seconds to 2
    decimals, missing values as ``–``."""
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        col = frame[name]
        key = str(name)
        if key.endswith(("_rate", "_share")):
            out[key] = [f"{v * 100:.1f} %" if pd.notna(v) else "–" for v in col]
        elif key.endswith("_h"):
            out[key] = [f"{v:.1f}" if pd.notna(v) else "–" for v in col]
        elif key.endswith("_s"):
            out[key] = [f"{v:.2f}" if pd.notna(v) else "–" for v in col]
        elif col.dtype == bool:
            out[key] = ["yes" if v else "" for v in col]
        else:
            out[key] = [
                "–"
                if (v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA)
                else str(v)
                for v in col
            ]
    return out


def _period(report: ReportData) -> str:
    tz = ZoneInfo(report.options.timezone)
    start = report.window.start
    first = start.astimezone(tz).strftime("%Y-%m-%d") if start else "first case"
    last = datetime.fromordinal(report.window.end.astimezone(tz).date().toordinal() - 1)
    return f"{first} – {last:%Y-%m-%d}"


def _header_lines(report: ReportData) -> list[str]:
    tz = ZoneInfo(report.options.timezone)
    o = report.overview()
    filters = []
    if report.options.procedures:
        filters.append("procedures " + ", ".join(report.options.procedures))
    if report.options.agencies:
        filters.append("agencies " + ", ".join(report.options.agencies))
    lines = [
        f"period {_period(report)} (Europe/Berlin), open cases as of "
        f"{report.window.as_of.astimezone(tz):%Y-%m-%d %H:%M}",
        f"cases {o['cases']}, open {o['open']}, overdue {o['overdue']}, deliveries "
        f"{o['deliveries']}, dead letters {o['dead_letters']}, success "
        + (f"{o['success_rate'] * 100:.2f} %" if o["success_rate"] is not None else "–"),
    ]
    if filters:
        lines.append("filter: " + "; ".join(filters))
    if report.chain_head is not None:
        lines.append(f"journal chain head: seq {report.chain_head[0]} {report.chain_head[1]}")
    return lines


# --------------------------------------------------------------------------- writers


def render_text(report: ReportData, *, max_rows: int = TEXT_ROWS) -> str:
    parts = ["amtsbote report", *_header_lines(report), ""]
    for name, (title, frame) in report.sections().items():
        parts.append(f"== {title}")
        if not len(frame):
            parts.extend(["(none)", ""])
            continue
        shown = frame.head(max_rows) if name in ("open_cases", "daily_volume") else frame
        parts.append(display_frame(shown).to_string(index=False))
        if len(shown) < len(frame):
            parts.append(f"… {len(frame) - len(shown)} more rows (use --format csv or xlsx)")
        parts.append("")
    return "\n".join(parts)


def _overview_frame(report: ReportData) -> pd.DataFrame:
    items = report.overview()
    items["procedures"] = ", ".join(report.options.procedures) or None
    items["agencies"] = ", ".join(report.options.agencies) or None
    items["deadline_working_days"] = report.options.deadline_days
    items["holiday_calendar"] = f"DE-{report.options.calendar.subdiv}"
    return pd.DataFrame(
        {"key": list(items), "value": [str(v) if v is not None else "" for v in items.values()]}
    )


def write_csv(report: ReportData, directory: Path) -> list[Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "overview.csv"]
        _overview_frame(report).to_csv(paths[0], index=False)
        for name, (_, frame) in report.sections().items():
            path = directory / f"{name}.csv"
            frame.to_csv(path, index=False)
            paths.append(path)
    except OSError as exc:
        raise ReportOutputError(directory, exc.strerror or str(exc)) from exc
    return paths


def write_xlsx(report: ReportData, path: Path) -> Path:
    try:
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            _overview_frame(report).to_excel(writer, sheet_name="overview", index=False)
            for name, (_, frame) in report.sections().items():
                frame.to_excel(writer, sheet_name=name[:31], index=False)
    except OSError as exc:
        raise ReportOutputError(path, exc.strerror or str(exc)) from exc
    return path


def render_html(
    report: ReportData, plots: Mapping[str, bytes] | None = None, *, max_rows: int = HTML_ROWS
) -> str:
    """A self-contained HTML page; ``plots`` (name → PNG) are embedded as data URIs."""
    o = report.overview()
    tz = ZoneInfo(report.options.timezone)
    esc = html.escape
    cards = [
        ("cases", o["cases"], False),
        ("open", o["open"], False),
        ("overdue", o["overdue"], o["overdue"] > 0),
        ("deliveries", o["deliveries"], False),
        ("dead letters", o["dead_letters"], o["dead_letters"] > 0),
        (
            "delivery success",
            f"{o['success_rate'] * 100:.2f} %" if o["success_rate"] is not None else "–",
            False,
        ),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>amtsbote report {esc(_period(report))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>amtsbote report</h1>",
        f'<p class="meta">{esc(_header_lines(report)[0])}; generated '
        f"{report.generated_at.astimezone(tz):%Y-%m-%d %H:%M}</p>",
        '<div class="cards">',
        *[
            f'<div class="card{" alert" if alert else ""}">{esc(label)}<b>{esc(str(value))}</b>'
            "</div>"
            for label, value, alert in cards
        ],
        "</div>",
    ]
    if report.chain_head is not None:
        out.append(
            f'<p class="meta">journal chain head: seq {report.chain_head[0]} '
            f"<code>{esc(report.chain_head[1])}</code></p>"
        )
    figures = dict(plots or {})
    placement = {
        "lead_times": ["lead_time"],
        "agencies": ["agency_latency", "agency_failures"],
        "daily_volume": ["daily_volume"],
    }
    for name, (title, frame) in report.sections().items():
        out.append(f'<h2 id="{esc(name)}">{esc(title)}</h2>')
        if not len(frame):
            out.append('<p class="note">none</p>')
        else:
            shown = frame.head(max_rows)
            out.append(
                display_frame(shown).to_html(index=False, classes="t", border=0, escape=True)
            )
            if len(shown) < len(frame):
                out.append(
                    f'<p class="note">… {len(frame) - len(shown)} more rows '
                    "(see the csv or xlsx report)</p>"
                )
        for plot in placement.get(name, []):
            if plot in figures:
                data = base64.b64encode(figures.pop(plot)).decode("ascii")
                out.append(f'<img alt="{esc(plot)}" src="data:image/png;base64,{data}">')
    out.append(
        '<p class="note">Metadata only (case ids, agencies, states, times, error '
        "classes) — no message content. Working days: Mon–Fri without the public "
        f"holidays of DE-{esc(report.options.calendar.subdiv)}.</p>"
    )
    out.append("</body></html>")
    return "\n".join(out)


def write_text(content: str, path: Path) -> Path:
    try:
        path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise ReportOutputError(path, exc.strerror or str(exc)) from exc
    return path


# --------------------------------------------------------------------------- Prefect artifacts


def _md_table(frame: pd.DataFrame, max_rows: int) -> list[str]:
    shown = display_frame(frame.head(max_rows))
    cells = [[str(c) for c in shown.columns], *shown.astype(str).to_numpy().tolist()]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines.extend("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells[1:])
    if len(frame) > max_rows:
        lines.append(f"\n… {len(frame) - max_rows} more")
    return lines


def render_markdown(report: ReportData, *, max_rows: int = 20) -> str:
    """The report as Markdown for a Prefect artifact: headline figures, lead times, deadlines,
    agencies, the overdue cases (ids only) and failure classes — no free text from the journal
    (the failures' example texts are left out)."""
    lines = ["# amtsbote daily report", "", *[f"* {line}" for line in _header_lines(report)], ""]
    sections = report.sections()
    for name in ("cases_by_state", "lead_times", "deadlines", "agencies"):
        title, frame = sections[name]
        lines.extend([f"## {title}", ""])
        lines.extend(_md_table(frame, max_rows) if len(frame) else ["none"])
        lines.append("")
    overdue = report.open[report.open["overdue"]] if len(report.open) else report.open
    lines.extend([f"## Overdue cases ({len(overdue)})", ""])
    lines.extend(
        _md_table(overdue.drop(columns=["overdue"]), max_rows) if len(overdue) else ["none"]
    )
    lines.append("")
    failures = report.failures.drop(columns=["example"], errors="ignore")
    lines.extend(["## Top failure reasons", ""])
    lines.extend(_md_table(failures, max_rows) if len(failures) else ["none"])
    if report.flow_runs is not None:
        lines.extend(["", "## Prefect flow-run durations (seconds)", ""])
        lines.extend(_md_table(report.flow_runs, max_rows) if len(report.flow_runs) else ["none"])
    return "\n".join(lines) + "\n"


def artifact_tables(report: ReportData) -> dict[str, list[dict[str, object]]]:
    """Tables for Prefect table artifacts (JSON-ready; no free text): key → rows."""
    from .data import as_records

    overdue = report.open[report.open["overdue"]] if len(report.open) else report.open
    return {
        "daily-report-cases": as_records(report.cases_by_state),
        "daily-report-lead-times": as_records(report.lead_times),
        "daily-report-agencies": as_records(report.agencies),
        "daily-report-overdue": as_records(overdue.head(500)),
        "daily-report-failures": as_records(
            report.failures.drop(columns=["example"], errors="ignore")
        ),
    }
