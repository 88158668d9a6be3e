"""Optional: how long the procedures' flow runs took, from the Prefect API.

Only when ``PREFECT_API_URL`` is set and the server answers ``/health`` within a second or two;
otherwise :func:`flow_run_durations` returns ``None`` and the report goes without this section.
The journal is the report's source; Prefect adds run durations (including time spent waiting for
approvals and replies, which the journal's lead time covers from the case's point of view).
"""

from __future__ import annotations

import os
from datetime import datetime

import pandas as pd

__all__ = ["flow_run_durations", "prefect_reachable"]

_PAGE = 200


def prefect_reachable(api_url: str | None = None, *, timeout: float = 2.0) -> str | None:
    """The API URL if set and healthy, else ``None``."""
    url = (api_url or os.environ.get("PREFECT_API_URL") or "").strip().rstrip("/")
    if not url:
        return None
    import httpx

    try:
        response = httpx.get(f"{url}/health", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    return url if response.status_code == 200 else None


def flow_run_durations(
    start: datetime | None,
    end: datetime,
    *,
    api_url: str | None = None,
    flows: tuple[str, ...] = (),
    max_runs: int = 20_000,
    timeout: float = 2.0,
) -> pd.DataFrame | None:
    """Per flow: runs started in ``[start, end)``, completed/failed counts and the median, p90
    and maximum of ``total_run_time`` in seconds. ``None`` when Prefect is not reachable.

    ``api_url`` defaults to ``PREFECT_API_URL`` from the environment (inside a flow run: pass
    the current Prefect settings' URL); the client then uses Prefect's own settings."""
    if prefect_reachable(api_url, timeout=timeout) is None:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    run_filter = FlowRunFilter(
        start_time=FlowRunFilterStartTime(after_=start, before_=end)  # type: ignore[arg-type]
    )
    flow_filter = FlowFilter(name=FlowFilterName(any_=list(flows))) if flows else None
    rows: list[dict[str, object]] = []
    with get_client(sync_client=True, httpx_settings={"timeout": 30.0}) as client:
        names = {f.id: f.name for f in client.read_flows(flow_filter=flow_filter)}
        offset = 0
        while offset < max_runs:
            page = client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=FlowRunSort.START_TIME_ASC,
                limit=_PAGE,
                offset=offset,
            )
            for run in page:
                rows.append(
                    {
                        "flow": names.get(run.flow_id, str(run.flow_id)),
                        "state": run.state_type.value if run.state_type else "UNKNOWN",
                        "seconds": run.total_run_time.total_seconds(),
                    }
                )
            if len(page) < _PAGE:
                break
            offset += _PAGE
    columns = ["flow", "runs", "completed", "failed", "median_s", "p90_s", "max_s"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    grouped = frame.groupby("flow", sort=True)
    table = pd.DataFrame(
        {
            "runs": grouped.size(),
            "completed": grouped["state"].apply(lambda s: int((s == "COMPLETED").sum())),
            "failed": grouped["state"].apply(lambda s: int(s.isin(["FAILED", "CRASHED"]).sum())),
            "median_s": grouped["seconds"].median(),
            "p90_s": grouped["seconds"].quantile(0.9),
            "max_s": grouped["seconds"].max(),
        }
    ).reset_index()
    return table[columns]
