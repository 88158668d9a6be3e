"""What a flow run works with: journal, directory, routing, senders and the procedure settings.

One :class:`Runtime` per process, built lazily from the environment (``AMTSBOTE_*``); tests and the
demo install their own with :func:`use_runtime`. Nothing here holds personal data.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from connectors.directory import Agency, Directory
from connectors.journal import Journal
from connectors.senders import Sender, SenderConfig, sender_for
from connectors.settings import AmtsboteSettings

from .prefect_patches import share_api_tls_context
from .routing import Routing

share_api_tls_context()

__all__ = ["FlowSettings", "Runtime", "get_runtime", "reset_runtime", "use_runtime"]


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """How the procedures behave. From the environment by :meth:`from_env`:

    ``AMTSBOTE_SEND_RETRY_DELAYS`` comma-separated seconds between send attempts (its length is
    the number of retries; default ``2,10,60,300``); ``AMTSBOTE_RECEIPT_WAIT`` how long
    ``await_receipts`` waits for mailbox agencies to fetch (ISO duration, default ``PT60S``);
    ``AMTSBOTE_POLL_INTERVAL`` seconds between checks while waiting (default 2);
    ``AMTSBOTE_SUSPEND`` ``1`` to suspend (free the worker) instead of pausing in-process when a
    run from a deployment waits for an approval or a reply (default 1)."""

    retry_delays: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)
    receipt_wait: timedelta = timedelta(seconds=60)
    poll_interval: float = 2.0
    suspend: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FlowSettings:
        read = AmtsboteSettings.from_environ(
            environ, only=("send_retry_delays", "receipt_wait", "poll_interval", "suspend")
        )
        return cls(
            retry_delays=read.send_retry_delays,
            receipt_wait=read.receipt_wait,
            poll_interval=read.poll_interval,
            suspend=read.suspend,
        )


@dataclass
class Runtime:
    journal: Journal
    directory: Directory
    routing: Routing
    settings: FlowSettings = field(default_factory=FlowSettings)
    sender_config: SenderConfig = field(default_factory=SenderConfig)
    routings: dict[str, Routing] = field(default_factory=dict)
    """Routing of further families by family name (loaded on first use when absent)."""
    _senders: dict[str, Sender] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def home(self) -> Agency:
        """The agency running the procedures (routing ``sender``)."""
        return self.directory.get(self.routing.sender)

    def routing_for(self, family: str) -> Routing:
        """The routing of ``family``: :attr:`routing` for its own family, else the one given in
        :attr:`routings`, else the family's default file (loaded once)."""
        if family == self.routing.family:
            return self.routing
        with self._lock:
            routing = self.routings.get(family)
            if routing is None:
                routing = Routing.default(directory=self.directory, family=family)
                self.routings[family] = routing
            return routing

    def sender(self, recipient: str) -> Sender:
        """One sender per recipient, reused (it enforces the recipient's rate and concurrency)."""
        with self._lock:
            sender = self._senders.get(recipient)
            if sender is None:
                sender = sender_for(recipient, self.directory, config=self.sender_config)
                self._senders[recipient] = sender
            return sender

    def close(self) -> None:
        with self._lock:
            senders, self._senders = list(self._senders.values()), {}
        for s in senders:
            with contextlib.suppress(Exception):  # best effort on shutdown
                s.close()

    @classmethod
    def from_env(cls) -> Runtime:
        directory = Directory.default()
        return cls(
            journal=Journal.from_env(create=True),
            directory=directory,
            routing=Routing.default(directory=directory),
            settings=FlowSettings.from_env(),
        )


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.from_env()
        return _runtime


def use_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install ``runtime`` for this process (``None`` to go back to the environment); returns
    the previous one."""
    global _runtime
    with _runtime_lock:
        previous, _runtime = _runtime, runtime
        return previous


def reset_runtime() -> None:
    previous = use_runtime(None)
    if previous is not None:
        previous.close()
