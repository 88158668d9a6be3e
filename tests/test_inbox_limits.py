"""HTTP limits of the inbox (issue 12, point 1), with raw sockets on loopback: headers larger
than the limit are 431 and the connection closed; a client that never completes its request
line and headers is answered 408 and disconnected after the header timeout, an idle one just
disconnected (both used to hold their connection for ever); a normal keep-alive client is
served; at the connection cap silent connections make room for senders; an element bomb is cut
off while it streams."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_inbox_support import make_directory

from connectors.directory import dev_token
from connectors.inbox import create_app
from connectors.inbox.server import InboxServer
from connectors.journal import Journal

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InboxServer]:
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=make_directory())
    with InboxServer(app, max_header_bytes=8 * 1024, header_timeout=1.0) as srv:
        yield srv
    journal.close()


def _connect(server: InboxServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:  # the server closed the connection
            return b"".join(chunks)
        chunks.append(chunk)


def test_headers_above_the_limit_are_431_and_the_connection_is_closed(
    server: InboxServer,
) -> None:
    with _connect(server) as sock:  # 9 KiB of an unfinished header, then wait
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: inbox\r\nX-Pad: " + b"a" * 9216)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), answer[:200]
    assert b"8192 bytes" in answer
    # a client that keeps on sending is cut off long before 64 MiB are buffered
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: inbox\r\nX-Pad: ")
        sent = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < 64 * 1024 * 1024:  # bounded: at most 64 MiB
                sock.sendall(b"a" * 65536)
                sent += 65536
    assert sent < 16 * 1024 * 1024, sent


def test_a_client_that_never_completes_its_headers_is_dropped(server: InboxServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: inbox\r\n")  # and then nothing
        started = time.monotonic()
        answer = _read_all(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert waited < 9  # the 10 s socket timeout would have raised; here it is the 1 s limit
    with _connect(server) as idle:  # connected, not a byte sent: closed, silently
        started = time.monotonic()
        assert _read_all(idle) == b""
        assert time.monotonic() - started < 9


def test_a_normal_keep_alive_client_is_served(server: InboxServer) -> None:
    with _connect(server) as sock:
        for _ in range(3):  # three requests on one connection, pauses below the header timeout
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: inbox\r\n\r\n")
            head = sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            time.sleep(0.5)
        # after the last answer the connection is idle again: the header timeout applies anew
        # and closes it without a stale 408 a client could take for its next answer
        assert _read_all(sock) == b""


def test_an_unauthenticated_body_is_answered_and_the_connection_closed(
    server: InboxServer,
) -> None:
    """401 before the body is read, then the connection closes: the server does not drain the
    10 MB the caller announced (it sends 64 KiB and then only listens)."""
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: inbox\r\n"
            b"Authorization: Bearer not-a-token-of-anyone-here-at-all\r\n"
            b"Content-Type: application/xml\r\nContent-Length: 10485760\r\n\r\n" + b"<" * 65536
        )
        started = time.monotonic()
        answer = _read_all(sock)  # returns once the server has closed
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert waited < 9  # closed, not waiting for the remaining ~10 MB


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[InboxServer]:
    """An inbox with room for 8 connections (production: 512), a header timeout far away."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=make_directory())
    with InboxServer(app, header_timeout=60.0, limit_concurrency=8) as srv:
        yield srv
    journal.close()


def _healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: inbox\r\n\r\n")
    return sock.recv(65536)


def _closed_by_server(sock: socket.socket, wait: float = 0.2) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_silent_connections_at_the_cap_make_room_for_a_sender(capped: InboxServer) -> None:
    """At the connection cap uvicorn answered every request 503: a crowd of silent connections
    locked out the agencies that send. Now the silent ones are closed, oldest first, and a
    kept-alive sender is served on."""
    with contextlib.ExitStack() as stack:
        sender = stack.enter_context(_connect(capped))
        assert _healthz(sender).startswith(b"HTTP/1.1 200")
        silent = []
        for _ in range(20):  # bounded: 20 connections that never send a byte
            silent.append(stack.enter_context(_connect(capped)))
            time.sleep(0.02)  # accepted in this order
        time.sleep(0.3)
        answer = _healthz(sender)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # (the oldest ones are waited for up to 5 s each: a busy machine closes them late)
        closed = [_closed_by_server(s, 5.0 if i < 12 else 0.2) for i, s in enumerate(silent)]
        # the oldest silent connections made room, the newest are still open, within the cap
        assert all(closed[:12]), closed
        assert not closed[-1], closed
        assert sum(not c for c in closed) + 1 <= 8, closed
        # a fresh client is served too (it takes the room of the oldest silent one left)
        with _connect(capped) as fresh:
            assert _healthz(fresh).startswith(b"HTTP/1.1 200")


def test_a_connection_with_a_request_in_progress_is_never_closed_to_make_room(
    capped: InboxServer,
) -> None:
    """Only idle connections make room: one in the middle of its headers is kept (it has the
    header timeout). With none idle the newcomer is answered 503 at once and closed — it does
    not take the last place, which would make uvicorn answer 503 to the requests in progress."""
    with contextlib.ExitStack() as stack:
        busy = []
        for _ in range(7):  # 7 of 8 places, each with half a request sent
            sock = stack.enter_context(_connect(capped))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: inbox\r\n")
            busy.append(sock)
        time.sleep(0.3)
        newcomer = stack.enter_context(_connect(capped))
        answer = _read_all(newcomer)  # answered and closed without sending a byte
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 1" in answer.lower()
        for sock in busy:  # each still completes its request
            sock.sendall(b"\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_an_element_bomb_is_refused_while_it_streams(capped: InboxServer) -> None:
    """The tag budget (1,000,000 ``<``) is counted as the body arrives: a client that announces
    a 10 MB element bomb and has sent the first 4 MB of it is answered 413 too_much_markup and
    disconnected at once — the server does not wait for (or read) the remaining 6 MB."""
    size = 10_000_008
    start = b"<r>" + b"<e/>" * 1_000_100  # just past the budget
    with _connect(capped) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: inbox\r\nX-Empfaenger: stadt-paderborn\r\n"
            + b"Authorization: Bearer %s\r\n" % dev_token("kreis-paderborn").encode()
            + b"Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % size
            + start
        )
        answer = _read_all(sock)  # 10 s socket timeout: without an answer the test fails
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"too_much_markup" in answer
    assert b"connection: close" in answer.lower()
