"""The report's plots as PNG: lead-time distribution, daily intake per procedure, per-agency
delivery latency and failure rate.

Matplotlib's object-oriented API with the Agg canvas (no pyplot, no global state, no display);
an empty period still gives a PNG that says so, so the set of files is always the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .data import ReportData
from .exceptions import ReportOutputError

__all__ = ["PLOTS", "render_plots", "write_plots"]

_DPI = 100
_COLOURS = ("#1f5f8b", "#e07b39", "#5a9e4b", "#8c6bb1", "#c44e52", "#7f7f7f")


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _no_data(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        "no data in this period",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="#666666",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def lead_time_figure(report: ReportData) -> Figure:
    fig, ax = _figure()
    title = "Lead time: intake to last receipt"
    data = report.lead_time_hours
    if not len(data):
        _no_data(ax, title)
        return fig
    days = data["hours"].to_numpy() / 24.0
    top = max(float(np.quantile(days, 0.99)), 1.0)
    bins = [float(b) for b in np.linspace(0.0, top, 40)]
    for colour, (procedure, group) in zip(_COLOURS, data.groupby("procedure"), strict=False):
        values = np.clip(group["hours"].to_numpy() / 24.0, 0.0, top)
        ax.hist(
            values,
            bins=bins,
            histtype="step",
            linewidth=1.6,
            color=colour,
            label=f"{procedure} (n={len(values)})",
        )
    limit = report.options.deadline_days
    median = float(np.median(days))
    ax.axvline(median, color="#333333", linestyle="--", linewidth=1)
    ax.text(median, ax.get_ylim()[1] * 0.95, f" median {median:.1f} d", va="top", fontsize=8)
    ax.set_title(f"{title} (calendar days; rule: {limit} working days)")
    ax.set_xlabel("days (values above the 99th percentile in the last bin)")
    ax.set_ylabel("cases")
    ax.legend(fontsize=8)
    return fig


def daily_volume_figure(report: ReportData) -> Figure:
    fig, ax = _figure(9.0, 4.0)
    title = "Daily intake per procedure"
    daily = report.daily
    procedures = [c for c in daily.columns if c not in ("date", "total")]
    if not len(daily) or not procedures:
        _no_data(ax, title)
        return fig
    x = np.arange(len(daily))
    edges = np.arange(len(daily) + 1) - 0.5
    bottom = np.zeros(len(daily))
    for colour, procedure in zip(_COLOURS, procedures, strict=False):
        values = daily[procedure].to_numpy(dtype=float)
        # one filled step artist per procedure (stacked), not one rectangle per day
        ax.stairs(
            bottom + values, edges, baseline=bottom.copy(), fill=True, color=colour, label=procedure
        )
        bottom += values
    step = max(1, len(daily) // 12)
    ax.set_xticks(x[::step], daily["date"].to_numpy()[::step], rotation=45, ha="right", fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_title(title)
    ax.set_ylabel("cases received")
    ax.legend(fontsize=8)
    return fig


def agency_latency_figure(report: ReportData) -> Figure:
    fig, ax = _figure()
    title = "Delivery latency per agency (recorded → delivered)"
    ag = report.agencies.dropna(subset=["latency_p50_s"])
    if not len(ag):
        _no_data(ax, title)
        return fig
    y = np.arange(len(ag))
    ax.barh(y - 0.2, ag["latency_p50_s"], height=0.4, color=_COLOURS[0], label="p50")
    ax.barh(y + 0.2, ag["latency_p90_s"], height=0.4, color=_COLOURS[1], label="p90")
    ax.set_yticks(y, ag["agency"].to_numpy())
    ax.invert_yaxis()
    if float(ag["latency_p90_s"].max()) > 20 * max(float(ag["latency_p50_s"].min()), 1e-3):
        ax.set_xscale("log")
    ax.set_xlabel("seconds")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def agency_failure_figure(report: ReportData) -> Figure:
    fig, ax = _figure()
    title = "Failures per agency"
    ag = report.agencies
    if not len(ag):
        _no_data(ax, title)
        return fig
    y = np.arange(len(ag))
    attempt_rate = ag["attempt_failure_rate"].fillna(0.0).to_numpy() * 100
    settled = (ag["acknowledged"] + ag["dead"]).to_numpy(dtype=float)
    dead_rate = np.divide(
        ag["dead"].to_numpy(dtype=float) * 100, settled, out=np.zeros(len(ag)), where=settled > 0
    )
    ax.barh(y - 0.2, attempt_rate, height=0.4, color=_COLOURS[4], label="failed attempts")
    ax.barh(y + 0.2, dead_rate, height=0.4, color=_COLOURS[5], label="dead letters")
    ax.set_yticks(y, ag["agency"].to_numpy())
    ax.invert_yaxis()
    ax.set_xlabel("% (of attempts / of settled deliveries)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


#: File stem → figure factory, in report order.
PLOTS: dict[str, Callable[[ReportData], Figure]] = {
    "lead_time": lead_time_figure,
    "daily_volume": daily_volume_figure,
    "agency_latency": agency_latency_figure,
    "agency_failures": agency_failure_figure,
}


def render_plots(report: ReportData) -> dict[str, bytes]:
    """Every plot as PNG bytes, by name."""
    out: dict[str, bytes] = {}
    for name, factory in PLOTS.items():
        fig = factory(report)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI)
        out[name] = buffer.getvalue()
    return out


def write_plots(
    report: ReportData, directory: Path, rendered: dict[str, bytes] | None = None
) -> list[Path]:
    """Write ``<name>.png`` files into ``directory`` (created); returns the paths."""
    pngs = rendered if rendered is not None else render_plots(report)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in pngs.items():
            path = directory / f"{name}.png"
            path.write_bytes(data)
            paths.append(path)
    except OSError as exc:
        raise ReportOutputError(directory, exc.strerror or str(exc)) from exc
    return paths
