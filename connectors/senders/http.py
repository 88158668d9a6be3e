"""Push delivery: ``POST <endpoint>/v1/messages`` to the recipient's inbox service.

Request: the XÖV XML as body — or, for a message with a ``file`` (an xdomea container), the file
streamed in 1 MiB chunks with its ``Content-Length`` (never read whole) —, ``Content-Type`` of the
message (``application/xml``, ``application/zip``),
``Authorization: Bearer <token of the SENDING agency>`` (the inbox authenticates senders against
the directory), ``X-Nachrichten-UUID``, ``X-Empfaenger: <recipient agency id>`` (lets an inbox that
hosts mailboxes file the message; an inbox may refuse messages not meant for it) and
``Accept: application/json``. Redirects are not followed.

Answers: 200/201/202 with a receipt → :class:`Receipt` (checked against UUID and SHA-512);
408, 425, 429 and 5xx → :class:`TransientSendError` (``retry_after`` from ``Retry-After``); other
statuses → :class:`PermanentSendError` keeping the server's reason (422 findings, 401, 413, 415).
Timeouts, refused and reset connections are transient.

One sender per recipient, reused: it owns a pooled ``httpx.Client`` (and, for :meth:`asend`, an
``httpx.AsyncClient`` bound to the event loop that first used it) sized by the recipient's
``concurrency``, unless clients are injected (tests swap transports that way; injected clients are
not closed by the sender). Requests are spaced by the recipient's ``rate_limit``.

TLS: the recipient's ``tls_ca`` verifies its inbox and ``tls_client_cert``/``tls_client_key`` are
presented to it (mutual TLS, ``docs/mtls.md``); where the directory sets none, the
``SenderConfig``'s ``ca_bundle``/``client_cert``/``client_key`` apply (for a mailbox agency:
those of its mailbox host, whose inbox the connection goes to). With a client certificate, a
sending agency without a token (its ``token_env`` unset) sends no ``Authorization`` header: the
certificate identifies it; with a token both are sent and must name the same agency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from typing import Any, Self

import httpx

from ..directory import Agency, Directory, DirectoryError, MissingTokenError
from .base import MESSAGES_PATH, OutgoingMessage, RateLimiter, Receipt, SenderConfig
from .base import parse_retry_after as _parse_retry_after
from .exceptions import PermanentSendError, SenderConfigError, SendError, TransientSendError
from .exceptions import classify_httpx as _classify_httpx

__all__ = ["RECIPIENT_HEADER", "TRANSIENT_STATUSES", "UUID_HEADER", "HttpSender"]

UUID_HEADER = "X-Nachrichten-UUID"
RECIPIENT_HEADER = "X-Empfaenger"
#: Statuses below 500 that are worth retrying (every 5xx is).
TRANSIENT_STATUSES = frozenset({408, 425, 429})
_MAX_REASON = 2000


class HttpSender:
    """Sends to ``recipient`` by HTTP POST to ``endpoint`` (default: the recipient's own)."""

    def __init__(
        self,
        recipient: Agency,
        directory: Directory,
        *,
        endpoint: str | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        config: SenderConfig | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._recipient = recipient
        self._directory = directory
        self.config = config or SenderConfig()
        base = endpoint if endpoint is not None else recipient.endpoint
        if not base:
            raise SenderConfigError(recipient.id, "endpoint", "no endpoint to send to")
        self.url = base.rstrip("/") + MESSAGES_PATH
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        self._owns_async_client = async_client is None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._async_slots: asyncio.Semaphore | None = None
        self._sync_slots = threading.BoundedSemaphore(recipient.concurrency)
        self._lock = threading.Lock()
        if limiter is None and self.config.rate_limit:
            limiter = RateLimiter(recipient.rate_limit)
        self.limiter = limiter
        self._verify: Any = True
        #: Whether owned clients present a client certificate (then a sender without a token
        #: sends no Authorization header: the certificate identifies it).
        self.presents_certificate = (
            self.tls_peer.tls_client_cert is not None or self.config.client_cert is not None
        )
        if client is None or async_client is None:
            self._verify = self._ssl_context()

    # -- set-up

    @property
    def recipient(self) -> Agency:
        return self._recipient

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._recipient.id} via {self.url})"

    @property
    def tls_peer(self) -> Agency:
        """The agency whose inbox the connection goes to (its ``tls_*`` fields apply)."""
        return self._recipient

    def _ssl_context(self) -> Any:
        """Verification and client certificate: the ``tls_ca``/``tls_client_cert``/
        ``tls_client_key`` of :attr:`tls_peer` where set, else the ``SenderConfig``'s."""
        cfg, peer = self.config, self.tls_peer
        settings: list[str] = []
        if peer.tls_client_cert is not None:
            cfg = dataclasses.replace(
                cfg, client_cert=peer.tls_client_cert, client_key=peer.tls_client_key
            )
            settings.append(f"tls_client_cert/tls_client_key of {peer.id}")
        elif cfg.client_cert is not None:
            settings.append("client_cert/client_key")
        if peer.tls_ca is not None:
            cfg = dataclasses.replace(cfg, ca_bundle=peer.tls_ca)
            settings.append(f"tls_ca of {peer.id}")
        elif cfg.ca_bundle is not None:
            settings.append("ca_bundle")
        if not settings:
            return True
        try:
            return cfg.ssl_context()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            files = [str(p) for p in (cfg.client_cert, cfg.client_key, cfg.ca_bundle) if p]
            raise SenderConfigError(
                self._recipient.id, " + ".join(settings), f"{exc} (files: {', '.join(files)})"
            ) from exc

    def _client_options(self) -> dict[str, Any]:
        n = self._recipient.concurrency
        return {
            "timeout": self.config.timeout(),
            "limits": httpx.Limits(max_connections=n, max_keepalive_connections=n),
            "verify": self._verify,
            "follow_redirects": False,
            "trust_env": self.config.trust_env,
            "headers": {"User-Agent": self.config.user_agent},
        }

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(**self._client_options())
            return self._client

    def _async_state(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._async_loop is not loop or self._async_slots is None:
                # A new event loop: connections of an owned client and the semaphore belong to
                # the old one and cannot be reused.
                self._async_loop = loop
                self._async_slots = asyncio.Semaphore(self._recipient.concurrency)
                if self._owns_async_client:
                    self._async_client = None
            if self._async_client is None:
                self._async_client = httpx.AsyncClient(**self._client_options())
            return self._async_client, self._async_slots

    def close(self) -> None:
        """Close the owned clients (injected ones stay open)."""
        client = None
        with self._lock:
            if self._owns_client:
                client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        self.close()
        with self._lock:
            if self._owns_async_client:
                client, self._async_client = self._async_client, None
            else:
                client = None
        if client is not None:
            await client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- sending

    def send(self, message: OutgoingMessage) -> Receipt:
        headers = self._headers(message)
        if self.limiter is not None and (delay := self.limiter.reserve()) > 0:
            time.sleep(delay)
        with self._sync_slots:
            try:
                response = self._sync_client().post(
                    self.url,
                    content=message.iter_file() if message.file is not None else message.payload,
                    headers=headers,
                    timeout=self.config.timeout(),
                )
            except httpx.HTTPError as exc:
                raise self._transport_error(message, exc) from exc
        return self._receipt(message, response)

    async def asend(self, message: OutgoingMessage) -> Receipt:
        headers = self._headers(message)
        client, slots = self._async_state()
        if self.limiter is not None and (delay := self.limiter.reserve()) > 0:
            await asyncio.sleep(delay)
        async with slots:
            try:
                response = await client.post(
                    self.url,
                    content=message.aiter_file() if message.file is not None else message.payload,
                    headers=headers,
                    timeout=self.config.timeout(),
                )
            except httpx.HTTPError as exc:
                raise self._transport_error(message, exc) from exc
        return self._receipt(message, response)

    def _error(
        self, cls: type[SendError], message: OutgoingMessage, reason: str, **kw: Any
    ) -> SendError:
        return cls(
            reason,
            recipient=self._recipient.id,
            nachrichten_uuid=message.nachrichten_uuid,
            url=self.url,
            **kw,
        )

    def _headers(self, message: OutgoingMessage) -> dict[str, str]:
        if message.recipient != self._recipient.id:
            raise self._error(
                PermanentSendError,
                message,
                f"message is addressed to {message.recipient!r}; this sender delivers to "
                f"{self._recipient.id!r}",
            )
        token: str | None = None
        try:
            token = self._directory.token_for(message.sender)
        except MissingTokenError as exc:
            if not self.presents_certificate:
                raise self._error(
                    PermanentSendError, message, f"sender {message.sender!r}: {exc}"
                ) from exc
        except DirectoryError as exc:
            raise self._error(
                PermanentSendError, message, f"sender {message.sender!r}: {exc}"
            ) from exc
        headers = {
            "Content-Type": message.content_type,
            **({"Authorization": f"Bearer {token}"} if token is not None else {}),
            UUID_HEADER: message.nachrichten_uuid,
            RECIPIENT_HEADER: self._recipient.id,
            "Accept": "application/json",
        }
        if message.file is not None:
            try:
                headers["Content-Length"] = str(message.size)  # hashes the file once (cached)
            except OSError as exc:
                raise self._error(
                    PermanentSendError, message, f"cannot read {message.file}: {exc}"
                ) from exc
        return headers

    def _transport_error(self, message: OutgoingMessage, exc: httpx.HTTPError) -> SendError:
        detail = str(exc).strip()
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        cls = TransientSendError if _classify_httpx(exc) else PermanentSendError
        return self._error(cls, message, reason)

    def _receipt(self, message: OutgoingMessage, response: httpx.Response) -> Receipt:
        status = response.status_code
        if status in (200, 201, 202):
            try:
                receipt = Receipt.from_json(response.json())
            except ValueError as exc:  # also json.JSONDecodeError
                raise self._error(
                    PermanentSendError, message, f"malformed receipt: {exc}", status_code=status
                ) from exc
            if (why := receipt.mismatch(message)) is not None:
                raise self._error(PermanentSendError, message, why, status_code=status)
            return receipt
        reason, detail = _reason(response)
        if 300 <= status < 400:
            where = response.headers.get("Location", "?")
            raise self._error(
                PermanentSendError,
                message,
                f"unexpected redirect to {where} (redirects are not followed)",
                status_code=status,
            )
        if status in TRANSIENT_STATUSES or status >= 500:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                retry_after = min(retry_after, self.config.max_retry_after)
            raise self._error(
                TransientSendError,
                message,
                reason,
                status_code=status,
                retry_after=retry_after,
                detail=detail,
            )
        raise self._error(PermanentSendError, message, reason, status_code=status, detail=detail)


def _finding_text(item: Any) -> str:
    if isinstance(item, dict):
        where = ""
        if item.get("line") is not None:
            where += f"line {item['line']} "
        if item.get("xpath"):
            where += f"{item['xpath']} "
        rule = f"[{item['rule']}] " if item.get("rule") else ""
        severity = f"{item['severity']}: " if item.get("severity") else ""
        text = item.get("message") or item.get("msg") or json.dumps(item, ensure_ascii=False)
        return f"{severity}{where}{rule}{text}".strip()
    return str(item)


def _reason(response: httpx.Response) -> tuple[str, Any]:
    """The server's reason for a failure, and its parsed JSON body (None if not JSON)."""
    phrase = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    text = ""
    if isinstance(data, dict):
        findings = data.get("findings")
        if isinstance(findings, list) and findings:
            text = "; ".join(_finding_text(f) for f in findings)
        elif isinstance(data.get("detail"), str):
            text = data["detail"]
        elif isinstance(data.get("detail"), list):
            text = "; ".join(_finding_text(f) for f in data["detail"])
        else:
            for key in ("reason", "error", "message"):
                if isinstance(data.get(key), str):
                    text = data[key]
                    break
            else:
                text = json.dumps(data, ensure_ascii=False)
    elif isinstance(data, list):
        text = "; ".join(_finding_text(f) for f in data)
    elif data is not None:
        text = json.dumps(data, ensure_ascii=False)
    else:
        text = " ".join(response.text.split())
    reason = f"{phrase}: {text}" if text else phrase
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    return reason, data
