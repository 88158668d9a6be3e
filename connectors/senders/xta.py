"""Delivery to an XTA 2 server (channel ``xta``, ``docs/xta.md``): ``sendMessage`` then
``getTransportReport``.

The MessageID is ``urn:uuid:`` + the nachrichtenUUID (what the server accepts without
``createMessageId``, and idempotent across retries). MessageMetaData comes from the
Nachrichtenkopf (:func:`connectors.xta.metadata.build_metadata`): Author = the sending agency's
Behördenkennung, Reader = the recipient's. The payload travels as MTOM attachment (an xdomea
container as ``application/zip``, streamed from its file in 1 MiB chunks).

Outcomes: the report's Status 0/1/2 → :class:`Receipt` with state ``delivered`` (0: held by the
server for the reader), ``fetched`` (1) or ``delivered-with-warnings`` (2); Status 3 and the
faults MessageSchemaViolation (``detail`` = the findings), PermissionDenied, ParameterIsNotValid,
InvalidMessageID → :class:`PermanentSendError`; XTAWSTechnicalProblem, HTTP 5xx and transient
transport errors → :class:`TransientSendError`.

TLS: the recipient's ``tls_ca``/``tls_client_cert``/``tls_client_key`` (else the
``SenderConfig``'s) on an owned ``httpx.Client``; an injected client is used as is.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx

from xoev.exceptions import UnusableInputError
from xoev.message import inspect_message

from ..directory import Agency, Directory, DirectoryError, MissingTokenError
from ..xta.client import TransportReport, XtaClient, XtaHttpError
from ..xta.exceptions import MtomError, SoapError, XtaError, XtaFault
from ..xta.metadata import build_metadata, message_id_for
from .base import CONTAINER_TYPE, BlockingSender, OutgoingMessage, Receipt, SenderConfig
from .exceptions import PermanentSendError, SenderConfigError, SendError, TransientSendError
from .exceptions import classify_httpx as _classify_httpx
from .http import TRANSIENT_STATUSES

__all__ = ["REPORT_STATES", "XtaSender", "xta_http_client"]

#: TransportReport MessageStatus/Status → Receipt state (3, red, is a permanent failure).
REPORT_STATES = {0: "delivered", 1: "fetched", 2: "delivered-with-warnings"}
_TRANSIENT_FAULTS = frozenset({"XTAWSTechnicalProblemException"})


def xta_http_client(peer: Agency, config: SenderConfig | None = None) -> httpx.Client:
    """An httpx client for ``peer``'s XTA server: its ``tls_client_cert``/``tls_client_key``
    (mutual TLS) and ``tls_ca`` (else ``config``'s), the config's timeouts, no proxies from the
    environment. Bad TLS files raise :class:`SenderConfigError` naming them."""
    cfg = config or SenderConfig()
    if peer.tls_client_cert is not None:
        cfg = dataclasses.replace(
            cfg, client_cert=peer.tls_client_cert, client_key=peer.tls_client_key
        )
    if peer.tls_ca is not None:
        cfg = dataclasses.replace(cfg, ca_bundle=peer.tls_ca)
    verify: Any = True
    if cfg.client_cert is not None or cfg.ca_bundle is not None:
        try:
            verify = cfg.ssl_context()
        except (OSError, ValueError) as exc:
            files = [str(p) for p in (cfg.client_cert, cfg.client_key, cfg.ca_bundle) if p]
            raise SenderConfigError(
                peer.id, "tls_client_cert/tls_client_key/tls_ca", f"{exc} ({', '.join(files)})"
            ) from exc
    return httpx.Client(
        timeout=cfg.timeout(),
        verify=verify,
        follow_redirects=False,
        trust_env=cfg.trust_env,
        headers={"User-Agent": cfg.user_agent},
    )


class XtaSender(BlockingSender):
    """Sends to ``recipient`` (channel ``xta``) via its XTA server at ``xta_url``."""

    def __init__(
        self,
        recipient: Agency,
        directory: Directory,
        *,
        client: httpx.Client | None = None,
        config: SenderConfig | None = None,
    ) -> None:
        if not recipient.xta_url:
            raise SenderConfigError(recipient.id, "xta_url", "no XTA server to send to")
        self._recipient = recipient
        self._directory = directory
        self.config = config or SenderConfig()
        self.url = recipient.xta_url
        self._owns_client = client is None
        self.presents_certificate = (
            recipient.tls_client_cert is not None or self.config.client_cert is not None
        )
        self._client = client if client is not None else self._make_client()

    @property
    def recipient(self) -> Agency:
        return self._recipient

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._recipient.id} via {self.url})"

    def _make_client(self) -> httpx.Client:
        return xta_http_client(self._recipient, self.config)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    async def aclose(self) -> None:
        self.close()

    # -- sending

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

    def _xta_client(self, message: OutgoingMessage) -> XtaClient:
        try:
            sender = self._directory.get(message.sender)
            token: str | None = self._directory.token_for(message.sender)
        except MissingTokenError as exc:
            if not self.presents_certificate:
                raise self._error(PermanentSendError, message, str(exc)) from exc
            token = None
        except DirectoryError as exc:
            raise self._error(
                PermanentSendError, message, f"sender {message.sender!r}: {exc}"
            ) from exc
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return XtaClient(
            self.url, author=sender.behoerdenkennung, client=self._client, http_headers=headers
        )

    def send(self, message: OutgoingMessage) -> Receipt:
        if message.recipient != self._recipient.id:
            raise self._error(
                PermanentSendError,
                message,
                f"message is addressed to {message.recipient!r}; this sender delivers to "
                f"{self._recipient.id!r}",
            )
        xta = self._xta_client(message)
        try:
            info = inspect_message(message.payload)
        except UnusableInputError as exc:
            raise self._error(PermanentSendError, message, f"unusable message: {exc}") from exc
        message_id = message_id_for(message.nachrichten_uuid)
        metadata = build_metadata(
            info,
            nachrichten_uuid=message.nachrichten_uuid,
            author=xta.author,
            reader=self._recipient.behoerdenkennung,
            size=message.size,
        )
        try:
            if message.file is not None:  # streamed from disk, never read whole
                xta.send_message(
                    None,
                    metadata,
                    file=message.file,
                    content_type=CONTAINER_TYPE,
                    filename=message.file.name,
                )
            else:
                xta.send_message(message.payload, metadata, content_type=message.content_type)
            report = xta.transport_report(message_id)
        except XtaFault as fault:
            raise self._fault_error(message, fault) from fault
        except httpx.HTTPError as exc:
            detail = str(exc).strip()
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            cls = TransientSendError if _classify_httpx(exc) else PermanentSendError
            raise self._error(cls, message, reason) from exc
        except XtaHttpError as exc:
            status = exc.status_code
            transient = status >= 500 or status in TRANSIENT_STATUSES
            cls = TransientSendError if transient else PermanentSendError
            raise self._error(cls, message, str(exc), status_code=status) from exc
        except (SoapError, MtomError, XtaError) as exc:
            raise self._error(PermanentSendError, message, f"unusable XTA answer: {exc}") from exc
        return self._receipt(message, report)

    def _fault_error(self, message: OutgoingMessage, fault: XtaFault) -> SendError:
        reason = f"{fault.kind} {fault.code}: {fault.reason}"
        if fault.findings:
            reason += " — " + "; ".join(str(f.get("message", "")) for f in fault.findings)
        transient = fault.kind in _TRANSIENT_FAULTS or fault.status >= 500
        cls = TransientSendError if transient else PermanentSendError
        detail = {"kind": fault.kind, "code": fault.code, "findings": list(fault.findings)}
        return self._error(cls, message, reason, status_code=fault.status, detail=detail)

    def _receipt(self, message: OutgoingMessage, report: TransportReport) -> Receipt:
        state = REPORT_STATES.get(report.status)
        if state is None:
            raise self._error(
                PermanentSendError,
                message,
                f"transport report status {report.status}: " + "; ".join(report.infos),
                detail={"status": report.status, "infos": list(report.infos)},
            )
        received = report.delivered_at or datetime.now(UTC)
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return Receipt(
            nachrichten_uuid=message.nachrichten_uuid,
            received_at=received,
            sha512=message.sha512,
            state=state,
            raw={
                "nachrichtenUUID": message.nachrichten_uuid,
                "xta_message_id": report.message_id,
                "xta_status": report.status,
                "xta_infos": list(report.infos),
            },
        )
