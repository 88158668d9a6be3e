"""Running the inbox service with uvicorn, programmatically.

* :func:`serve` — blocking, in the main thread (``amtsbote inbox serve``); uvicorn handles
  SIGINT/SIGTERM and shuts down gracefully (requests in flight finish).
* :class:`InboxServer` — a context manager running uvicorn in a background thread, for tests and
  the demo: binds ``host:port`` (port 0: a free one), returns when the server accepts
  connections, stops on exit::

      with InboxServer(app, port=0) as server:
          httpx.post(server.url + "/v1/messages", ...)

HTTPS: ``tls=TlsConfig(cert_file=…, key_file=…, client_ca=…)`` (:mod:`.tls`); with a client CA
the server asks for client certificates and puts the fingerprint of the one presented into each
request's scope (``scope["extensions"]["tls"]``), where :meth:`.service.InboxService.identify`
finds it. A bad certificate/key/CA file raises :class:`InboxConfigError` naming the file, before
the address is bound.

One worker process, HTTP/1.1: uvicorn's httptools protocol with a header size limit and a
header-read timeout (:mod:`.protocol`), at most :data:`LIMIT_CONCURRENCY` connections; uvloop
when installed. No access log by default (it would
show paths with nachrichtenUUIDs, which is fine, but it costs time on the hot path).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

import uvicorn

from .exceptions import InboxServerError
from .protocol import guarded_protocol
from .tls import TlsConfig, uvicorn_tls_options

__all__ = [
    "HEADER_TIMEOUT",
    "LIMIT_CONCURRENCY",
    "MAX_HEADER_BYTES",
    "InboxServer",
    "serve",
    "uvicorn_config",
]

MAX_HEADER_BYTES = 32 * 1024
"""Request line and headers of one request, at most (431 beyond)."""
HEADER_TIMEOUT = 10.0
"""Seconds a client has to complete its request line and headers (408 after)."""
LIMIT_CONCURRENCY = 512
"""Open connections plus requests in progress before uvicorn answers 503 (below the usual
1024 open files, so that the process keeps descriptors for its journal and logs)."""


def uvicorn_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    access_log: bool = False,
    tls: TlsConfig | None = None,
    max_header_bytes: int = MAX_HEADER_BYTES,
    header_timeout: float = HEADER_TIMEOUT,
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration used for inboxes; ``options`` override (uvicorn.Config).
    ``tls``: serve HTTPS (and read client certificates, :func:`.tls.uvicorn_tls_options`).
    ``max_header_bytes``/``header_timeout``: 431 and 408 (:mod:`.protocol`); at most
    ``limit_concurrency`` connections and tasks, beyond that 503 (uvicorn's own)."""
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
        "loop": "auto",
        "http": guarded_protocol(max_header_bytes=max_header_bytes, header_timeout=header_timeout),
        "limit_concurrency": LIMIT_CONCURRENCY,
        "lifespan": "on",
        "server_header": False,
        "timeout_keep_alive": 15,
        "timeout_graceful_shutdown": 10,
        "backlog": 2048,
    }
    settings.update(options)
    if tls is not None:
        settings.update(uvicorn_tls_options(tls, http=settings["http"]))
    return uvicorn.Config(app, **settings)


class _Server(uvicorn.Server):
    """uvicorn's server, except that after a graceful shutdown on SIGINT/SIGTERM the signal is
    not raised again (uvicorn does that since 0.29; the process would then die before the
    caller closes the journal). Signals are only handled in the main thread."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int,
    log_level: str = "info",
    access_log: bool = False,
    tls: TlsConfig | None = None,
    **options: Any,
) -> None:
    """Run ``app`` until SIGINT/SIGTERM (blocking), then return after the requests in flight are
    answered. Raises :class:`InboxServerError` when the address cannot be bound,
    :class:`InboxConfigError` for unusable ``tls`` files."""
    config = uvicorn_config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, tls=tls, **options
    )
    sock = _bind(host, port)
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP; with proto 0 Nagle's algorithm would add ~40 ms to every answer (delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise InboxServerError(f"cannot bind: {exc.strerror or exc}", host=host, port=port) from exc
    return sock


class InboxServer:
    """uvicorn serving ``app`` in a daemon thread on ``host:port`` (port 0: any free port).

    :meth:`start` returns once the server accepts connections (:class:`InboxServerError` after
    ``start_timeout`` seconds or when it failed); :meth:`stop` asks it to finish the requests in
    flight and waits (forcing after ``stop_timeout``). May be started again after stopping."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        start_timeout: float = 15.0,
        stop_timeout: float = 15.0,
        tls: TlsConfig | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.tls = tls
        self.host = host
        self.port = port
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.options = options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8701`` (``https://`` with ``tls``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self.running:
            raise InboxServerError("already running", host=self.host, port=self.port)
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        try:
            config = uvicorn_config(
                self.app,
                host=self.host,
                port=self.port,
                log_level=self.log_level,
                tls=self.tls,
                **self.options,
            )
        except BaseException:
            sock.close()
            raise
        server = uvicorn.Server(config)
        self._server = server
        self._failure = None

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start()
                self._failure = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"inbox-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not self._thread.is_alive():
                why = repr(self._failure) if self._failure else "server thread ended"
                raise InboxServerError(f"did not start: {why}", host=self.host, port=self.port)
            if time.monotonic() > deadline:
                self.stop()
                raise InboxServerError(
                    f"not ready after {self.start_timeout:g}s", host=self.host, port=self.port
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(self.stop_timeout)
        if thread.is_alive():
            raise InboxServerError(
                f"did not stop within {2 * self.stop_timeout:g}s", host=self.host, port=self.port
            )
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.stop()
            return
        with contextlib.suppress(InboxServerError):  # keep the original exception
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"InboxServer({self.url}, {state})"
