"""``amtsbote report``: operations report from the message journal.

::

    amtsbote report [--since DATE] [--until DATE] [--procedure P]... [--agency ID]...
                    [--format table|csv|xlsx|html] [--out PATH] [--plots DIR]
                    [--database-url URL] [--no-prefect]

Cases per procedure and status, lead time (intake → last receipt, median/p90), deliveries per
recipient agency (success rate, attempts, latency p50/p90, dead letters), open and overdue cases
against the 10-working-day rule of § 3 Abs. 5 GewAnzV (NRW holidays), the top failure reasons
and the daily intake. Dates are Europe/Berlin calendar days, both inclusive (default: everything
up to today). With ``PREFECT_API_URL`` set and reachable, flow-run durations are added.

``table`` prints to stdout (or ``--out FILE``); ``csv`` writes a directory of files, ``xlsx`` a
workbook and ``html`` a self-contained page with embedded plots — by default
``amtsbote-report-<until>[.ext]`` in the current directory. ``--plots DIR`` also writes the plots
as PNG files.

Exit codes: 0 report written — **overdue cases are reported, not an error**; 2 unusable input:
a bad date, an unknown format, an output path that cannot be written, or a journal that cannot
be read (missing, not migrated, unreachable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import EXIT_OK, EXIT_UNUSABLE
from ._util import error

__all__ = ["register", "run_report"]

FORMATS = ("table", "csv", "xlsx", "html")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "report",
        help="operations report: cases, lead times, agencies, overdue cases",
        description="Operations report from the message journal: cases per procedure and "
        "status, lead times, deliveries per recipient agency, open and overdue "
        "cases (10 working days, § 3 Abs. 5 GewAnzV, NRW holidays), failure "
        "reasons, daily intake. Dates are Europe/Berlin days, both inclusive.",
        epilog="Exit 0: written (overdue cases are reported, not an error); 2: unusable input.",
    )
    p.add_argument("--since", metavar="DATE", help="first day, YYYY-MM-DD (Europe/Berlin)")
    p.add_argument("--until", metavar="DATE", help="last day, YYYY-MM-DD (default: today)")
    p.add_argument(
        "--procedure",
        action="append",
        default=[],
        metavar="NAME",
        help="only this procedure (repeatable)",
    )
    p.add_argument(
        "--agency",
        action="append",
        default=[],
        metavar="ID",
        help="only deliveries to this agency and cases involving it (repeatable)",
    )
    p.add_argument(
        "--format",
        default="table",
        metavar="FORMAT",
        help=f"one of {', '.join(FORMATS)} (default: table)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="output file (csv: directory); default stdout for table, "
        "amtsbote-report-<until>[.ext] otherwise",
    )
    p.add_argument("--plots", type=Path, metavar="DIR", help="also write the plots as PNG here")
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="journal database (default: AMTSBOTE_DATABASE_URL or the data dir)",
    )
    p.add_argument(
        "--no-prefect",
        action="store_true",
        help="do not ask the Prefect API for flow-run durations",
    )
    p.set_defaults(handler=run_report)


def _engine(url_option: str | None) -> Any:
    """An engine on a migrated journal; raises ReportDataError otherwise."""
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.config import Settings, mask_url
    from connectors.exceptions import ConnectorError
    from connectors.journal.engine import create_journal_engine, sqlite_file
    from connectors.journal.migrate import current_revision, head_revision

    from ..reporting.exceptions import ReportDataError

    try:
        url = url_option or Settings.from_env().database_url
        shown = mask_url(url)
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            raise ReportDataError(shown, "no journal database file (run `amtsbote db upgrade`)")
        engine = create_journal_engine(url)
    except ConnectorError as exc:
        raise ReportDataError(mask_url(url_option or "?"), str(exc)) from exc
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        orig = getattr(exc, "orig", None) or exc
        raise ReportDataError(
            shown,
            f"{type(orig).__name__}: "
            f"{str(orig).strip().splitlines()[0][:200] if str(orig) else ''}",
        ) from exc
    if revision != head_revision():
        engine.dispose()
        raise ReportDataError(
            shown,
            f"schema revision {revision or '(none)'}, this code needs "
            f"{head_revision()}; run `amtsbote db upgrade`",
        )
    return engine


def run_report(args: argparse.Namespace) -> int:
    from ..reporting.data import ReportOptions, build_report, parse_day
    from ..reporting.exceptions import ReportError
    from ..reporting.render import check_output

    fmt = str(args.format).strip().lower()
    try:
        options = ReportOptions(
            since=parse_day(args.since, "--since") if args.since else None,
            until=parse_day(args.until, "--until") if args.until else None,
            procedures=tuple(dict.fromkeys(args.procedure)),
            agencies=tuple(dict.fromkeys(args.agency)),
        )
        check_output(fmt, args.out, args.plots)
        engine = _engine(args.database_url)
    except ReportError as exc:
        error("report", str(exc))
        return EXIT_UNUSABLE
    try:
        flow_runs = None
        if not args.no_prefect:
            from ..reporting.data import window_for
            from ..reporting.prefect_runs import flow_run_durations

            window = window_for(options)
            try:
                flow_runs = flow_run_durations(window.start, window.end)
            except Exception as exc:  # optional section: never fails the report
                print(
                    f"amtsbote report: flow-run durations left out ({type(exc).__name__})",
                    file=sys.stderr,
                )
        report = build_report(engine, options, flow_runs=flow_runs)
        written = _write(report, fmt, args.out, args.plots)
    except ReportError as exc:
        error("report", str(exc))
        return EXIT_UNUSABLE
    finally:
        engine.dispose()
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _write(report: Any, fmt: str, out: Path | None, plots: Path | None) -> list[Path]:
    from ..reporting import render

    written: list[Path] = []
    pngs = None
    if plots is not None or fmt == "html":
        from ..reporting.plots import render_plots, write_plots

        pngs = render_plots(report)
        if plots is not None:
            written.extend(write_plots(report, plots, pngs))
    if fmt == "table":
        text = render.render_text(report)
        if out is None:
            sys.stdout.write(text + "\n")
        else:
            written.append(render.write_text(text + "\n", out))
        return written
    target = out if out is not None else render.default_output(report, fmt)
    if out is None:
        render.check_output(fmt, target)
    if fmt == "csv":
        written.extend(render.write_csv(report, target))
    elif fmt == "xlsx":
        written.append(render.write_xlsx(report, target))
    else:
        written.append(render.write_text(render.render_html(report, pngs), target))
    return written
