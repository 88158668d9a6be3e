"""A small XTA 2 client: SOAP 1.2 over an injected ``httpx.Client`` (mutual TLS is the client's).

ManagementPort ``createMessageId``/``getTransportReport``, SendXtaPort ``sendMessage`` (MTOM) and
the msgBox side (``getStatusList``, ``getMessage``, ``close``) used to poll our own msgBox for
replies (:func:`poll_xta_msgbox`). A fault answer raises :class:`XtaFault` (kind, code, reason,
findings); an answer that is no usable SOAP raises :class:`SoapError`/:class:`MtomError`;
``httpx.HTTPError`` passes through (the sender classifies it).

Streaming: a request with an attachment is sent as a generator (``Content-Length`` known
beforehand; a file attachment is read in 1 MiB chunks while sending), every answer is read with
``client.stream`` and parsed while it arrives; ``get_message(spool=DIR)`` leaves a large payload
in a file (:attr:`FetchedMessage.path`) instead of memory.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from .exceptions import SoapError, XtaError, XtaFault
from .metadata import MessageMetadata, message_id_for, party, read_metadata, uuid_of_message_id
from .mtom import MultipartParser, OutgoingPart, Part, mtom_body, resolve_content, xop_include
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

    def discard(self, *, keep: Part | None = None) -> None:
        """Remove the parts' spooled files (all but ``keep``)."""
        for part in self.parts.values():
            if part is not keep:
                part.discard()


@dataclass(frozen=True)
class TransportReport:
    """``xta:TransportReport``: status 0 open, 1 green, 2 yellow, 3 red (XTA MessageStatus)."""

    message_id: str
    status: int
    delivered_at: datetime | None
    infos: tuple[str, ...]
    raw: bytes


class FetchedMessage:
    """A message fetched from our msgBox: its MessageID, payload and MessageMetaData.

    A payload spooled to disk (``get_message(..., spool=DIR)``, above 1 MiB) is at ``path`` (the
    caller's file now: move or delete it); ``payload`` then reads that file on each access — use
    ``path`` for large containers. A small one is held in ``payload`` and ``path`` is None."""

    __slots__ = ("_payload", "content_type", "message_id", "metadata", "nachrichten_uuid", "path")

    def __init__(
        self,
        message_id: str,
        nachrichten_uuid: str | None,
        payload: bytes | None = None,
        content_type: str = "application/xml",
        metadata: MessageMetadata | None = None,
        *,
        path: Path | None = None,
    ) -> None:
        if (payload is None) == (path is None):
            raise ValueError("FetchedMessage needs either payload bytes or a spooled path")
        self.message_id = message_id
        self.nachrichten_uuid = nachrichten_uuid
        self._payload = payload
        self.content_type = content_type
        self.metadata = metadata
        self.path = path

    @property
    def payload(self) -> bytes:
        if self._payload is not None:
            return self._payload
        assert self.path is not None
        return self.path.read_bytes()

    @property
    def size(self) -> int:
        if self._payload is not None:
            return len(self._payload)
        assert self.path is not None
        return self.path.stat().st_size

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path is not None else f"{self.size} bytes"
        return (
            f"FetchedMessage(message_id={self.message_id!r}, content_type="
            f"{self.content_type!r}, {where})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FetchedMessage):
            return NotImplemented
        return (
            self.message_id,
            self.nachrichten_uuid,
            self.content_type,
            self.metadata,
            self.path,
            self._payload,
        ) == (
            other.message_id,
            other.nachrichten_uuid,
            other.content_type,
            other.metadata,
            other.path,
            other._payload,
        )

    __hash__ = None  # type: ignore[assignment]


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
        content: bytes | Iterator[bytes]
        if attachments:
            mtom = mtom_body(envelope, attachments)
            # a generator: httpx sends it as it is produced (a file part is read 1 MiB at a time)
            content, content_type, length = mtom.chunks, mtom.content_type, mtom.length
        else:
            content, content_type, length = envelope, SOAP_MEDIA, len(envelope)
        request_headers = {
            **self.http_headers,
            "Content-Type": content_type,
            "Content-Length": str(length),
        }
        with self.client.stream(
            "POST", self.url(port), content=content, headers=request_headers
        ) as response:
            answer = self._read(response, spool)
        try:
            if answer.envelope.body is not None and answer.envelope.body.tag == q(SOAP12, "Fault"):
                raise _fault_of(answer.envelope, response.status_code)
            if response.status_code != 200:
                raise XtaHttpError(
                    response.status_code, f"{self.url(port)} answered without a fault"
                )
        except XtaError:
            answer.discard()
            raise
        return answer

    def _read(self, response: httpx.Response, spool: Path | None) -> XtaAnswer:
        """Read the answer while it arrives: MTOM parts above 1 MiB go to ``spool`` (without a
        spool everything stays in memory and nothing is left on disk)."""
        content_type = response.headers.get("content-type", "")
        media = content_type.lower()
        if media.startswith("multipart/related"):
            parser = MultipartParser(
                content_type,
                directory=spool or Path(tempfile.gettempdir()),
                limit=_MAX_BODY,
                root_limit=_MAX_ENVELOPE,
                memory_threshold=(1 << 20) if spool is not None else _MAX_BODY,
            )
            try:
                for chunk in response.iter_bytes():
                    parser.feed(chunk)
                root, parts = parser.close()
                data = root.read_bytes()
                root.discard()
                return XtaAnswer(parse_envelope(data, max_bytes=_MAX_ENVELOPE), parts)
            except BaseException:
                parser.discard()
                raise
        if "xml" in media:
            return XtaAnswer(parse_envelope(_read_at_most(response), max_bytes=_MAX_ENVELOPE), {})
        text = _read_at_most(response, limit=4096, strict=False).decode("utf-8", "replace")
        raise XtaHttpError(
            response.status_code, f"Content-Type {content_type or '(none)'}: {text[:300]}"
        )

    # -- ManagementPort and SendXtaPort

    def create_message_id(self) -> str:
        answer = self.call("ManagementPort", "createMessageId")
        body = answer.envelope.body
        if body is None or not (body.text or "").strip():
            raise SoapError("createMessageId answered without a MessageID")
        return (body.text or "").strip()

    def send_message(
        self,
        payload: bytes | None,
        metadata: etree._Element,
        *,
        file: Path | None = None,
        content_type: str = "application/xml",
        filename: str = "message.xml",
    ) -> None:
        """``sendMessage``: the payload as MTOM attachment, ``metadata`` as header block. Give
        either ``payload`` bytes or ``file`` (payload None): a file (e.g. an xdomea container) is
        streamed from disk in 1 MiB chunks, never read whole."""
        if (payload is None) == (file is None):
            raise ValueError("send_message needs either payload bytes or a file, not both")
        cid = "message@amtsbote"
        part = OutgoingPart(cid, content_type, data=payload, path=file)
        container = etree.Element(q(XTA, "GenericContentContainer"), nsmap={"xta": XTA})
        inner = etree.SubElement(container, q(XTA, "ContentContainer"))
        message = etree.SubElement(
            inner,
            q(XTA, "Message"),
            contentType=content_type,
            filename=filename,
            size=str(part.size),
        )
        message.append(xop_include(cid))
        self.call("SendXtaPort", "sendMessage", [container], headers=[metadata], attachments=[part])

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
        try:
            body = answer.envelope.body
            message = (
                None
                if body is None
                else body.find(f"{q(XTA, 'ContentContainer')}/{q(XTA, 'Message')}")
            )
            if message is None:
                raise SoapError("getMessage answered without ContentContainer/Message")
            content = resolve_content(message, answer.parts)
            header = answer.envelope.header(OSCIMETA, "MessageMetaData")
            metadata = read_metadata(header) if header is not None else None
        except BaseException:
            answer.discard()
            raise
        answer.discard(keep=content.part)
        part = content.part
        if part is not None and part.path is not None:
            part.finish()
            data, path = None, part.path
        else:
            data, path = content.read_bytes(), None
        return FetchedMessage(
            message_id=message_id,
            nachrichten_uuid=uuid_of_message_id(message_id),
            payload=data,
            content_type=message.get("contentType") or "application/xml",
            metadata=metadata,
            path=path,
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


def _read_at_most(
    response: httpx.Response, *, limit: int = _MAX_ENVELOPE, strict: bool = True
) -> bytes:
    """The answer body, at most ``limit`` bytes (beyond: :class:`SoapError`, or cut short)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if strict:
                raise SoapError(f"the answer exceeds {limit} bytes", too_large=True)
            chunks.append(chunk[: limit - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)


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
