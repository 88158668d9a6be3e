"""Reporting on the message journal: operations report, plots, the daily-report flow.

Layers (each importable on its own; only :mod:`.flow` and :mod:`.prefect_runs` import Prefect):

==================  ===========================================================================
module              what it does
==================  ===========================================================================
:mod:`.queries`     aggregating SQL on the journal's tables → pandas frames (no ORM objects,
                    no payloads); timestamps as epoch seconds computed by the database
:mod:`.data`        pure functions frames → tables (:class:`ReportData`); definitions of lead
                    time, success rate, latency, deadline (§ 3 Abs. 5 GewAnzV)
:mod:`.workdays`    working days Mon–Fri without the public holidays of NRW (``holidays``)
:mod:`.render`      text, CSV, XLSX, HTML, Markdown for Prefect artifacts
:mod:`.plots`       PNG plots (matplotlib, Agg canvas)
:mod:`.prefect_runs` optional flow-run durations from the Prefect API
:mod:`.flow`        ``daily-report`` and ``retention`` flows
==================  ===========================================================================

::

    from flows.reporting import ReportOptions, build_report
    report = build_report(journal.engine, ReportOptions(since=date(2026, 6, 1)))
    report.agencies          # a DataFrame
"""

from __future__ import annotations

from .data import ReportData, ReportOptions, build_report, summarise, window_for
from .exceptions import ReportDataError, ReportError, ReportInputError, ReportOutputError
from .queries import JournalFrames, Window, load_frames
from .workdays import WorkCalendar

__all__ = [
    "JournalFrames",
    "ReportData",
    "ReportDataError",
    "ReportError",
    "ReportInputError",
    "ReportOptions",
    "ReportOutputError",
    "Window",
    "WorkCalendar",
    "build_report",
    "load_frames",
    "summarise",
    "window_for",
]
