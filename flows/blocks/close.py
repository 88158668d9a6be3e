"""``await_receipts`` and ``close``: acknowledgements, final status, artifacts for operators."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from prefect import task
from prefect.artifacts import TableArtifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext

from connectors.journal import CaseStatus, DeliveryRecord, DeliveryState, Direction

from ..exceptions import DeadLetters
from ..runtime import Runtime, get_runtime
from .common import CaseRef

__all__ = [
    "await_receipts",
    "close",
    "delivery_rows",
    "finish_case",
    "publish_case_artifacts",
    "timeline_markdown",
    "wait_for_receipts",
]


async def await_receipts(case: CaseRef) -> dict[str, int]:
    """Wait until every delivery of the case is acknowledged (see :func:`wait_for_receipts`);
    when every one already is (push and file drop deliveries are acknowledged by their
    receipt), no task is run: there is nothing an operator would watch."""
    rt = get_runtime()
    deliveries = await asyncio.to_thread(
        rt.journal.deliveries, case_id=case.case_id, direction=Direction.OUTBOUND
    )
    if all(_acknowledged(rt, d) or d.state is DeliveryState.DEAD for d in deliveries):
        return dict(Counter(d.state.value for d in deliveries))
    return await wait_for_receipts(case)


@task(name="await-receipts", cache_policy=NO_CACHE, persist_result=False)
async def wait_for_receipts(case: CaseRef) -> dict[str, int]:
    """Wait until every delivery of the case is acknowledged: a receipt (delivered) for push and
    file drop, ``fetched`` for mailbox agencies — up to ``FlowSettings.receipt_wait``. Returns
    the count per state."""
    from ..mailbox_status import refresh_mailbox_states

    rt = get_runtime()
    deadline = time.monotonic() + rt.settings.receipt_wait.total_seconds()

    def current() -> list[DeliveryRecord]:
        return rt.journal.deliveries(case_id=case.case_id, direction=Direction.OUTBOUND)

    while True:
        deliveries = await asyncio.to_thread(current)
        if any(d.state is DeliveryState.DELIVERED for d in deliveries):
            await refresh_mailbox_states(rt, deliveries)
            deliveries = await asyncio.to_thread(current)
        pending = [
            d for d in deliveries if not _acknowledged(rt, d) and d.state is not DeliveryState.DEAD
        ]
        if not pending or time.monotonic() >= deadline:
            return dict(Counter(d.state.value for d in deliveries))
        await asyncio.sleep(min(rt.settings.poll_interval, 0.5))


def _acknowledged(rt: Runtime, d: DeliveryRecord) -> bool:
    if d.state is DeliveryState.FETCHED:
        return True
    if d.state is DeliveryState.DELIVERED:
        return rt.directory.get(d.recipient).channel.value != "mailbox"
    return False


def delivery_rows(rt: Runtime, case_id: str) -> list[dict[str, Any]]:
    types = {
        m.nachrichten_uuid: m.message_type
        for m in rt.journal.messages(case_id=case_id, direction=Direction.OUTBOUND)
    }
    rows = []
    for d in rt.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND):
        rows.append(
            {
                "recipient": d.recipient,
                "message_type": types.get(d.nachrichten_uuid, "?"),
                "state": d.state.value,
                "attempts": d.attempts,
                "nachrichtenUUID": d.nachrichten_uuid,
                "last_error": (d.last_error or "")[:120],
            }
        )
    return rows


def timeline_markdown(rt: Runtime, case_id: str) -> str:
    lines = [
        f"### Timeline of case {case_id}",
        "",
        "| time (UTC) | actor | event | details |",
        "|---|---|---|---|",
    ]
    for ev in rt.journal.events(case_id=case_id):
        detail = ", ".join(f"{k}={v}" for k, v in sorted(ev.detail.items()) if k != "comment")
        lines.append(f"| {ev.at:%Y-%m-%d %H:%M:%S} | {ev.actor} | {ev.kind} | {detail[:160]} |")
    return "\n".join(lines)


def finish_case(
    rt: Runtime,
    case_id: str,
    *,
    outcome: str | None = None,
    actor: str,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Set the final status from the deliveries (``rows``: :func:`delivery_rows`, read here
    when not given): closed when every one is acknowledged, failed while dead letters remain
    (``amtsbote redeliver``). Returns the non-personal summary."""
    if rows is None:
        rows = delivery_rows(rt, case_id)
    dead = [r for r in rows if r["state"] == "dead"]
    status = CaseStatus.FAILED if dead else CaseStatus.CLOSED
    if outcome == "rejected":
        status = CaseStatus.CLOSED
    case = rt.journal.get_case(case_id)
    summary = dict(case.summary)
    summary.update(
        {
            "outcome": outcome or ("dead-letters" if dead else "distributed"),
            "deliveries": dict(Counter(r["state"] for r in rows)),
            "recipients": sorted({r["recipient"] for r in rows}),
        }
    )
    if case.status is not status or case.summary != summary:
        rt.journal.update_case(case_id, status=status, summary=summary, actor=actor)
    return {"case_id": case_id, "status": status.value, **summary}


async def close(case: CaseRef, *, outcome: str | None = None) -> dict[str, Any]:
    """Final status, a table artifact (recipient, type, state, attempts) and a timeline — on
    the flow run itself (not a task: the run's final state is the case's; a task run would
    only cost the server its writes)."""
    rt = get_runtime()

    def finish() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
        rows = delivery_rows(rt, case.case_id)
        summary = finish_case(rt, case.case_id, outcome=outcome, actor="close", rows=rows)
        return summary, rows, timeline_markdown(rt, case.case_id)

    summary, rows, timeline = await asyncio.to_thread(finish)
    await publish_case_artifacts(rt, case.case_id, rows=rows, timeline=timeline)
    if summary["status"] == CaseStatus.FAILED.value:
        # a failed case must look failed: the run ends Failed with the reason (agency ids only)
        raise DeadLetters([summary], step="close")
    return summary


async def publish_case_artifacts(
    rt: Runtime,
    case_id: str,
    *,
    rows: list[dict[str, Any]] | None = None,
    timeline: str | None = None,
) -> None:
    """One table artifact for operators: a row per delivery (recipient, type, state, attempts),
    the case's timeline from the journal as its description (one artifact, not two: each costs
    the Prefect server a write and an event per case). ``rows`` and ``timeline`` are read from
    the journal when not given."""
    key = "case-" + "".join(c if c.isalnum() else "-" for c in case_id.lower())
    if rows is None or timeline is None:
        rows, timeline = await asyncio.to_thread(
            lambda: (delivery_rows(rt, case_id), timeline_markdown(rt, case_id))
        )
    table = [{k: v for k, v in r.items() if k != "last_error"} for r in rows or ()]
    artifact = TableArtifact(
        key=key,
        table=table or [{"recipient": "-", "state": "none"}],
        description=f"Deliveries of case {case_id}\n\n{timeline}",
    )
    # the run's own API client: ``acreate_table_artifact`` opens a new one (and a new connection
    # to the server) for every artifact
    ctx = FlowRunContext.get()
    client = ctx.client if ctx is not None else None
    await artifact.acreate(client=client if isinstance(client, PrefectClient) else None)
