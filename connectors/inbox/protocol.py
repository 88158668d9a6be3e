"""HTTP/1.1 for the inbox: uvicorn's httptools protocol with the limits it lacks (issue 12, 1).

uvicorn closes a connection that stays idle :attr:`~uvicorn.Config.timeout_keep_alive` seconds
*after* a response, and nothing else: a client that connects and never finishes its request
line and headers keeps the connection (and a file descriptor) forever, and a 64 MB header is
buffered whole. :class:`GuardedHttpToolsProtocol` adds

* a **header-read timeout**: the request line and headers must be complete within
  :attr:`header_timeout` seconds of the connection (or of the previous response) — else the
  connection is closed, after a ``408 Request Timeout`` when part of a request had arrived (an
  idle connection, new or kept alive, is closed silently);
* a **header size limit**: more than :attr:`max_header_bytes` bytes before the headers are
  complete — ``431 Request Header Fields Too Large`` and closed; what is buffered is bounded by the
  limit plus one read;
* **room for the living at the connection cap**: uvicorn answers every request 503 once
  ``limit_concurrency`` connections are open, so a thousand silent connections used to lock out
  the agencies that send. When a new connection reaches the cap, idle connections are closed to
  make room — first those that never completed a request (oldest first), then kept-alive ones
  (longest idle first); a connection with a request in progress is never touched. When none is
  idle the newcomer is answered 503 and closed at once (it would otherwise make uvicorn answer
  503 to the requests in progress too). A sender on a kept-alive connection keeps being served
  while silent connections churn.

:func:`guarded_protocol` makes the class with the limits of an :class:`~.config.InboxConfig`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpToolsProtocol", "guarded_protocol"]

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class _Tally:
    """Events counted, and logged as one warning line per :attr:`every` seconds at most (a flood
    of connections must not become a flood of log lines)."""

    every = 10.0

    def __init__(self, message: str) -> None:
        self.message = message  # with %(limit)d and %(count)d
        self.pending = 0
        self.logged = 0.0

    def count(self, n: int, logger: Any, limit: int) -> None:
        self.pending += n
        now = time.monotonic()
        if self.pending and now - self.logged >= self.every:
            logger.warning(self.message, {"limit": limit, "count": self.pending})
            self.logged, self.pending = now, 0


_SHED = _Tally(
    "inbox: at the connection limit (%(limit)d): closed %(count)d idle connection(s) to make room"
)
_REFUSED = _Tally(
    "inbox: at the connection limit (%(limit)d), none idle: refused %(count)d connection(s)"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True
        self._header_timer: asyncio.TimerHandle | None = None
        self._served = 0
        self._idle_since = self.loop.time()
        self._arm()
        self._make_room()

    def _idle(self) -> bool:
        return self._in_headers and self._header_bytes == 0 and not self.transport.is_closing()

    def _make_room(self) -> None:
        """At the connection cap: close idle connections, never-served and oldest first."""
        limit = self.limit_concurrency
        if limit is None or len(self.connections) < limit:
            return
        idle = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedHttpToolsProtocol) and c._idle()
        ]
        idle.sort(key=lambda c: (c._served > 0, c._idle_since))
        victims = idle[: len(self.connections) - limit + 1]
        for victim in victims:
            victim._disarm()
            victim.transport.close()
            self.connections.discard(victim)  # its connection_lost comes later, the room now
        _SHED.count(len(victims), self.logger, limit)
        if len(self.connections) >= limit:
            # nothing idle to close: this newcomer is refused at once, so that it does not hold
            # the place that would make uvicorn answer 503 to the requests in progress
            self.connections.discard(self)
            self._refuse(503, f"{limit} connections busy, none idle; retry later", log=False)
            _REFUSED.count(1, self.logger, limit)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # still in the request line or headers after this read: every byte of it was header
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"headers larger than {self.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._served += 1
        self._idle_since = self.loop.time()
        if not self.transport.is_closing():  # keep-alive: the next request's headers
            self._in_headers = True
            self._header_bytes = 0
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self._header_bytes == 0:  # idle (fresh or kept alive): close without a word, as
            self.transport.close()  # uvicorn's keep-alive timeout does; no stale 408 to misread
            return
        self._refuse(408, f"request headers not complete within {self.header_timeout:g} s")

    def _refuse(self, status: int, message: str, *, log: bool = True) -> None:
        body = message.encode("ascii")
        retry = b"retry-after: 1\r\n" if status == 503 else b""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + b"content-type: text/plain; charset=utf-8\r\n"
            + retry
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()
        if log:
            self.logger.warning("inbox: %d from %s: %s", status, _peer(self.client), message)


def _peer(client: Any) -> str:
    return str(client[0]) if client else "unknown address"


def guarded_protocol(*, max_header_bytes: int, header_timeout: float) -> type[HttpToolsProtocol]:
    """:class:`GuardedHttpToolsProtocol` with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout},
    )
