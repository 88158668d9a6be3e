"""Exceptions of the senders, and the retry decision for Prefect.

Every failure of :meth:`Sender.send` / :meth:`Sender.asend` is a :class:`SendError` that names the
recipient agency, the nachrichtenUUID, the URL (or drop directory), the HTTP status and the reason
(the server's own reason where it gave one, e.g. the findings of a 422). httpx and OS errors are
translated at the boundary with ``raise … from``; the original stays in ``__cause__``. Payloads
never appear in messages.

Both subtrees derive from :class:`connectors.exceptions.ConnectorError`::

    ConnectorError                   (connectors.exceptions)
    ├── SendError                    send failed; .recipient .nachrichten_uuid .url .status_code
    │   │                            .reason
    │   ├── TransientSendError       may succeed when retried: timeouts, refused/reset
    │   │                            connections, 429 (.retry_after from Retry-After), 408, 425,
    │   │                            5xx
    │   └── PermanentSendError       retrying cannot help: other 4xx (401, 413, 415, 422 with
    │                                .detail), redirects, malformed or mismatching receipts,
    │                                TLS verification failures, file-drop conflicts, unknown sender
    └── SenderConfigError            a sender cannot be built: bad endpoint, unreadable cert/key
                                     (also a ValueError)

:func:`is_transient` decides retries; :func:`retry_condition` has the signature Prefect expects of
``retry_condition_fn`` (``task, task_run, state``) without importing Prefect::

    @task(retries=5, retry_delay_seconds=[1, 5, 30, 120, 600], retry_condition_fn=retry_condition)
    def deliver(message): ...
"""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import httpx

from ..exceptions import ConnectorError

__all__ = [
    "PermanentSendError",
    "SendError",
    "SenderConfigError",
    "TransientSendError",
    "classify_httpx",
    "is_transient",
    "retry_condition",
]


class SendError(ConnectorError):
    """A message could not be delivered. ``transient`` says whether a retry may help."""

    transient: bool = False

    def __init__(
        self,
        reason: str,
        *,
        recipient: str | None = None,
        nachrichten_uuid: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        detail: Any = None,
    ) -> None:
        self.reason = reason
        self.recipient = recipient
        self.nachrichten_uuid = nachrichten_uuid
        self.url = url
        self.status_code = status_code
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), or None."""
        self.detail = detail
        """The server's parsed JSON error body (e.g. 422 findings), or None."""
        super().__init__(reason)

    def __str__(self) -> str:
        kind = "transient" if self.transient else "permanent"
        parts = [f"sending to {self.recipient or '?'} failed ({kind})"]
        if self.nachrichten_uuid:
            parts.append(f"nachrichtenUUID {self.nachrichten_uuid}")
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.url:
            parts.append(self.url)
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g}s")
        return ", ".join(parts) + f": {self.reason}"


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    transient = False


class SenderConfigError(ConnectorError, ValueError):
    """A sender cannot be built from its configuration (names the agency and the setting)."""

    def __init__(self, agency: str, setting: str, problem: str) -> None:
        self.agency, self.setting, self.problem = agency, setting, problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"sender for {self.agency}: {self.setting}: {self.problem}"


_TRANSIENT_HTTPX = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def _has_cause(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def classify_httpx(exc: httpx.HTTPError) -> bool:
    """True when an httpx transport error is worth retrying (timeouts, refused or reset
    connections, a server hanging up); certificate verification failures are not."""
    if _has_cause(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, _TRANSIENT_HTTPX)


def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying may help: True for :class:`TransientSendError` (also when it is the
    ``__cause__`` of another exception) and for transient httpx / connection errors that escaped
    translation; False for everything else, including :class:`PermanentSendError`."""
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SendError):
            return current.transient
        if isinstance(current, httpx.HTTPError):
            return classify_httpx(current)
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = current.__cause__
    return False


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry when the failed state's exception is transient.

    Prefect passes a ``Failed`` state whose ``data`` is the raised exception; other states are
    asked for their result without raising."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return is_transient(data)
    result = getattr(state, "result", None)
    if callable(result):
        try:
            outcome = result(raise_on_failure=False)
        except Exception:
            return False
        if inspect.isawaitable(outcome):  # an async-dispatched result: not decidable here
            getattr(outcome, "close", lambda: None)()
            return False
        if isinstance(outcome, BaseException):
            return is_transient(outcome)
    return False
