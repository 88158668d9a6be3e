"""The fair queue of the inbox's accept path (issue 12, point 1): the scheduler itself
(:class:`connectors.inbox.fairqueue.FairQueue`, deterministic, under anyio) and the inbox over
real sockets on loopback — a flooding sender gets 429 with ``Retry-After`` once its queue is
full while another sender's message is still accepted, a full inbox answers 503 with
``Retry-After``, and the XTA ports share the queue. No timing is asserted (speed is measured by
``bench/attack.py``)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from test_inbox_support import Messages, auth, make_directory, xml_headers

from connectors.inbox import ApiError, InboxConfig, InboxConfigError, InboxServer, create_app
from connectors.inbox.fairqueue import FairQueue, Ticket
from connectors.inbox.xta import XTA_PREFIX
from connectors.journal import Journal

INBOX = "bezreg-detmold"
GOOD = "stadt-paderborn"  # sends valid messages to INBOX
FLOODER = "it-nrw"
THIRD = "hwk-owl"


# ------------------------------------------------------------------------------ the scheduler


async def _order_of_grants(queue: FairQueue, arrivals: list[str]) -> list[str]:
    """The order in which ``arrivals`` (``sender:n``) get the worker of a one-worker queue,
    all queued while another sender holds it."""
    granted: list[str] = []
    holder = queue.admit("holder")
    async with anyio.create_task_group() as tg:
        release_holder = anyio.Event()

        async def hold() -> None:
            async with holder.worker():
                await release_holder.wait()

        async def request(name: str) -> None:
            with queue.admit(name.split(":")[0]) as ticket:
                async with ticket.worker():
                    granted.append(name)

        tg.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        for name in arrivals:  # one at a time: each is queued before the next arrives
            tg.start_soon(request, name)
            await anyio.wait_all_tasks_blocked()
        assert granted == [] and queue.admitted == len(arrivals) + 1
        release_holder.set()
    holder.release()
    return granted


def test_workers_are_handed_out_round_robin_by_sender_fifo_within_one() -> None:
    queue = FairQueue(workers=1, per_sender=5, total=20)
    arrivals = ["a:1", "a:2", "a:3", "a:4", "b:1", "b:2", "c:1"]
    order = anyio.run(_order_of_grants, queue, arrivals)
    assert order == ["a:1", "b:1", "c:1", "a:2", "b:2", "a:3", "a:4"]
    assert queue.admitted == 0 and queue.busy == 0


def test_one_sender_holds_at_most_all_but_one_worker() -> None:
    async def main() -> None:
        queue = FairQueue(workers=3, per_sender=10, total=20)
        assert queue.sender_workers == 2
        started: list[str] = []
        done = anyio.Event()

        async def request(name: str) -> None:
            with queue.admit(name.split(":")[0]) as ticket:
                async with ticket.worker():
                    started.append(name)
                    await done.wait()

        async with anyio.create_task_group() as tg:
            for name in ("a:1", "a:2", "a:3", "a:4"):
                tg.start_soon(request, name)
            await anyio.wait_all_tasks_blocked()
            assert started == ["a:1", "a:2"] and queue.busy == 2  # a third worker stays free
            tg.start_soon(request, "b:1")
            await anyio.wait_all_tasks_blocked()
            assert started == ["a:1", "a:2", "b:1"] and queue.busy == 3  # b starts at once
            done.set()
        assert started[3:] == ["a:3", "a:4"] and queue.busy == 0

    anyio.run(main)


def test_a_single_worker_is_shared_without_a_reserve() -> None:
    assert FairQueue(workers=1, per_sender=1, total=1).sender_workers == 1
    assert FairQueue(workers=4, per_sender=1, total=1, sender_workers=4).sender_workers == 4


def test_full_queues_are_429_per_sender_and_503_in_total_with_retry_after() -> None:
    queue = FairQueue(workers=2, per_sender=2, total=3, retry_after=7)
    tickets: list[Ticket] = [queue.admit("a"), queue.admit("a")]
    with pytest.raises(ApiError) as own:
        queue.admit("a")
    assert own.value.status == 429 and own.value.code == "sender_queue_full"
    assert own.value.headers == {"Retry-After": "7", "Connection": "close"}
    tickets.append(queue.admit("b"))
    with pytest.raises(ApiError) as total:
        queue.admit("c")
    assert total.value.status == 503 and total.value.code == "queue_full"
    assert total.value.headers["Retry-After"] == "7"
    tickets[0].release()
    tickets[0].release()  # twice: counted once
    assert queue.admitted == 2
    tickets.append(queue.admit("c"))
    for ticket in tickets:
        ticket.release()
    assert queue.admitted == 0


def test_a_cancelled_request_leaves_the_queue_and_hands_its_worker_on() -> None:
    async def main() -> None:
        queue = FairQueue(workers=1, per_sender=5, total=5)
        order: list[str] = []
        holder = queue.admit("h")
        release = anyio.Event()

        async def hold() -> None:
            async with holder.worker():
                await release.wait()

        async def request(name: str, scope: anyio.CancelScope | None = None) -> None:
            with queue.admit(name) as ticket:
                if scope is None:
                    async with ticket.worker():
                        order.append(name)
                    return
                with scope:
                    async with ticket.worker():
                        order.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await anyio.wait_all_tasks_blocked()
            waiting, granted = anyio.CancelScope(), anyio.CancelScope()
            tg.start_soon(request, "w", waiting)
            tg.start_soon(request, "g", granted)
            tg.start_soon(request, "x")
            await anyio.wait_all_tasks_blocked()
            waiting.cancel()  # cancelled while waiting: leaves the queue
            await anyio.wait_all_tasks_blocked()
            release.set()  # the worker goes to g (next in the rotation) ...
            granted.cancel()  # ... which is cancelled before it runs: x gets it
        holder.release()
        assert order == ["x"] and queue.busy == 0 and queue.admitted == 0

    anyio.run(main)


def test_bounds_are_checked() -> None:
    with pytest.raises(InboxConfigError, match="queue_per_sender"):
        FairQueue(workers=2, per_sender=5, total=4)
    with pytest.raises(InboxConfigError, match="sender_workers"):
        FairQueue(workers=2, per_sender=1, total=4, sender_workers=3)
    with pytest.raises(InboxConfigError, match="queue_per_sender"):
        InboxConfig(queue_per_sender=65)
    with pytest.raises(InboxConfigError, match="queue_total"):
        InboxConfig(queue_total=0)
    with pytest.raises(InboxConfigError, match="sender_workers"):
        InboxConfig(workers=2, sender_workers=0)


def test_bounds_from_the_environment() -> None:
    env = {"AMTSBOTE_INBOX_QUEUE_PER_SENDER": "4", "AMTSBOTE_INBOX_QUEUE_TOTAL": "10"}
    config = InboxConfig.from_env(env)
    assert (config.queue_per_sender, config.queue_total) == (4, 10)
    assert InboxConfig.from_env(env, queue_total=20).queue_total == 20
    queue = config.fair_queue()
    assert (queue.per_sender, queue.total, queue.workers, queue.sender_workers) == (4, 10, 2, 1)
    with pytest.raises(InboxConfigError, match=r"AMTSBOTE_INBOX_QUEUE_TOTAL='x' is not"):
        InboxConfig.from_env({"AMTSBOTE_INBOX_QUEUE_TOTAL": "x"})


# ------------------------------------------------------------------------------ over sockets


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[tuple[InboxServer, FairQueue]]:
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    config = InboxConfig(queue_per_sender=2, queue_total=3, queue_retry_after=2)
    app = create_app(INBOX, journal=journal, directory=make_directory(), config=config)
    with InboxServer(app) as server:
        yield server, app.state.queue
    journal.close()


@contextlib.contextmanager
def _held(server: InboxServer, queue: FairQueue, sender: str, count: int) -> Iterator[None]:
    """``count`` deliveries of ``sender`` that send their headers and a first piece of the body
    and then nothing: admitted, their bodies being read. Closed at the end of the block."""
    before = queue.admitted
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            socks.append(sock)
            head = "POST /v1/messages HTTP/1.1\r\nHost: inbox\r\nContent-Length: 100000\r\n"
            for name, value in xml_headers(sender).items():
                head += f"{name}: {value}\r\n"
            sock.sendall(head.encode() + b"\r\n<?xml version='1.0'?>")
        _wait_for(lambda: queue.admitted == before + count)
        yield
    finally:
        for sock in socks:
            sock.close()
    _wait_for(lambda: queue.admitted == before)


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the inbox did not get there in time"
        time.sleep(0.01)


def _deliver(client: httpx.Client, messages: Messages) -> httpx.Response:
    _, body = messages.new()
    return client.post("/v1/messages", content=body, headers=xml_headers(GOOD))


def test_a_flooding_sender_gets_429_while_another_is_accepted(
    inbox: tuple[InboxServer, FairQueue],
) -> None:
    server, queue = inbox
    directory = make_directory()
    messages = Messages(directory.get(GOOD), directory.get(INBOX))
    with httpx.Client(base_url=server.url, timeout=30) as client, _held(server, queue, FLOODER, 2):
        flood = client.post("/v1/messages", content=b"<x/>", headers=xml_headers(FLOODER))
        assert flood.status_code == 429, flood.text
        assert flood.json()["error"] == "sender_queue_full"
        assert flood.headers["retry-after"] == "2"
        assert flood.headers["connection"] == "close"
        for _ in range(3):  # the other sender is served, one message at a time
            answer = _deliver(client, messages)
            assert answer.status_code == 202, answer.text
    with httpx.Client(base_url=server.url, timeout=30) as client:  # the flooder's turn again
        answer = client.post("/v1/messages", content=b"<x/>", headers=xml_headers(FLOODER))
        assert answer.status_code == 422, answer.text  # admitted, parsed, refused: not XÖV


def test_a_full_inbox_answers_503_with_retry_after(inbox: tuple[InboxServer, FairQueue]) -> None:
    server, queue = inbox
    directory = make_directory()
    messages = Messages(directory.get(GOOD), directory.get(INBOX))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with _held(server, queue, FLOODER, 2), _held(server, queue, THIRD, 1):
            full = _deliver(client, messages)
            assert full.status_code == 503, full.text
            assert full.json()["error"] == "queue_full"
            assert full.headers["retry-after"] == "2"
        assert _deliver(client, messages).status_code == 202


def test_the_xta_ports_share_the_queue(inbox: tuple[InboxServer, FairQueue]) -> None:
    server, queue = inbox
    with httpx.Client(base_url=server.url, timeout=30) as client, _held(server, queue, FLOODER, 2):
        fault = client.post(
            f"{XTA_PREFIX}/ManagementPort",
            content=b"<s12:Envelope/>",
            headers={**auth(FLOODER), "Content-Type": "application/soap+xml"},
        )
        assert fault.status_code == 429, fault.text
        assert fault.headers["retry-after"] == "2"
        assert "XTAWSTechnicalProblemException" in fault.text
        assert "sender_queue_full" not in fault.text and "in progress" in fault.text
