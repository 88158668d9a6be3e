"""Helpers of the XTA 2 tests (``test_xta*.py``); this module holds no tests.

Requests are written by hand here (SOAP 1.2 text and a hand-made multipart/related body), not
with the server's builders, so that the tests do not check the server against itself; answers
are parsed with lxml/the email package and validated against the official XSDs."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from lxml import etree
from test_inbox_support import auth

from connectors.xta.schema import validation_errors

S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XTA = "http://xoev.de/transport/xta/211"
META = "http://www.osci.eu/ws/2014/10/transport"
OSCI = "http://www.osci.eu/ws/2008/05/transport"
XGA = "http://www.xgewerbeanzeige.de/spezifikation/2.2"
NS = {"s12": S12, "wsa": WSA, "xta": XTA, "oscimeta": META, "osci": OSCI}
A = "http://www.xta.de/XTA/"
M = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"
OFFICIAL = (XTA, META, OSCI, WSA, S12)


def envelope(
    action: str | None,
    body: str = "",
    *,
    headers: str = "",
    message_id: str | None = "auto",
    to: str = "http://127.0.0.1/",
) -> bytes:
    mid = f"urn:uuid:{uuid.uuid4()}" if message_id == "auto" else message_id
    head = ""
    if action is not None:
        head += f"<wsa:Action>{action}</wsa:Action>"
    if mid is not None:
        head += f"<wsa:MessageID>{mid}</wsa:MessageID>"
    head += f"<wsa:To>{to}</wsa:To><wsa:ReplyTo><wsa:Address>{WSA}/anonymous</wsa:Address>"
    head += "</wsa:ReplyTo>" + headers
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s12:Envelope xmlns:s12="{S12}" '
        f'xmlns:wsa="{WSA}" xmlns:xta="{XTA}" xmlns:oscimeta="{META}" xmlns:osci="{OSCI}">'
        f"<s12:Header>{head}</s12:Header><s12:Body>{body}</s12:Body></s12:Envelope>"
    ).encode()


def author_header(kennung: str) -> str:
    return (
        f'<oscimeta:Author><oscimeta:Identifier type="xoev">{kennung}</oscimeta:Identifier>'
        "</oscimeta:Author>"
    )


def metadata_header(
    *,
    author: str,
    reader: str,
    nachrichten_uuid: str,
    message_type: str = "0500",
    payload_schema: str = XGA,
) -> str:
    return (
        "<oscimeta:MessageMetaData><oscimeta:DeliveryAttributes/>"
        f'<oscimeta:Originators><oscimeta:Author><oscimeta:Identifier type="xoev">{author}'
        "</oscimeta:Identifier></oscimeta:Author></oscimeta:Originators>"
        f'<oscimeta:Destinations><oscimeta:Reader><oscimeta:Identifier type="xoev">{reader}'
        "</oscimeta:Identifier></oscimeta:Reader></oscimeta:Destinations>"
        f"<oscimeta:MsgIdentification><wsa:MessageID>urn:uuid:{nachrichten_uuid}"
        "</wsa:MessageID></oscimeta:MsgIdentification>"
        f"<oscimeta:Qualifier><oscimeta:Service>{payload_schema}</oscimeta:Service>"
        "<oscimeta:BusinessScenario><oscimeta:Undefined>XGewerbeanzeige</oscimeta:Undefined>"
        "</oscimeta:BusinessScenario>"
        '<oscimeta:MessageType listURI="urn:test" listVersionID="1" '
        f'payloadSchema="{payload_schema}"><code>{message_type}</code></oscimeta:MessageType>'
        "</oscimeta:Qualifier></oscimeta:MessageMetaData>"
    )


def container_body(inner: str, content_type: str = "application/xml") -> str:
    return (
        "<xta:GenericContentContainer><xta:ContentContainer>"
        f'<xta:Message contentType="{content_type}" filename="message.xml">{inner}</xta:Message>'
        "</xta:ContentContainer></xta:GenericContentContainer>"
    )


def inline(payload: bytes) -> str:
    return base64.b64encode(payload).decode()


def mtom_body(root: bytes, attachments: dict[str, bytes]) -> tuple[str, bytes]:
    """A multipart/related (MTOM) body written by hand: ``(Content-Type, bytes)``."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    parts = [
        f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
        f'type="application/soap+xml"\r\nContent-Transfer-Encoding: binary\r\n'
        "Content-ID: <root.message@test>\r\n\r\n".encode()
        + root
    ]
    for cid, data in attachments.items():
        parts.append(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode()
            + data
        )
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        'start="<root.message@test>"; start-info="application/soap+xml"'
    )
    return content_type, body


@dataclass
class Answer:
    status: int
    root: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)

    @property
    def body(self) -> etree._Element | None:
        body = self.root.find(f"{{{S12}}}Body")
        assert body is not None
        return next(iter(body), None)

    def header(self, local: str, ns: str = WSA) -> etree._Element | None:
        return self.root.find(f"{{{S12}}}Header/{{{ns}}}{local}")

    @property
    def fault(self) -> etree._Element | None:
        body = self.body
        return body if body is not None and body.tag == f"{{{S12}}}Fault" else None

    def fault_detail(self) -> tuple[str, str]:
        """``(detail element local name, error code)``."""
        fault = self.fault
        assert fault is not None, etree.tostring(self.root)
        [detail] = fault.findall(f"{{{S12}}}Detail/{{{XTA}}}*")
        code = detail.findtext(f"{{{XTA}}}errorCode/code")
        return etree.QName(detail).localname, code or ""


def validate_answer(root: etree._Element) -> None:
    """The whole envelope and every body child / header block of an official namespace are
    valid against the official XSDs (the SOAP 1.2 envelope by our short schema)."""
    assert validation_errors(root) == [], etree.tostring(root)
    elements = list(root.find(f"{{{S12}}}Body")) + list(root.find(f"{{{S12}}}Header"))
    for element in elements:
        if etree.QName(element).namespace in OFFICIAL and element.tag != f"{{{S12}}}Fault":
            assert validation_errors(element) == [], etree.tostring(element)


def read_answer(response: httpx.Response) -> Answer:
    content_type = response.headers.get("content-type", "")
    attachments: dict[str, bytes] = {}
    if content_type.startswith("multipart/related"):
        raw = f"Content-Type: {content_type}\r\n\r\n".encode() + response.content
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        parts = list(message.iter_parts())  # type: ignore[attr-defined]
        root_bytes = parts[0].get_payload(decode=True)
        for part in parts[1:]:
            attachments[part["Content-ID"].strip("<>")] = part.get_payload(decode=True)
        assert parts[0].get_content_type() == "application/xop+xml"
    else:
        assert content_type.startswith("application/soap+xml"), (content_type, response.text)
        root_bytes = response.content
    root = etree.fromstring(root_bytes)
    validate_answer(root)
    return Answer(response.status_code, root, attachments)


def call(
    url: str,
    port: str,
    data: bytes,
    *,
    agency: str,
    content_type: str | None = None,
    **kw: Any,
) -> Answer:
    headers = {
        **auth(agency),
        "Content-Type": content_type or "application/soap+xml; charset=utf-8",
    }
    response = httpx.post(
        f"{url}/services/XTAService/{port}", content=data, headers=headers, timeout=60, **kw
    )
    return read_answer(response)
