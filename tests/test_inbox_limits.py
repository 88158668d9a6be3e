"""HTTP limits of the inbox (issue 12, point 1), with raw sockets on loopback: headers larger
than the limit are 431 and the connection closed; a client that never completes its request
line and headers is answered 408 and disconnected after the header timeout, an idle one just
disconnected (both used to hold their connection for ever); a normal keep-alive client is
served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_inbox_support import make_directory

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
