"""Reliability of the inbox, for real: servers on 127.0.0.1, real sockets, the senders of
``connectors.senders`` as clients with a bounded retry loop, row counts straight from the
database.

* the recipient is down, comes up, goes down and up again while messages are sent;
* 500s (before and after the message was stored) and answers slower than the client's timeout;
* ``kill -9`` of an inbox process under concurrent load (SQLite file and PostgreSQL): every
  message that got a receipt is in the journal, intact, and redelivering everything after the
  restart stores nothing twice;
* 32 concurrent senders × 150 messages on PostgreSQL (8 × 100 on SQLite): exact counts (the
  throughput under load is bench/inbox.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import free_port
from test_inbox_support import (
    INBOX_PROCESS_KEY,
    InboxProcess,
    Messages,
    deliver,
    make_directory,
    pg_schema,
    stored_uuids,
    table_counts,
)

from connectors.inbox import InboxServer, create_app
from connectors.journal import Journal
from connectors.senders import (
    HttpSender,
    OutgoingMessage,
    Receipt,
    SenderConfig,
    SendError,
    TransientSendError,
)

pytestmark = pytest.mark.integration

SENDER = "stadt-paderborn"
RECIPIENT = "bezreg-detmold"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kreis.sqlite'}"
    else:
        with pg_schema(request.getfixturevalue("pg_url")) as url:
            yield url


def _sender(directory: Any, **config: Any) -> HttpSender:
    options: dict[str, Any] = {"rate_limit": False, "connect_timeout": 2.0, "read_timeout": 30.0}
    options.update(config)
    return HttpSender(directory.get(RECIPIENT), directory, config=SenderConfig(**options))


def _assert_exactly(url: str, sent: dict[str, OutgoingMessage]) -> None:
    counts = table_counts(url)
    assert counts == {
        "messages": len(sent),
        "uuids": len(sent),
        "deliveries": len(sent),
        "received_events": len(sent),
    }
    assert stored_uuids(url) == set(sent)


# ------------------------------------------------------------------------ down, then up


def test_recipient_down_then_up_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'kreis.sqlite'}"
    directory = make_directory({RECIPIENT: f"http://127.0.0.1:{port}"})
    factory = Messages(directory.get(SENDER), directory.get(RECIPIENT))
    sent: dict[str, OutgoingMessage] = {}
    receipts: dict[str, Receipt] = {}
    attempts: dict[str, int] = {}
    errors: list[BaseException] = []

    def client(count: int) -> None:
        try:
            with _sender(directory, read_timeout=5.0) as sender:
                for _ in range(count):
                    message = factory.outgoing()
                    sent[message.nachrichten_uuid] = message
                    receipt, tries = deliver(sender, message, timeout=60, pause=0.05)
                    receipts[message.nachrichten_uuid] = receipt
                    attempts[message.nachrichten_uuid] = tries
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with Journal(url, create=True) as journal:
        app = create_app(RECIPIENT, journal=journal, directory=directory)
        threads = [threading.Thread(target=client, args=(15,)) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the recipient is down: the clients are retrying
        assert not receipts
        server = InboxServer(app, port=port).start()
        deadline = time.monotonic() + 30
        while len(receipts) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop()  # down again, with requests in flight and keep-alive connections open
        time.sleep(0.3)
        server = InboxServer(app, port=port).start()
        try:
            for t in threads:
                t.join(90)
        finally:
            server.stop()
    assert not errors, errors
    assert len(receipts) == len(sent) == 45
    for uid, receipt in receipts.items():
        assert receipt.sha512 == sent[uid].sha512
    assert max(attempts.values()) > 1, "the clients never met the recipient down"
    _assert_exactly(url, sent)


# ------------------------------------------------------------------------ 500s and slow answers


class Faults:
    """ASGI middleware in front of the real inbox. The FIRST attempt of each message fails the
    way its UUID's last hex digit says; later attempts pass:

    ``0`` 500 before the inbox saw it · ``1`` 500 after the inbox stored it · ``2`` the answer
    is held back longer than the client waits · ``3`` 503 with ``Retry-After: 0`` before ·
    others: no fault.

    ``statuses`` records what the real inbox answered per message (202 first, 200 repeats)."""

    MODES: ClassVar[dict[str, str]] = {
        "0": "500-before",
        "1": "500-after",
        "2": "slow",
        "3": "503-before",
    }

    def __init__(self, app: Any, *, delay: float) -> None:
        self.app = app
        self.delay = delay
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.statuses: defaultdict[str, list[int]] = defaultdict(list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/messages":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        uid = headers.get(b"x-nachrichten-uuid", b"").decode()
        self.attempts[uid] += 1
        mode = self.MODES.get(uid[-1:], "pass") if self.attempts[uid] == 1 else "pass"
        self.injected[mode] += 1
        if mode in ("500-before", "503-before"):
            status = 500 if mode == "500-before" else 503
            await _answer(send, status, b'{"error":"injected","detail":"fault injection"}')
            return
        held: dict[str, Any] = {}

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses[uid].append(message["status"])
                if mode == "slow":
                    await asyncio.sleep(self.delay)
            if mode == "500-after":
                held[message["type"]] = message  # swallow the real answer
                return
            await send(message)

        await self.app(scope, receive, record)
        if mode == "500-after":
            await _answer(send, 500, b'{"error":"injected","detail":"lost answer"}')


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 503:
        headers.append((b"retry-after", b"0"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_500s_and_slow_answers_lose_and_duplicate_nothing(db_url: str) -> None:
    directory = make_directory()
    factory = Messages(directory.get(SENDER), directory.get(RECIPIENT))
    sent: dict[str, OutgoingMessage] = {}
    for i in range(24):
        uid = str(uuid.uuid4())[:-1] + "0123456789abcdef"[i % 6]
        message = factory.outgoing(uid)
        sent[message.nachrichten_uuid] = message
    receipts: dict[str, Receipt] = {}
    errors: list[BaseException] = []
    with Journal(db_url, create=True) as journal:
        faults = Faults(create_app(RECIPIENT, journal=journal, directory=directory), delay=1.5)
        with InboxServer(faults) as server:
            directory = make_directory({RECIPIENT: server.url})
            queue = list(sent.values())
            lock = threading.Lock()

            def client() -> None:
                try:
                    with _sender(directory, read_timeout=0.5) as sender:
                        while True:
                            with lock:
                                if not queue:
                                    return
                                message = queue.pop()
                            receipt, _ = deliver(sender, message, timeout=60)
                            receipts[message.nachrichten_uuid] = receipt
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
    assert not errors, errors
    assert set(receipts) == set(sent)
    for uid, receipt in receipts.items():
        assert (receipt.nachrichten_uuid, receipt.sha512) == (uid, sent[uid].sha512)
    assert {m: faults.injected[m] for m in Faults.MODES.values()} == {
        "500-before": 4,
        "500-after": 4,
        "slow": 4,
        "503-before": 4,
    }
    for uid in sent:
        mode = Faults.MODES.get(uid[-1], "pass")
        # stored on the first attempt that reached the inbox; every later one was a repeat
        expected = [202, 200] if mode in ("500-after", "slow") else [202]
        assert faults.statuses[uid] == expected, (mode, faults.statuses[uid])
    _assert_exactly(db_url, sent)


# ------------------------------------------------------------------------ kill -9 under load


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_message(db_url: str, tmp_path: Path) -> None:
    inbox = InboxProcess(RECIPIENT, database_url=db_url, log_dir=tmp_path).start()
    directory = make_directory({RECIPIENT: inbox.url})
    factory = Messages(directory.get(SENDER), directory.get(RECIPIENT))
    attempted: dict[str, OutgoingMessage] = {}
    acknowledged: dict[str, Receipt] = {}
    failures: list[SendError] = []
    stop = threading.Event()

    def client() -> None:
        with _sender(directory) as sender:
            while not stop.is_set():
                message = factory.outgoing()
                attempted[message.nachrichten_uuid] = message
                try:
                    acknowledged[message.nachrichten_uuid] = sender.send(message)
                except SendError as exc:
                    failures.append(exc)
                    time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.005)
        inbox.kill()  # SIGKILL while eight senders are in the middle of requests
        acked_at_kill = len(acknowledged)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert acked_at_kill >= 200, inbox.log_text()[-2000:]
    assert failures, "the kill should have interrupted requests in flight"
    assert all(isinstance(f, TransientSendError) for f in failures), failures[:3]

    # Every message that got a receipt survived the crash, byte for byte.
    stored = stored_uuids(db_url)
    assert set(acknowledged) <= stored
    assert stored <= set(attempted)
    with Journal(db_url, key=INBOX_PROCESS_KEY) as journal:
        for uid in acknowledged:
            assert journal.payload(uid) == attempted[uid].payload

    # After the restart the senders redeliver everything: nothing is stored twice, and what was
    # acknowledged before gets the very same receipt.
    restarted = InboxProcess(RECIPIENT, database_url=db_url, log_dir=tmp_path, port=inbox.port)
    with restarted:
        queue = list(attempted.values())
        redelivered: dict[str, Receipt] = {}
        lock = threading.Lock()

        def redeliver() -> None:
            with _sender(directory) as sender:
                while True:
                    with lock:
                        if not queue:
                            return
                        message = queue.pop()
                    redelivered[message.nachrichten_uuid] = deliver(sender, message)[0]

        again = [threading.Thread(target=redeliver) for _ in range(4)]
        for t in again:
            t.start()
        for t in again:
            t.join(120)
    assert restarted.process is not None and restarted.process.returncode == 0, (
        "SIGTERM must end the inbox cleanly"
    )
    assert set(redelivered) == set(attempted)
    for uid, receipt in acknowledged.items():
        assert redelivered[uid] == receipt
    _assert_exactly(db_url, attempted)


# ------------------------------------------------------------------------ many senders at once


async def _load(directory: Any, clients: int, per_client: int) -> dict[str, Receipt]:
    """``clients`` senders (one HttpSender each, as separate agencies' outboxes would have)
    sending ``per_client`` messages one after the other, retrying transient failures."""
    factory = Messages(directory.get(SENDER), directory.get(RECIPIENT))
    receipts: dict[str, Receipt] = {}

    async def client() -> None:
        sender = _sender(directory, read_timeout=120.0, pool_timeout=120.0)
        try:
            for _ in range(per_client):
                message = factory.outgoing()
                for attempt in range(50):
                    try:
                        receipt = await sender.asend(message)
                        break
                    except TransientSendError:
                        if attempt == 49:
                            raise
                        await asyncio.sleep(0.05)
                assert receipt.sha512 == message.sha512
                receipts[message.nachrichten_uuid] = receipt
        finally:
            await sender.aclose()

    await asyncio.gather(*(client() for _ in range(clients)))
    return receipts


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "clients", "per_client"),
    [
        pytest.param("postgresql", 32, 150, marks=pytest.mark.postgres, id="postgresql-32x150"),
        pytest.param("sqlite", 8, 100, id="sqlite-8x100"),
    ],
)
def test_concurrent_senders_exact_counts(
    backend: str, clients: int, per_client: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'kreis.sqlite'}"
        else:
            url = stack.enter_context(pg_schema(request.getfixturevalue("pg_url")))
        inbox = stack.enter_context(InboxProcess(RECIPIENT, database_url=url, log_dir=tmp_path))
        directory = make_directory({RECIPIENT: inbox.url})
        receipts = asyncio.run(_load(directory, clients, per_client))
        total = clients * per_client
        assert len(receipts) == total
        counts = table_counts(url)
        assert counts == {
            "messages": total,
            "uuids": total,
            "deliveries": total,
            "received_events": total,
        }
        assert stored_uuids(url) == set(receipts)
