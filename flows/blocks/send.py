"""Outbox and sending: build and record one message per route (``prepare_messages``), send
each delivery with retries (``send_delivery``), and ``distribute`` = both for a list of routes.

A message's journal key is fixed by the family from (case, rule) when it is first recorded in the
outbox, so a retried task, a resumed or a re-run flow never sends a message twice under a new key,
and the receiving inbox deduplicates by it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.journal import DeliveryRecord, DeliveryState, Direction, OutboxEntry
from connectors.senders import (
    OutgoingMessage,
    PermanentSendError,
    SendError,
    is_transient,
    retry_condition,
)
from xoev.container import referenced_files, write_container

from ..routing import Route
from ..runtime import get_runtime
from .common import ACKNOWLEDGED, CaseRef, DeliveryOutcome

__all__ = [
    "distribute",
    "prepare_messages",
    "send_all",
    "send_deliveries",
    "send_delivery",
]


@task(name="prepare-messages", cache_policy=NO_CACHE, persist_result=False)
async def prepare_messages(case: CaseRef, routes: list[Route]) -> list[DeliveryRecord]:
    """Build (by the case's family: data-minimised, validated) and record (outbox) one message
    per route; existing ones are taken as recorded."""
    deliveries, _ = await asyncio.to_thread(_prepare, case, routes)
    return deliveries


def _prepare(case: CaseRef, routes: list[Route]) -> tuple[list[DeliveryRecord], dict[str, bytes]]:
    """The routes' deliveries (existing ones as recorded, new messages built and recorded
    together) and the payloads of the messages built here, by nachrichtenUUID (the first
    attempt needs not read back what it just wrote)."""
    rt = get_runtime()
    family = case.family
    held: dict[str, list[DeliveryRecord]] = {}
    for d in rt.journal.deliveries(case_id=case.case_id, direction=Direction.OUTBOUND):
        held.setdefault(d.nachrichten_uuid, []).append(d)
    out: list[list[DeliveryRecord]] = []
    new: list[tuple[int, OutboxEntry]] = []
    for route in routes:
        msg_uuid = family.message_uuid(case, route)
        existing = held.get(msg_uuid) or rt.journal.deliveries(
            nachrichten_uuid=msg_uuid, direction=Direction.OUTBOUND
        )
        out.append(existing)
        if existing:
            continue
        built = family.build(rt, case, route, message_uuid=msg_uuid)
        for name, digest in built.files.items():  # the files first, then the message rows
            rt.journal.blobs.attach(msg_uuid, name, digest)
        entry = OutboxEntry(built.payload, built.meta, [route.recipient], f"rule:{route.rule}")
        new.append((len(out) - 1, entry))
    if new:  # all of the group's new messages in one transaction
        recorded = rt.journal.record_outbound_many(
            [e for _, e in new], case_id=case.case_id, sender_agency=rt.home.id
        )
        for (i, _), (_, deliveries, _) in zip(new, recorded, strict=True):
            out[i] = deliveries
    payloads = {e.meta.nachrichten_uuid: e.payload for _, e in new}
    return [d for group in out for d in group], payloads


async def _send_one(delivery: DeliveryRecord, known: bytes | None = None) -> DeliveryOutcome:
    """Send one delivery, recording the attempt; already acknowledged or dead ones are not sent
    again. The request holds a slot of the recipient's global limits
    (:func:`flows.operations.agency_slot`): no agency receives more than its ``concurrency`` and
    ``rate_limit`` across all workers."""
    from ..operations import agency_slot

    rt = get_runtime()
    payload: bytes | None
    if known is not None and delivery.state is DeliveryState.CREATED:
        d, payload = delivery, known
    else:
        d, payload = await asyncio.to_thread(_payload_of, delivery)
    if payload is None:
        return DeliveryOutcome(d.id, d.recipient, d.nachrichten_uuid, d.state.value, d.attempts)
    sender = rt.sender(d.recipient)
    async with agency_slot(d.recipient), _container(d.nachrichten_uuid, payload) as container:
        started = time.perf_counter()
        try:
            receipt = await sender.asend(
                OutgoingMessage(
                    payload=payload,
                    nachrichten_uuid=d.nachrichten_uuid,
                    recipient=d.recipient,
                    sender=rt.home.id,
                    content_type="application/xml" if container is None else "application/zip",
                    file=container,
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


class _LazyBlob:
    """A blob opened on the first read and closed at its end: a container of a thousand
    documents holds one file open at a time."""

    def __init__(self, rt: Any, digest: str) -> None:
        self._rt, self._digest = rt, digest
        self._reader: Any = None
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if self._reader is None:
            self._reader = self._rt.journal.blobs.open(self._digest)
        data: bytes = self._reader.read(n)
        if not data:
            self._reader.close()
            self._done = True
        return data


@contextlib.asynccontextmanager
async def _container(key: str, payload: bytes) -> AsyncIterator[Path | None]:
    """An xdomea message that names primary documents travels as an x-man container: written
    (streaming, from the blob store) to a temporary file for the attempt and removed after it.
    Other messages travel as they are (None)."""
    names = await asyncio.to_thread(referenced_files, payload)
    if not names:
        yield None
        return
    rt = get_runtime()
    held = {f.name: f.digest for f in rt.journal.blobs.files_of(key)}
    missing = [n for n in names if n not in held]
    if missing:
        raise PermanentSendError(
            f"message {key}: primary documents not held: {', '.join(missing[:5])}"
        )
    tmp = Path(tempfile.mkdtemp(prefix="amtsbote-container-"))
    try:

        def write() -> Path:
            lazy: dict[str, Any] = {n: _LazyBlob(rt, held[n]) for n in names}
            write_container(tmp, payload, lazy)
            [path] = tmp.glob("*.zip")
            return path

        yield await asyncio.to_thread(write)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _attempt(
    deliveries: list[DeliveryRecord], payloads: dict[str, bytes] | None = None
) -> list[DeliveryOutcome]:
    """One attempt at every pending delivery, concurrently. A permanent failure makes its
    delivery a dead letter at once (no retry can help); when transient failures remain, the
    first is raised so that the task is retried (``retry_condition``) — a retry sends only
    what is still unacknowledged."""
    known = payloads or {}
    results = await asyncio.gather(
        *(_send_one(d, known.get(d.nachrichten_uuid)) for d in deliveries),
        return_exceptions=True,
    )
    transient: list[BaseException] = []
    outcomes: list[DeliveryOutcome] = []
    for delivery, result in zip(deliveries, results, strict=True):
        if isinstance(result, DeliveryOutcome):
            outcomes.append(result)
        elif isinstance(result, Exception) and is_transient(result):
            transient.append(result)
        elif isinstance(result, Exception):
            await asyncio.to_thread(_bury, delivery.id)
        else:
            raise result
    if transient:
        if len(transient) > 1:
            get_run_logger().warning(
                "%d deliveries failed transiently, first: %s", len(transient), transient[0]
            )
        raise transient[0]
    return outcomes


@task(
    name="send",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=retry_condition,
    task_run_name="send-{label}",
)
async def send_deliveries(delivery_ids: list[int], label: str) -> list[DeliveryOutcome]:
    """Send the given deliveries concurrently, every attempt recorded in the journal; a
    transient failure retries the task (delays from ``FlowSettings``)."""
    rt = get_runtime()
    current = await asyncio.to_thread(lambda: [rt.journal.get_delivery(i) for i in delivery_ids])
    return await _attempt(current)


async def send_delivery(delivery_id: int) -> DeliveryOutcome:
    """Send one delivery (with the retries of ``FlowSettings``); see :func:`send_all`."""
    rt = get_runtime()
    [outcome] = await send_all([rt.journal.get_delivery(delivery_id)])
    return outcome


def _payload_of(d: DeliveryRecord) -> tuple[DeliveryRecord, bytes | None]:
    """The delivery and its payload; no payload when there is nothing (more) to send."""
    rt = get_runtime()
    if d.state in ACKNOWLEDGED or d.state is DeliveryState.DEAD:
        return d, None
    return d, rt.journal.payload(d.nachrichten_uuid, direction=Direction.OUTBOUND)


def _bury(delivery_id: int) -> DeliveryRecord:
    """Make a delivery that is not acknowledged a dead letter (``amtsbote redeliver``)."""
    rt = get_runtime()
    current = rt.journal.get_delivery(delivery_id)
    if current.state in ACKNOWLEDGED or current.state is DeliveryState.DEAD:
        return current
    if current.state is not DeliveryState.FAILED:
        current = rt.journal.transition(
            delivery_id,
            DeliveryState.FAILED,
            actor="sender",
            error=current.last_error or "send failed",
        )
    return rt.journal.transition(
        delivery_id, DeliveryState.DEAD, actor="sender", detail={"attempts": current.attempts}
    )


def _settle(delivery_ids: list[int]) -> list[DeliveryOutcome]:
    """After the sending task: acknowledged deliveries as they are, every other one a dead
    letter."""
    rt = get_runtime()
    outcomes = []
    for delivery_id in delivery_ids:
        d = rt.journal.get_delivery(delivery_id)
        if d.state in ACKNOWLEDGED:
            outcomes.append(
                DeliveryOutcome(d.id, d.recipient, d.nachrichten_uuid, d.state.value, d.attempts)
            )
            continue
        d = _bury(delivery_id)
        get_run_logger().warning(
            "dead letter: delivery %s to %s (%s attempts): %s",
            d.id,
            d.recipient,
            d.attempts,
            d.last_error,
        )
        outcomes.append(
            DeliveryOutcome(
                d.id, d.recipient, d.nachrichten_uuid, "dead", d.attempts, error=d.last_error
            )
        )
    return outcomes


@functools.lru_cache(maxsize=32)
def _with_retries(task_fn: Any, delays: tuple[float, ...]) -> Any:
    """The task with the runtime's retry delays, made once per (task, delays):
    ``Task.with_options`` builds a new task, reading its source again, on every call."""
    return task_fn.with_options(retries=len(delays), retry_delay_seconds=list(delays))


async def send_all(
    deliveries: list[DeliveryRecord], *, label: str = "deliveries"
) -> list[DeliveryOutcome]:
    """Send concurrently (one task); a delivery whose retries are exhausted (or that failed
    permanently) becomes a dead letter (``amtsbote redeliver``)."""
    if not deliveries:
        return []
    ids = [d.id for d in deliveries]
    delays = tuple(get_runtime().settings.retry_delays)
    await _reraise_unless_sending(
        await _with_retries(send_deliveries, delays)(ids, label, return_state=True)
    )
    return await asyncio.to_thread(_settle, ids)


async def distribute(
    case: CaseRef, routes: tuple[Route, ...] | list[Route]
) -> list[DeliveryOutcome]:
    """One message per route (built by the family: data-minimised, validated), recorded in the
    outbox and sent concurrently.

    The first attempt runs on the flow run itself: a task run costs the Prefect server a dozen
    writes per case and shows an operator nothing the journal and the case's artifact do not.
    Only when transient failures remain does a ``send-<label>`` task take over, with the
    retries (and backoff) of ``FlowSettings.retry_delays`` after the first — that is where an
    operator gains from watching. A message that cannot be built fails the flow; deliveries
    whose retries are exhausted become dead letters."""
    if not routes:
        return []
    routes = list(routes)
    rt = get_runtime()
    deliveries, payloads = await asyncio.to_thread(_prepare, case, routes)
    try:
        outcomes = await _attempt(deliveries, payloads)
    except Exception as exc:
        if not is_transient(exc):
            raise
        delays = tuple(rt.settings.retry_delays)
        ids = [d.id for d in deliveries]
        if delays:
            label = routes[0].rule if len(routes) == 1 else f"{len(routes)}-messages"
            get_run_logger().warning(
                "case %s: first attempt failed (%s); retrying in %s s as task send-%s",
                case.case_id,
                exc,
                delays[0],
                label,
            )
            await asyncio.sleep(delays[0])
            state = await _with_retries(send_deliveries, delays[1:])(ids, label, return_state=True)
            await _reraise_unless_sending(state)
        return await asyncio.to_thread(_settle, ids)
    if len(outcomes) == len(deliveries) and all(o.state in _ACK_VALUES for o in outcomes):
        return outcomes
    return await asyncio.to_thread(_settle, [d.id for d in deliveries])


_ACK_VALUES = frozenset(s.value for s in ACKNOWLEDGED)


async def _reraise_unless_sending(state: Any) -> None:
    """A sending task that failed because sending failed leaves dead letters (settled by the
    caller); one that failed for any other reason fails the flow with that error."""
    if not state.is_failed():
        return
    exc = await state.result(raise_on_failure=False)
    if isinstance(exc, BaseException) and not isinstance(exc, SendError):
        raise exc
