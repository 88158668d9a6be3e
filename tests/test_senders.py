"""HTTP and mailbox senders against real inbox servers on 127.0.0.1 (uvicorn in a thread), plus
``httpx.MockTransport`` where a transport is easier to steer than a server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.directory import Agency, Channel, Directory
from connectors.senders import (
    FileDropSender,
    HttpSender,
    MailboxSender,
    OutgoingMessage,
    PermanentSendError,
    RateLimiter,
    Receipt,
    Sender,
    SenderConfig,
    SenderConfigError,
    SendError,
    TransientSendError,
    is_transient,
    parse_retry_after,
    retry_condition,
    sender_for,
)
from connectors.senders import http as http_module

pytestmark = pytest.mark.integration

XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<nachricht><inhalt>Test</inhalt></nachricht>\n'
MAX_BODY = 64 * 1024


# --------------------------------------------------------------------- the loopback inbox


class Inbox:
    """A small inbox service after the contract of the real one: POST /v1/messages, bearer of
    the sending agency, X-Nachrichten-UUID, 202 receipt, same receipt for a repeated UUID,
    401 / 413 / 415 / 422 findings. Each path prefix plays a different server."""

    def __init__(self, directory: Directory, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self.requests: list[dict[str, Any]] = []
        self.receipts: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/ok/v1/messages", self.ok, methods=["POST"]),
                Route("/fail500/v1/messages", self.fail500, methods=["POST"]),
                Route("/busy/v1/messages", self.busy, methods=["POST"]),
                Route("/slow/v1/messages", self.slow, methods=["POST"]),
                Route("/moved/v1/messages", self.moved, methods=["POST"]),
            ]
        )

    def for_path(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(f"/{prefix}/")]

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        with self.lock:
            self.requests.append(
                {"path": request.url.path, "headers": dict(request.headers), "body": body}
            )
        return body

    async def ok(self, request: Request) -> Response:
        body = await self._record(request)
        auth = request.headers.get("authorization", "")
        sender = self.directory.authenticate(auth.removeprefix("Bearer ")) if auth else None
        if sender is None or not auth.startswith("Bearer "):
            return JSONResponse({"detail": "unknown or missing bearer token"}, status_code=401)
        if request.headers.get("content-type", "").split(";")[0] != "application/xml":
            return JSONResponse({"detail": "only application/xml is accepted"}, status_code=415)
        if len(body) > MAX_BODY:
            return JSONResponse({"detail": f"message exceeds {MAX_BODY} bytes"}, status_code=413)
        recipient = request.headers.get("x-empfaenger", "")
        hosted = {a.id for a in self.directory.hosted_by(self.owner)}
        if recipient != self.owner and recipient not in hosted:
            return JSONResponse({"detail": f"no inbox for {recipient!r} here"}, status_code=404)
        try:
            ET.fromstring(body)
        except ET.ParseError as exc:
            line, column = exc.position
            finding = {
                "severity": "error",
                "line": line,
                "xpath": None,
                "rule": "xml",
                "message": f"not well-formed (column {column})",
            }
            return JSONResponse({"findings": [finding]}, status_code=422)
        key = request.headers["x-nachrichten-uuid"]
        with self.lock:
            receipt = self.receipts.get(key)
            status = 200
            if receipt is None:
                status = 202
                receipt = {
                    "nachrichtenUUID": key,
                    "received_at": datetime.now(UTC).isoformat(),
                    "sha512": hashlib.sha512(body).hexdigest(),
                    "state": "delivered" if recipient in hosted else "received",
                    "sender": sender.id,
                }
                self.receipts[key] = receipt
        return JSONResponse(receipt, status_code=status)

    async def fail500(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("database unavailable", status_code=500)

    async def busy(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(
            {"detail": "too many messages"}, status_code=429, headers={"Retry-After": "7"}
        )

    async def slow(self, request: Request) -> Response:
        await self._record(request)
        for _ in range(200):  # at most ~10 s; ends as soon as the client has given up
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return Response(status_code=204)

    async def moved(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=307, headers={"Location": "http://127.0.0.1:9/elsewhere"})


@contextlib.contextmanager
def serve(app: Any, **options: Any) -> Iterator[int]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a thread; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        timeout_graceful_shutdown=2,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"inbox-{port}", daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("test inbox did not start")
        time.sleep(0.02)
    else:
        raise RuntimeError("test inbox did not start within 10 s")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _agency(agency_id: str, endpoint: str | None, **kw: Any) -> Agency:
    channel = kw.pop("channel", Channel.HTTP)
    return Agency(
        id=agency_id,
        name=agency_id.title(),
        behoerdenkennung=f"TEST:{agency_id}",
        roles=("Test",),
        channel=channel,
        token_env=f"TOKEN_{agency_id.upper().replace('-', '_')}",
        endpoint=endpoint,
        rate_limit=kw.pop("rate_limit", 1000.0),
        concurrency=kw.pop("concurrency", 4),
        **kw,
    )


def _directory(base: str, environ: dict[str, str], drop: Path | None = None) -> Directory:
    closed = free_port()  # nothing listens there: connection refused
    agencies = [
        _agency("gewerbeamt", f"{base}/ok"),
        _agency("kammer", None, channel=Channel.MAILBOX, mailbox_host="gewerbeamt"),
        _agency("broken", f"{base}/fail500"),
        _agency("busy", f"{base}/busy"),
        _agency("slow", f"{base}/slow"),
        _agency("moved", f"{base}/moved"),
        _agency("closed", f"http://127.0.0.1:{closed}"),
        _agency("finanzamt", None, channel=Channel.FILE, drop_dir=drop or Path("/nonexistent")),
    ]
    return Directory(agencies, roles=["Test"], environ=environ)


ENV = {
    "TOKEN_GEWERBEAMT": "tok-gewerbeamt",
    "TOKEN_KAMMER": "tok-kammer",
    "TOKEN_BROKEN": "tok-broken",
    "TOKEN_BUSY": "tok-busy",
    "TOKEN_SLOW": "tok-slow",
    "TOKEN_MOVED": "tok-moved",
    "TOKEN_CLOSED": "tok-closed",
    "TOKEN_FINANZAMT": "tok-finanzamt",
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Inbox]]:
    holder: dict[str, Directory] = {}

    class LateDirectory:  # the inbox needs the directory, the directory needs the port
        def __getattr__(self, name: str) -> Any:
            return getattr(holder["d"], name)

    inbox = Inbox(LateDirectory(), owner="gewerbeamt")  # type: ignore[arg-type]
    with serve(inbox.app) as port:
        base = f"http://127.0.0.1:{port}"
        holder["d"] = _directory(base, ENV)
        yield base, inbox


@pytest.fixture
def directory(server: tuple[str, Inbox], tmp_path: Path) -> Directory:
    return _directory(server[0], ENV, tmp_path / "drop")


@pytest.fixture
def inbox(server: tuple[str, Inbox]) -> Inbox:
    return server[1]


def message(
    recipient: str,
    sender: str = "kammer",
    payload: bytes = XML,
    content_type: str = "application/xml",
) -> OutgoingMessage:
    return OutgoingMessage(
        payload=payload,
        nachrichten_uuid=str(uuid.uuid4()),
        recipient=recipient,
        sender=sender,
        content_type=content_type,
    )


FAST = SenderConfig(connect_timeout=2, read_timeout=5, write_timeout=5, pool_timeout=5)


# ------------------------------------------------------------------------------- success


def test_push_returns_the_inbox_receipt_and_sends_the_right_headers(
    directory: Directory, inbox: Inbox
) -> None:
    msg = message("gewerbeamt", sender="kammer")
    with sender_for("gewerbeamt", directory, config=FAST) as sender:
        assert isinstance(sender, HttpSender) and isinstance(sender, Sender)
        receipt = sender.send(msg)
    assert receipt.nachrichten_uuid == msg.nachrichten_uuid
    assert receipt.sha512 == hashlib.sha512(XML).hexdigest()
    assert receipt.state == "received"
    assert receipt.raw["sender"] == "kammer"  # the inbox authenticated the SENDING agency
    assert abs(receipt.received_at - datetime.now(UTC)) < timedelta(minutes=5)
    (seen,) = [
        r
        for r in inbox.for_path("ok")
        if r["body"] == XML and r["headers"]["x-nachrichten-uuid"] == msg.nachrichten_uuid
    ]
    headers = seen["headers"]
    assert headers["authorization"] == "Bearer tok-kammer"
    assert headers["content-type"] == "application/xml"
    assert headers["x-empfaenger"] == "gewerbeamt"
    assert headers["accept"] == "application/json"


def test_repeated_uuid_gets_the_same_receipt(directory: Directory) -> None:
    msg = message("gewerbeamt")
    with HttpSender(directory.get("gewerbeamt"), directory, config=FAST) as sender:
        first = sender.send(msg)
        again = sender.send(msg)
    assert again == first
    assert again.raw == first.raw


def test_reused_uuid_with_other_content_is_permanent(directory: Directory) -> None:
    msg = message("gewerbeamt")
    other = OutgoingMessage(
        payload=XML.replace(b"Test", b"Other"),
        nachrichten_uuid=msg.nachrichten_uuid,
        recipient="gewerbeamt",
        sender="kammer",
    )
    with HttpSender(directory.get("gewerbeamt"), directory, config=FAST) as sender:
        sender.send(msg)
        with pytest.raises(PermanentSendError, match="recipient holds other content"):
            sender.send(other)


def test_mailbox_deposit_goes_to_the_host_inbox(directory: Directory, inbox: Inbox) -> None:
    msg = message("kammer", sender="gewerbeamt")
    sender = sender_for(directory.get("kammer"), directory, config=FAST)
    assert isinstance(sender, MailboxSender)
    assert sender.url == f"{directory.get('gewerbeamt').endpoint}/v1/messages"
    with sender:
        receipt = sender.send(msg)
    assert receipt.state == "delivered"  # waits in the mailbox until the Kammer fetches
    (seen,) = [
        r for r in inbox.requests if r["headers"].get("x-nachrichten-uuid") == msg.nachrichten_uuid
    ]
    assert seen["headers"]["x-empfaenger"] == "kammer"
    assert seen["headers"]["authorization"] == "Bearer tok-gewerbeamt"


def test_async_send_and_concurrency(directory: Directory, inbox: Inbox) -> None:
    messages = [message("gewerbeamt") for _ in range(6)]

    async def run() -> list[Receipt]:
        async with HttpSender(directory.get("gewerbeamt"), directory, config=FAST) as sender:
            return await asyncio.gather(*(sender.asend(m) for m in messages))

    receipts = asyncio.run(run())
    assert [r.nachrichten_uuid for r in receipts] == [m.nachrichten_uuid for m in messages]
    assert all(r.state == "received" for r in receipts)


def test_one_sender_serves_several_event_loops(directory: Directory) -> None:
    sender = HttpSender(directory.get("gewerbeamt"), directory, config=FAST)
    try:
        first = asyncio.run(sender.asend(message("gewerbeamt")))
        second = asyncio.run(sender.asend(message("gewerbeamt")))  # a new loop, a new client
    finally:
        sender.close()
    assert first.state == second.state == "received"


# --------------------------------------------------------------------- failures, real server


def test_500_is_transient(directory: Directory) -> None:
    msg = message("broken")
    with (
        sender_for("broken", directory, config=FAST) as sender,
        pytest.raises(TransientSendError) as info,
    ):
        sender.send(msg)
    err = info.value
    assert err.status_code == 500 and err.recipient == "broken"
    assert err.nachrichten_uuid == msg.nachrichten_uuid
    assert err.url is not None and err.url.endswith("/fail500/v1/messages")
    text = str(err)
    assert "HTTP 500" in text and msg.nachrichten_uuid in text and "database unavailable" in text
    assert "sending to broken failed (transient)" in text
    assert is_transient(err)


def test_429_is_transient_with_retry_after(directory: Directory) -> None:
    with (
        sender_for("busy", directory, config=FAST) as sender,
        pytest.raises(TransientSendError) as info,
    ):
        sender.send(message("busy"))
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert "retry after 7s" in str(info.value) and "too many messages" in str(info.value)


def test_422_is_permanent_with_the_servers_findings(directory: Directory) -> None:
    msg = message("gewerbeamt", payload=b"<nachricht>\n<offen>\n</nachricht>")
    with (
        sender_for("gewerbeamt", directory, config=FAST) as sender,
        pytest.raises(PermanentSendError) as info,
    ):
        sender.send(msg)
    err = info.value
    assert err.status_code == 422
    assert "error: line 3 [xml] not well-formed" in err.reason
    assert isinstance(err.detail, dict) and err.detail["findings"][0]["line"] == 3
    assert not is_transient(err)


def test_wrong_token_is_401_permanent(server: tuple[str, Inbox], tmp_path: Path) -> None:
    base, _ = server
    client_side = _directory(base, {**ENV, "TOKEN_KAMMER": "stolen-or-stale"})
    with (
        sender_for("gewerbeamt", client_side, config=FAST) as sender,
        pytest.raises(PermanentSendError) as info,
    ):
        sender.send(message("gewerbeamt", sender="kammer"))
    assert info.value.status_code == 401
    assert "unknown or missing bearer token" in str(info.value)


def test_413_and_415_are_permanent(directory: Directory) -> None:
    with sender_for("gewerbeamt", directory, config=FAST) as sender:
        big = b"<a>" + b"x" * (MAX_BODY + 1) + b"</a>"
        with pytest.raises(PermanentSendError) as too_big:
            sender.send(message("gewerbeamt", payload=big))
        with pytest.raises(PermanentSendError) as wrong_type:
            sender.send(message("gewerbeamt", content_type="text/plain"))
    assert too_big.value.status_code == 413
    assert wrong_type.value.status_code == 415
    assert "only application/xml" in str(wrong_type.value)


def test_redirects_are_not_followed(directory: Directory, inbox: Inbox) -> None:
    before = len(inbox.requests)
    with (
        sender_for("moved", directory, config=FAST) as sender,
        pytest.raises(
            PermanentSendError, match=r"unexpected redirect to http://127\.0\.0\.1:9/elsewhere"
        ) as info,
    ):
        sender.send(message("moved"))
    assert info.value.status_code == 307
    assert len(inbox.requests) == before + 1


def test_read_timeout_is_transient(directory: Directory) -> None:
    config = SenderConfig(connect_timeout=2, read_timeout=0.3, write_timeout=2, pool_timeout=2)
    with (
        sender_for("slow", directory, config=config) as sender,
        pytest.raises(TransientSendError, match="ReadTimeout") as info,
    ):
        sender.send(message("slow"))
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert info.value.status_code is None


def test_refused_connection_is_transient(directory: Directory) -> None:
    with (
        sender_for("closed", directory, config=FAST) as sender,
        pytest.raises(TransientSendError, match="ConnectError") as info,
    ):
        sender.send(message("closed"))
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.url == f"{directory.get('closed').endpoint}/v1/messages"


def test_async_failures_are_translated_too(directory: Directory) -> None:
    async def run(recipient: str, config: SenderConfig = FAST) -> SendError:
        async with HttpSender(directory.get(recipient), directory, config=config) as sender:
            try:
                await sender.asend(message(recipient))
            except SendError as exc:
                return exc
        raise AssertionError("no error")

    assert isinstance(asyncio.run(run("broken")), TransientSendError)
    assert isinstance(asyncio.run(run("closed")), TransientSendError)
    short = SenderConfig(connect_timeout=2, read_timeout=0.3, write_timeout=2, pool_timeout=2)
    timeout = asyncio.run(run("slow", short))
    assert isinstance(timeout, TransientSendError)
    assert isinstance(timeout.__cause__, httpx.ReadTimeout)
    rejected = asyncio.run(run("busy"))
    assert isinstance(rejected, TransientSendError) and rejected.retry_after == 7.0


def test_connection_reset_is_transient(directory: Directory) -> None:
    """A server that accepts, reads and resets the connection (RST) without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def reset_everything() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            conn.close()

    thread = threading.Thread(target=reset_everything, daemon=True)
    thread.start()
    try:
        agency = _agency("resetter", f"http://127.0.0.1:{port}")
        d = Directory([*directory, agency], roles=["Test"], environ=ENV)
        with (
            HttpSender(agency, d, config=FAST) as sender,
            pytest.raises(TransientSendError) as info,
        ):
            sender.send(message("resetter"))
        assert isinstance(info.value.__cause__, httpx.ReadError | httpx.RemoteProtocolError)
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# ------------------------------------------------------------------ checks before sending


def test_misaddressed_unknown_sender_and_missing_token_are_permanent(
    server: tuple[str, Inbox],
) -> None:
    base, inbox = server
    d = _directory(base, {k: v for k, v in ENV.items() if k != "TOKEN_KAMMER"})
    before = len(inbox.requests)
    with HttpSender(d.get("gewerbeamt"), d, config=FAST) as sender:
        with pytest.raises(PermanentSendError, match="addressed to 'broken'"):
            sender.send(message("broken"))
        with pytest.raises(PermanentSendError, match="sender 'nobody'") as unknown:
            sender.send(message("gewerbeamt", sender="nobody"))
        with pytest.raises(PermanentSendError, match="TOKEN_KAMMER is unset") as missing:
            sender.send(message("gewerbeamt", sender="kammer"))
    assert len(inbox.requests) == before  # nothing went out
    assert unknown.value.__cause__ is not None and missing.value.__cause__ is not None


def test_dev_tokens_work_end_to_end(server: tuple[str, Inbox]) -> None:
    base, inbox = server
    # neither side has TOKEN_KAMMER, both run with development tokens
    dev_env = {k: v for k, v in ENV.items() if k != "TOKEN_KAMMER"}
    dev_env["AMTSBOTE_DEV_TOKENS"] = "1"
    client_side = _directory(base, dev_env)
    previous = inbox.directory
    inbox.directory = client_side
    try:
        with sender_for("gewerbeamt", client_side, config=FAST) as sender:
            receipt = sender.send(message("gewerbeamt", sender="kammer"))
    finally:
        inbox.directory = previous
    assert receipt.raw["sender"] == "kammer"


# ------------------------------------------------------------------------------ mock transport


def _mock_sender(
    handler: Any, *, agency: Agency | None = None, **kw: Any
) -> tuple[HttpSender, Directory]:
    agency = agency or _agency("mock", "http://127.0.0.1:1/base/")
    d = Directory(
        [agency, _agency("kammer", "http://127.0.0.1:2")], environ=ENV | {"TOKEN_MOCK": "tok-mock"}
    )
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HttpSender(agency, d, client=client, config=FAST, **kw), d


def _receipt_for(request: httpx.Request, **override: Any) -> dict[str, Any]:
    data = {
        "nachrichtenUUID": request.headers["x-nachrichten-uuid"],
        "received_at": "2025-03-01T10:00:00Z",
        "sha512": hashlib.sha512(request.content).hexdigest(),
        "state": "received",
    }
    data.update(override)
    return data


def test_mock_request_shape_and_receipt_parsing() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=_receipt_for(request))

    sender, _ = _mock_sender(handler)
    receipt = sender.send(message("mock"))
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://127.0.0.1:1/base/v1/messages"
    assert request.headers["authorization"] == "Bearer tok-kammer"
    assert request.content == XML
    assert receipt.received_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert receipt.to_dict()["nachrichtenUUID"] == request.headers["x-nachrichten-uuid"]
    sender.close()
    assert not sender._client.is_closed  # type: ignore[union-attr]  # injected: left open


@pytest.mark.parametrize(
    ("response", "kind", "text"),
    [
        (httpx.Response(202, text="not json"), PermanentSendError, "malformed receipt"),
        (
            httpx.Response(202, json={"state": "received"}),
            PermanentSendError,
            "receipt lacks nachrichtenUUID, received_at, sha512",
        ),
        (
            httpx.Response(
                503,
                text="<html><body>Service  Unavailable</body></html>",
                headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
            ),
            TransientSendError,
            "<html><body>Service Unavailable</body></html>",
        ),
        (httpx.Response(408), TransientSendError, "Request Timeout"),
        (
            httpx.Response(403, json={"detail": [{"msg": "sender not allowed"}]}),
            PermanentSendError,
            "Forbidden: sender not allowed",
        ),
        (httpx.Response(409, json={"error": "conflict"}), PermanentSendError, "Conflict: conflict"),
    ],
)
def test_mock_status_classification(
    response: httpx.Response, kind: type[SendError], text: str
) -> None:
    sender, _ = _mock_sender(lambda request: response)
    with pytest.raises(kind) as info:
        sender.send(message("mock"))
    assert text in str(info.value)
    if response.status_code == 503:
        assert info.value.retry_after == 0.0  # a date in the past: retry now


def test_mock_receipt_for_another_uuid_is_permanent() -> None:
    other = str(uuid.uuid4())
    sender, _ = _mock_sender(
        lambda request: httpx.Response(202, json=_receipt_for(request, nachrichtenUUID=other))
    )
    with pytest.raises(PermanentSendError, match=f"receipt is for nachrichtenUUID {other}"):
        sender.send(message("mock"))


def test_mock_base64_sha512_is_accepted() -> None:
    import base64

    def handler(request: httpx.Request) -> httpx.Response:
        digest = base64.b64encode(hashlib.sha512(request.content).digest()).decode()
        return httpx.Response(202, json=_receipt_for(request, sha512=digest))

    sender, _ = _mock_sender(handler)
    assert sender.send(message("mock")).sha512 == hashlib.sha512(XML).hexdigest()


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (httpx.ConnectTimeout("connect timed out"), True),
        (httpx.WriteTimeout("write timed out"), True),
        (httpx.PoolTimeout("pool exhausted"), True),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), True),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
        (httpx.LocalProtocolError("illegal header"), False),
        (httpx.UnsupportedProtocol("no scheme"), False),
    ],
)
def test_mock_transport_errors_are_translated(exc: Exception, transient: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    sender, _ = _mock_sender(handler)
    with pytest.raises(SendError) as info:
        sender.send(message("mock"))
    assert info.value.transient is transient
    assert is_transient(info.value) is transient
    assert info.value.__cause__ is exc
    assert type(exc).__name__ in str(info.value)


def test_rate_limit_spaces_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(http_module.time, "sleep", sleeps.append)
    limiter = RateLimiter(2.0, clock=lambda: 100.0)  # the clock stands still: pure spacing
    sender, _ = _mock_sender(
        lambda request: httpx.Response(202, json=_receipt_for(request)), limiter=limiter
    )
    for _ in range(3):
        sender.send(message("mock"))
    assert sleeps == [0.5, 1.0]


def test_async_concurrency_is_bounded_by_the_agency() -> None:
    state = {"now": 0, "max": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return httpx.Response(202, json=_receipt_for(request))

    agency = _agency("mock", "http://127.0.0.1:1", concurrency=2)
    d = Directory([agency, _agency("kammer", "http://127.0.0.1:2")], environ=ENV)

    async def run() -> list[Receipt]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = HttpSender(agency, d, async_client=client, config=FAST)
            return await asyncio.gather(*(sender.asend(message("mock")) for _ in range(10)))

    assert len(asyncio.run(run())) == 10
    assert state["max"] == 2


# ----------------------------------------------------------------------------------- mTLS


def _write_pki(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("amtsbote test CA"))
        .issuer_name(name("amtsbote test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier, san: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    files = {"ca": tmp / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage, san in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, True),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, False),
    ):
        cert, key = leaf(f"amtsbote test {role}", usage, san)
        files[f"{role}_cert"] = tmp / f"{role}.pem"
        files[f"{role}_key"] = tmp / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert)
        files[f"{role}_key"].write_bytes(key)
    return files


def test_mutual_tls(tmp_path: Path) -> None:
    pki = _write_pki(tmp_path)
    holder: dict[str, Directory] = {}

    class LateDirectory:
        def __getattr__(self, name: str) -> Any:
            return getattr(holder["d"], name)

    inbox = Inbox(LateDirectory(), owner="gewerbeamt")  # type: ignore[arg-type]
    with serve(
        inbox.app,
        ssl_certfile=str(pki["server_cert"]),
        ssl_keyfile=str(pki["server_key"]),
        ssl_ca_certs=str(pki["ca"]),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as port:
        d = _directory(f"https://127.0.0.1:{port}", ENV)
        holder["d"] = d
        agency = d.get("gewerbeamt")
        mtls = SenderConfig(
            connect_timeout=5,
            read_timeout=5,
            write_timeout=5,
            pool_timeout=5,
            ca_bundle=pki["ca"],
            client_cert=pki["client_cert"],
            client_key=pki["client_key"],
        )
        with HttpSender(agency, d, config=mtls) as sender:
            receipt = sender.send(message("gewerbeamt"))
        assert receipt.state == "received"
        assert len(inbox.requests) == 1

        # without a client certificate the server refuses the handshake: nothing is received
        no_cert = SenderConfig(connect_timeout=5, read_timeout=5, ca_bundle=pki["ca"])
        with HttpSender(agency, d, config=no_cert) as sender, pytest.raises(SendError) as info:
            sender.send(message("gewerbeamt"))
        assert info.value.status_code is None
        assert len(inbox.requests) == 1

        # without the CA the server is not trusted: a permanent failure, not worth retrying
        untrusted = SenderConfig(
            connect_timeout=5,
            read_timeout=5,
            client_cert=pki["client_cert"],
            client_key=pki["client_key"],
        )
        with (
            HttpSender(agency, d, config=untrusted) as sender,
            pytest.raises(PermanentSendError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            sender.send(message("gewerbeamt"))
        assert len(inbox.requests) == 1


def test_unreadable_client_certificate_is_a_config_error(tmp_path: Path) -> None:
    agency = _agency("mock", "https://127.0.0.1:1")
    d = Directory([agency], environ=ENV)
    config = SenderConfig(client_cert=tmp_path / "missing.pem")
    with pytest.raises(SenderConfigError, match="sender for mock: client_cert/client_key"):
        HttpSender(agency, d, config=config)
    with pytest.raises(ValueError, match="client_key given without client_cert"):
        SenderConfig(client_key=tmp_path / "k.pem")


# ------------------------------------------------------------------------ smaller pieces


def test_sender_for_picks_the_channel(directory: Directory) -> None:
    assert type(sender_for("gewerbeamt", directory)) is HttpSender
    assert type(sender_for("kammer", directory)) is MailboxSender
    assert type(sender_for("finanzamt", directory)) is FileDropSender
    with pytest.raises(SenderConfigError, match="not a mailbox agency"):
        MailboxSender(directory.get("gewerbeamt"), directory)


def test_outgoing_message_checks_and_hides_the_payload() -> None:
    msg = message("gewerbeamt", payload=b"<geheim>Erika Mustermann</geheim>")
    assert "Mustermann" not in repr(msg)
    with pytest.raises(ValueError, match="is not a UUID"):
        OutgoingMessage(
            payload=XML, nachrichten_uuid="{" + str(uuid.uuid4()) + "}", recipient="a", sender="b"
        )
    with pytest.raises(ValueError, match="payload is empty"):
        OutgoingMessage(payload=b"", nachrichten_uuid=str(uuid.uuid4()), recipient="a", sender="b")
    with pytest.raises(ValueError, match="bad content type"):
        OutgoingMessage(
            payload=XML,
            nachrichten_uuid=str(uuid.uuid4()),
            recipient="a",
            sender="b",
            content_type="application/xml\r\nX-Evil: 1",
        )


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_rate_limiter_allows_bursts_then_spaces() -> None:
    now = [0.0]
    limiter = RateLimiter(4.0, burst=2, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.25, 0.5]
    now[0] = 10.0  # long idle: the burst is available again
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.25]


def test_is_transient_and_prefect_retry_condition() -> None:
    from prefect.states import Completed, Failed

    transient = TransientSendError("x", recipient="a")
    permanent = PermanentSendError("x", recipient="a")
    assert is_transient(transient) and not is_transient(permanent)
    wrapped = RuntimeError("task failed")
    wrapped.__cause__ = transient
    assert is_transient(wrapped)
    assert is_transient(httpx.ConnectError("refused")) and not is_transient(ValueError("x"))
    assert is_transient(None) is False
    assert retry_condition(None, None, Failed(data=transient)) is True
    assert retry_condition(None, None, Failed(data=permanent)) is False
    assert retry_condition(None, None, Completed(data=1)) is False
