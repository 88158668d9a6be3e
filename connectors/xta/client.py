"""A small XTA 2 client: SOAP 1.2 over an injected ``httpx.Client`` (mutual TLS is the client's).

ManagementPort ``createMessageId``/``getTransportReport``, SendXtaPort ``sendMessage`` (MTOM) and
the msgBox side (``getStatusList``, ``getMessage``, ``close``) used to poll our own msgBox for
replies (:func:`poll_xta_msgbox`). A fault answer raises :class:`XtaFault` (kind, code, reason,
findings); an answer that is no usable SOAP raises :class:`SoapError`/:class:`MtomError`;
``httpx.HTTPError`` passes through (the sender classifies it).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from .exceptions import SoapError, XtaError, XtaFault
from .metadata import MessageMetadata, message_id_for, party, read_metadata, uuid_of_message_id
from .mtom import MultipartParser, OutgoingPart, Part, build_mtom, resolve_content, xop_include
from .namespaces import ACTIONS, FINDINGS_NS, OSCI, OSCIMETA, SOAP12, WSA, XTA, q
from .soap import Envelope, build_envelope, parse_envelope, serialize

__all__ = [
    "FetchedMessage",
    "TransportReport",
    "XtaAnswer",
    "XtaClient",
    "XtaHttpError",
    "poll_xta_msgbox",
]

SOAP_MEDIA = "application/soap+xml; charset=utf-8"
_MAX_ENVELOPE = 64 << 20
_MAX_BODY = 1 << 30


@dataclass(frozen=True)
class XtaAnswer:
    """A successful answer: the envelope and its MTOM parts (content id → part)."""

    envelope: Envelope
    parts: dict[str, Part]


@dataclass(frozen=True)
class TransportReport:
    """``xta:TransportReport``: status 0 open, 1 green, 2 yellow, 3 red (XTA MessageStatus)."""

    message_id: str
    status: int
    delivered_at: datetime | None
    infos: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class FetchedMessage:
    """A message fetched from our msgBox: its MessageID, payload and MessageMetaData."""

    message_id: str
    nachrichten_uuid: str | None
    payload: bytes
    content_type: str
    metadata: MessageMetadata | None


class XtaHttpError(XtaError):
    """An HTTP answer that is no SOAP (e.g. 401 JSON before SOAP, a proxy's 502 page)."""

    def __init__(self, status_code: int, problem: str) -> None:
        super().__init__(status_code, problem)
        self.status_code = status_code
        self.problem = problem

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.problem}"


def _fault_of(env: Envelope, status: int) -> XtaFault:
    fault = env.body
    assert fault is not None
    reason = " ".join((fault.findtext(f"{q(SOAP12, 'Reason')}/{q(SOAP12, 'Text')}") or "").split())
    detail = fault.find(q(SOAP12, "Detail"))
    kind, code, findings = "XTAWSTechnicalProblemException", "9000", []
    if detail is not None:
        for child in detail:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child)
            if name.namespace == XTA:
                kind = name.localname
                code = (child.findtext(f"{q(XTA, 'errorCode')}/code") or code).strip()
            elif child.tag == q(FINDINGS_NS, "Findings"):
                for item in child.iter(q(FINDINGS_NS, "Finding")):
                    finding: dict[str, Any] = dict(item.attrib)
                    finding["message"] = item.text or ""
                    findings.append(finding)
    sender = (fault.findtext(f"{q(SOAP12, 'Code')}/{q(SOAP12, 'Value')}") or "").endswith("Sender")
    return XtaFault(kind, code, reason, sender_fault=sender, findings=findings, status=status)


class XtaClient:
    """Calls the XTA server at ``base_url`` (``…/services/XTAService``) as ``author`` (our
    Behördenkennung). ``client`` carries TLS and timeouts and is not closed here;
    ``http_headers`` are added to every request (e.g. ``Authorization``)."""

    def __init__(
        self,
        base_url: str,
        *,
        author: str,
        client: httpx.Client,
        http_headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.author = author
        self.client = client
        self.http_headers = dict(http_headers or {})

    def url(self, port: str) -> str:
        return f"{self.base_url}/{port}"

    # -- transport

    def call(
        self,
        port: str,
        operation: str,
        body: Sequence[etree._Element] = (),
        *,
        headers: Sequence[etree._Element] | None = None,
        attachments: Sequence[OutgoingPart] = (),
        spool: Path | None = None,
    ) -> XtaAnswer:
        """One request; raises :class:`XtaFault` for a fault answer."""
        blocks = [party("Author", self.author)] if headers is None else list(headers)
        envelope = serialize(build_envelope(ACTIONS[(port, operation)], body, headers=blocks))
        if attachments:
            content_type, chunks = build_mtom(envelope, attachments)
            content: Any = b"".join(chunks)
        else:
            content_type, content = SOAP_MEDIA, envelope
        response = self.client.post(
            self.url(port),
            content=content,
            headers={**self.http_headers, "Content-Type": content_type},
        )
        answer = self._read(response, spool)
        if answer.envelope.body is not None and answer.envelope.body.tag == q(SOAP12, "Fault"):
            raise _fault_of(answer.envelope, response.status_code)
        if response.status_code != 200:
            raise XtaHttpError(response.status_code, f"{self.url(port)} answered without a fault")
        return answer

    def _read(self, response: httpx.Response, spool: Path | None) -> XtaAnswer:
        content_type = response.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/related"):
            # without a spool directory every part stays in memory (nothing left on disk)
            parser = MultipartParser(
                content_type,
                directory=spool or Path(tempfile.gettempdir()),
                limit=_MAX_BODY,
                root_limit=_MAX_ENVELOPE,
                memory_threshold=(1 << 20) if spool is not None else _MAX_BODY,
            )
            parser.feed(response.content)
            root, parts = parser.close()
            data = root.read_bytes()
        elif "xml" in content_type.lower():
            data, parts = response.content, {}
        else:
            raise XtaHttpError(
                response.status_code,
                f"Content-Type {content_type or '(none)'}: {response.text[:300]}",
            )
        return XtaAnswer(parse_envelope(data, max_bytes=_MAX_ENVELOPE), parts)

    # -- ManagementPort and SendXtaPort

    def create_message_id(self) -> str:
        answer = self.call("ManagementPort", "createMessageId")
        body = answer.envelope.body
        if body is None or not (body.text or "").strip():
            raise SoapError("createMessageId answered without a MessageID")
        return (body.text or "").strip()

    def send_message(
        self,
        payload: bytes,
        metadata: etree._Element,
        *,
        content_type: str = "application/xml",
        filename: str = "message.xml",
    ) -> None:
        """``sendMessage``: the payload as MTOM attachment, ``metadata`` as header block."""
        cid = "message@amtsbote"
        container = etree.Element(q(XTA, "GenericContentContainer"), nsmap={"xta": XTA})
        inner = etree.SubElement(container, q(XTA, "ContentContainer"))
        message = etree.SubElement(
            inner,
            q(XTA, "Message"),
            contentType=content_type,
            filename=filename,
            size=str(len(payload)),
        )
        message.append(xop_include(cid))
        self.call(
            "SendXtaPort",
            "sendMessage",
            [container],
            headers=[metadata],
            attachments=[OutgoingPart(cid, content_type, data=payload)],
        )

    def transport_report(self, message_id: str) -> TransportReport:
        request = etree.Element(q(WSA, "MessageID"), nsmap={"wsa": WSA})
        request.text = message_id
        answer = self.call("ManagementPort", "getTransportReport", [request])
        report = answer.envelope.body
        if report is None or report.tag != q(XTA, "TransportReport"):
            raise SoapError("getTransportReport answered without an xta:TransportReport")
        status_text = report.findtext(f"{q(XTA, 'MessageStatus')}/{q(XTA, 'Status')}") or ""
        delivered = report.findtext(
            f"{q(OSCIMETA, 'MessageMetaData')}/{q(OSCIMETA, 'DeliveryAttributes')}/"
            f"{q(OSCIMETA, 'Delivery')}"
        )
        infos = tuple(
            " ".join((r.text or "").split()) for r in report.iter(q(XTA, "Reason")) if r.text
        )
        try:
            status = int(status_text.strip())
        except ValueError:
            raise SoapError(f"TransportReport Status {status_text!r} is not a number") from None
        return TransportReport(
            message_id=message_id,
            status=status,
            delivered_at=datetime.fromisoformat(delivered.strip()) if delivered else None,
            infos=infos,
            raw=etree.tostring(report),
        )

    # -- MsgBoxPort

    def get_status_list(self, *, max_items: int = 100) -> list[str]:
        """MessageIDs waiting in our msgBox (first page)."""
        request = etree.Element(
            q(OSCI, "MsgBoxStatusListRequest"),
            nsmap={"osci": OSCI},
            maxListItems=str(max_items),
        )
        answer = self.call("MsgBoxPort", "getStatusList", [request])
        listing = answer.envelope.body
        if listing is None:
            return []
        return [
            (e.text or "").strip()
            for e in listing.iter(q(WSA, "MessageID"))
            if (e.text or "").strip()
        ]

    def get_message(self, message_id: str, *, spool: Path | None = None) -> FetchedMessage:
        """Fetch one message; with ``spool`` (a directory) attachments above 1 MiB are written
        there while reading instead of being held in memory."""
        request = etree.Element(q(OSCI, "MsgBoxFetchRequest"), nsmap={"osci": OSCI, "wsa": WSA})
        selector = etree.SubElement(request, q(OSCI, "MsgSelector"))
        etree.SubElement(selector, q(WSA, "MessageID")).text = message_id
        answer = self.call("MsgBoxPort", "getMessage", [request], spool=spool)
        body = answer.envelope.body
        message = (
            None if body is None else body.find(f"{q(XTA, 'ContentContainer')}/{q(XTA, 'Message')}")
        )
        if message is None:
            raise SoapError("getMessage answered without ContentContainer/Message")
        content = resolve_content(message, answer.parts)
        header = answer.envelope.header(OSCIMETA, "MessageMetaData")
        return FetchedMessage(
            message_id=message_id,
            nachrichten_uuid=uuid_of_message_id(message_id),
            payload=content.read_bytes(),
            content_type=message.get("contentType") or "application/xml",
            metadata=read_metadata(header) if header is not None else None,
        )

    def close(self, message_id: str) -> None:
        """Acknowledge ``message_id`` (it leaves our msgBox)."""
        request = etree.Element(
            q(OSCI, "MsgBoxCloseRequest"),
            nsmap={"osci": OSCI},
            MsgBoxRequestID=message_id_for(str(uuid.uuid4())),
        )
        etree.SubElement(request, q(OSCI, "LastMsgReceived")).text = message_id
        self.call("MsgBoxPort", "close", [request])


def poll_xta_msgbox(
    client: XtaClient,
    handle: Callable[[FetchedMessage], object],
    *,
    max_items: int = 100,
) -> list[str]:
    """Fetch each waiting message, hand it to ``handle`` (e.g. store it in the journal as an
    inbound reply) and close it only after ``handle`` returned; returns the closed MessageIDs.
    An exception of ``handle`` propagates and leaves that message (and the rest) waiting."""
    closed: list[str] = []
    for message_id in client.get_status_list(max_items=max_items):
        handle(client.get_message(message_id))
        client.close(message_id)
        closed.append(message_id)
    return closed
