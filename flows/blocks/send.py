"""Outbox and sending: build and record one message per route (``prepare_messages``), send
each delivery with retries (``send_delivery``), and ``distribute`` = both for a list of routes.

A message's journal key is fixed by the family from (case, rule) when it is first recorded in the
outbox, so a retried task, a resumed or a re-run flow never sends a message twice under a new key,
and the receiving inbox deduplicates by it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.journal import DeliveryRecord, DeliveryState, Direction
from connectors.senders import OutgoingMessage, SendError, retry_condition

from ..routing import Route
from ..runtime import get_runtime
from .common import ACKNOWLEDGED, CaseRef, DeliveryOutcome

__all__ = ["distribute", "prepare_messages", "send_all", "send_delivery"]


@task(name="prepare-messages", cache_policy=NO_CACHE, persist_result=False)
async def prepare_messages(case: CaseRef, routes: list[Route]) -> list[DeliveryRecord]:
    """Build (by the case's family: data-minimised, validated) and record (outbox) one message
    per route; existing ones are taken as recorded."""
    return await asyncio.to_thread(_prepare, case, routes)


def _prepare(case: CaseRef, routes: list[Route]) -> list[DeliveryRecord]:
    rt = get_runtime()
    family = case.family
    out: list[DeliveryRecord] = []
    for route in routes:
        msg_uuid = family.message_uuid(case, route)
        existing = rt.journal.deliveries(nachrichten_uuid=msg_uuid, direction=Direction.OUTBOUND)
        if existing:
            out.extend(existing)
            continue
        built = family.build(rt, case, route, message_uuid=msg_uuid)
        _, deliveries, _ = rt.journal.record_outbound(
            built.payload,
            built.meta,
            recipients=[route.recipient],
            case_id=case.case_id,
            sender_agency=rt.home.id,
            actor=f"rule:{route.rule}",
        )
        out.extend(deliveries)
    return out


@task(
    name="send",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=retry_condition,
    task_run_name="send-{delivery_id}",
)
async def send_delivery(delivery_id: int) -> DeliveryOutcome:
    """Send one delivery; a transient error is retried (delays from ``FlowSettings``), every attempt
    is recorded. Already acknowledged deliveries are not sent again. The request holds a slot of
    the recipient's global limits (:func:`flows.operations.agency_slot`): no agency receives more
    than its ``concurrency`` and ``rate_limit`` across all workers."""
    from ..operations import agency_slot

    rt = get_runtime()
    d, payload = await asyncio.to_thread(_load_delivery, delivery_id)
    if payload is None:
        return DeliveryOutcome(d.id, d.recipient, d.nachrichten_uuid, d.state.value, d.attempts)
    sender = rt.sender(d.recipient)
    # at most the recipient's concurrency/rate across all workers: Prefect global limits
    # agency-<id> and agency-<id>-rate (`amtsbote limits sync`, flows/operations.py)
    async with agency_slot(d.recipient):
        started = time.perf_counter()
        try:
            receipt = await sender.asend(
                OutgoingMessage(
                    payload=payload,
                    nachrichten_uuid=d.nachrichten_uuid,
                    recipient=d.recipient,
                    sender=rt.home.id,
                )
            )
        except SendError as exc:
            ms = int((time.perf_counter() - started) * 1000)
            await asyncio.to_thread(
                rt.journal.record_attempt,
                d.id,
                ok=False,
                status_code=exc.status_code,
                error_class=type(exc).__name__,
                error=str(exc)[:500],
                duration_ms=ms,
                new_state=DeliveryState.FAILED,
            )
            raise
    ms = int((time.perf_counter() - started) * 1000)
    d = await asyncio.to_thread(
        rt.journal.record_attempt,
        d.id,
        ok=True,
        status_code=202,
        duration_ms=ms,
        new_state=DeliveryState.DELIVERED,
    )
    return DeliveryOutcome(
        d.id,
        d.recipient,
        d.nachrichten_uuid,
        d.state.value,
        d.attempts,
        meta={"receipt_state": receipt.state},
    )


def _load_delivery(delivery_id: int) -> tuple[DeliveryRecord, bytes | None]:
    """The delivery and its payload; no payload when there is nothing (more) to send."""
    rt = get_runtime()
    d = rt.journal.get_delivery(delivery_id)
    if d.state in ACKNOWLEDGED or d.state is DeliveryState.DEAD:
        return d, None
    return d, rt.journal.payload(d.nachrichten_uuid, direction=Direction.OUTBOUND)


async def send_all(deliveries: list[DeliveryRecord]) -> list[DeliveryOutcome]:
    """Send concurrently; a delivery whose retries are exhausted (or that failed permanently)
    becomes a dead letter (``amtsbote redeliver``)."""
    rt = get_runtime()
    delays = list(rt.settings.retry_delays)
    sender_task = send_delivery.with_options(retries=len(delays), retry_delay_seconds=delays)
    pending: list[Any] = [sender_task(d.id, return_state=True) for d in deliveries]
    states: list[Any] = await asyncio.gather(*pending)
    outcomes: list[DeliveryOutcome] = []
    for d, state in zip(deliveries, states, strict=True):
        if state.is_completed():
            outcomes.append(await state.result())
            continue
        current = rt.journal.get_delivery(d.id)
        if current.state is not DeliveryState.DEAD:
            if current.state is not DeliveryState.FAILED:
                current = rt.journal.transition(
                    d.id,
                    DeliveryState.FAILED,
                    actor="sender",
                    error=current.last_error or "send failed",
                )
            current = rt.journal.transition(
                d.id, DeliveryState.DEAD, actor="sender", detail={"attempts": current.attempts}
            )
        get_run_logger().warning(
            "dead letter: delivery %s to %s (%s attempts): %s",
            d.id,
            d.recipient,
            current.attempts,
            current.last_error,
        )
        outcomes.append(
            DeliveryOutcome(
                d.id,
                d.recipient,
                d.nachrichten_uuid,
                "dead",
                current.attempts,
                error=current.last_error,
            )
        )
    return outcomes


async def distribute(
    case: CaseRef, routes: tuple[Route, ...] | list[Route]
) -> list[DeliveryOutcome]:
    """One data-minimised message per recipient, recorded in the outbox, sent concurrently."""
    if not routes:
        return []
    deliveries = await prepare_messages(case, list(routes))
    return await send_all(deliveries)
