"""SOAP 1.2 envelopes of XTA 2: reading a request (hardened parser: no DTD, no entities, size
limit), its WS-Addressing headers, and building answers and faults.

An answer carries ``wsa:Action`` (the WSDL's output action: for XTA the input action itself),
a fresh ``wsa:MessageID`` and ``wsa:RelatesTo`` the request's MessageID. A fault carries the
operation's action when the request named a known one, else the WS-Addressing fault action; its
``Detail`` holds the XTA exception element (``xta:errorCode`` from Code.Fehlernummer) and, for a
MessageSchemaViolation, our ``amtsbote:Findings`` with the XÖV findings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from xoev.exceptions import InputTooLargeError, UnusableInputError
from xoev.parsing import ParserConfig, parse_xml

from .exceptions import SoapError, XtaFault
from .namespaces import FINDINGS_NS, SOAP12, WSA, XTA, XTA_ERROR_CODE_LIST, q

__all__ = [
    "ERROR_CODES",
    "FAULT_ACTION",
    "Envelope",
    "build_envelope",
    "build_fault",
    "fault_element",
    "new_message_id",
    "parse_envelope",
    "serialize",
]

FAULT_ACTION = WSA + "/fault"
"""wsa:Action of a fault the request's action cannot be named for (WS-Addressing SOAP binding)."""

#: Code.Fehlernummer → name (the codeName of XTA-Webservice-Datentypen.xsd, as written there).
ERROR_CODES: Mapping[str, str] = {
    "9000": "Unspezifizierter Fehler, als Freitext beschrieben",
    "9010": "Authentisierung/Zertifikat ist abgelaufen.",
    "9011": "Account ist gesperrt.",
    "9012": "Account nicht vorhanden.",
    "9013": "Dienst ist nicht gebucht.",
    "9014": "Authentisierung/Zertifikat passt nicht zur Absenderkennung.",
    "9020": "Keine Parameter vorhanden",
    "9021": "Keine gültige URI",
    "9022": "Ungültige Parameterkombination",
    "9023": "Die Nachricht überschreitet die Größenbeschränkung.",
    "9024": "MessageID ist bereits vergeben.",
    "9030": "Interner Fehler beim XTA-Server bzw. XTA-Dienstleister",
    "9031": "Fehler beim externen Verzeichnisdienst",
    "9032": "Fehler bei der Zustellung",
    "9050": "Fachnachricht ist nicht schemakonform",
    "9051": "Fachnachricht trägt ein falsches Encoding.",
    "9052": "Nachricht verletzt das entsprechende Service Profil.",
    "9060": "Es wurde schadhafter Code ermittelt.",
    "9070": "MessageID für den Account nicht bekannt.",
    "9080": "Der Dienst wird nur asynchron angeboten.",
    "9081": "Der Dienst wird nur synchron angeboten.",
    "9100": "Der durch den Schalter NotBefore gesetzte Termin ist verstrichen.",
    "9101": "Der Schalter NotBefore wurde nicht gesetzt.",
}

_ENVELOPE = q(SOAP12, "Envelope")
_HEADER = q(SOAP12, "Header")
_BODY = q(SOAP12, "Body")
_NSMAP = {"s12": SOAP12, "wsa": WSA}


@dataclass(frozen=True)
class Envelope:
    """A parsed request: WS-Addressing headers (None when absent), all header blocks by tag, the
    Body's first element (None for an empty Body)."""

    tree: etree._ElementTree
    action: str | None
    message_id: str | None
    to: str | None
    reply_to: str | None
    headers: Mapping[str, etree._Element]
    body: etree._Element | None

    def header(self, namespace: str, local: str) -> etree._Element | None:
        return self.headers.get(q(namespace, local))


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def parse_envelope(data: bytes, *, max_bytes: int, max_depth: int = 100) -> Envelope:
    """Parse a SOAP 1.2 request (bytes of the root part). Raises :class:`SoapError`."""
    config = ParserConfig(max_bytes=max_bytes, max_depth=max_depth, strict=True)
    try:
        tree = parse_xml(data, config=config, source="SOAP envelope")
    except InputTooLargeError as exc:
        raise SoapError(f"SOAP envelope: {exc}", too_large=True) from exc
    except UnusableInputError as exc:
        raise SoapError(f"SOAP envelope refused: {exc}") from exc
    root = tree.getroot()
    if root.tag != _ENVELOPE:
        if etree.QName(root).localname == "Envelope":
            raise SoapError(
                f"not a SOAP 1.2 envelope (namespace {etree.QName(root).namespace}); XTA 2 uses "
                f"SOAP 1.2 ({SOAP12})"
            )
        raise SoapError(f"not a SOAP envelope: root element {etree.QName(root).localname}")
    header = body = None
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag == _HEADER and header is None and body is None:
            header = child
        elif child.tag == _BODY and body is None:
            body = child
        else:
            raise SoapError(f"unexpected element {etree.QName(child).localname} in the Envelope")
    if body is None:
        raise SoapError("the SOAP Envelope has no Body")
    headers: dict[str, etree._Element] = {}
    if header is not None:
        for block in header:
            if isinstance(block.tag, str):
                if block.tag in headers:
                    raise SoapError(f"header {etree.QName(block).localname} appears twice")
                headers[block.tag] = block
    payload = next((c for c in body if isinstance(c.tag, str)), None)
    reply_to = headers.get(q(WSA, "ReplyTo"))
    return Envelope(
        tree=tree,
        action=_text(headers.get(q(WSA, "Action"))),
        message_id=_text(headers.get(q(WSA, "MessageID"))),
        to=_text(headers.get(q(WSA, "To"))),
        reply_to=_text(reply_to.find(q(WSA, "Address"))) if reply_to is not None else None,
        headers=headers,
        body=payload,
    )


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def build_envelope(
    action: str,
    body: Iterable[etree._Element] = (),
    *,
    relates_to: str | None = None,
    headers: Sequence[etree._Element] = (),
) -> etree._Element:
    """An answer envelope: WS-Addressing headers (Action, MessageID, RelatesTo, To anonymous),
    then ``headers``, and ``body`` in the Body."""
    env = etree.Element(_ENVELOPE, nsmap=_NSMAP)
    head = etree.SubElement(env, _HEADER)
    etree.SubElement(head, q(WSA, "Action")).text = action
    etree.SubElement(head, q(WSA, "MessageID")).text = new_message_id()
    if relates_to:
        etree.SubElement(head, q(WSA, "RelatesTo")).text = relates_to
    etree.SubElement(head, q(WSA, "To")).text = WSA + "/anonymous"
    for block in headers:
        head.append(block)
    body_el = etree.SubElement(env, _BODY)
    for element in body:
        body_el.append(element)
    return env


def fault_element(kind: str, code: str) -> etree._Element:
    """The XTA exception element ``xta:{kind}`` with its ``xta:errorCode``."""
    element = etree.Element(q(XTA, kind), nsmap={"xta": XTA})
    error = etree.SubElement(
        element, q(XTA, "errorCode"), listURI=XTA_ERROR_CODE_LIST, listVersionID="1.0"
    )
    etree.SubElement(error, "code").text = code
    etree.SubElement(error, "name").text = ERROR_CODES.get(code, ERROR_CODES["9000"])
    return element


def _findings_element(findings: Sequence[Mapping[str, Any]]) -> etree._Element:
    element = etree.Element(q(FINDINGS_NS, "Findings"), nsmap={"amtsbote": FINDINGS_NS})
    for finding in findings:
        item = etree.SubElement(element, q(FINDINGS_NS, "Finding"))
        for key in ("severity", "rule", "line", "xpath"):
            value = finding.get(key)
            if value is not None:
                item.set(key, str(value))
        item.text = str(finding.get("message", ""))
    return element


def build_fault(
    fault: XtaFault, *, action: str | None = None, relates_to: str | None = None
) -> etree._Element:
    """The SOAP 1.2 fault envelope of ``fault`` (``action``: the operation's, when known)."""
    env = build_envelope(action or FAULT_ACTION, relates_to=relates_to)
    body = env.find(_BODY)
    assert body is not None
    el = etree.SubElement(body, q(SOAP12, "Fault"))
    code = etree.SubElement(el, q(SOAP12, "Code"))
    etree.SubElement(code, q(SOAP12, "Value")).text = "s12:" + (
        "Sender" if fault.sender_fault else "Receiver"
    )
    subcode = _WSA_SUBCODES.get(fault.kind)
    if subcode is not None:
        sub = etree.SubElement(code, q(SOAP12, "Subcode"))
        etree.SubElement(sub, q(SOAP12, "Value")).text = "wsa:" + subcode
    reason = etree.SubElement(el, q(SOAP12, "Reason"))
    text = etree.SubElement(reason, q(SOAP12, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = fault.reason
    detail = etree.SubElement(el, q(SOAP12, "Detail"))
    detail.append(fault_element(_DETAIL_KIND.get(fault.kind, fault.kind), fault.code))
    if fault.findings:
        detail.append(_findings_element(fault.findings))
    return env


#: Our fault kinds for WS-Addressing problems → the WSDL's detail element they carry.
_DETAIL_KIND = {
    "ActionNotSupported": "ParameterIsNotValidException",
    "MessageAddressingHeaderRequired": "ParameterIsNotValidException",
    "InvalidAddressingHeader": "ParameterIsNotValidException",
}
#: … and the WS-Addressing 1.0 SOAP binding's subcode they answer with.
_WSA_SUBCODES = {kind: kind for kind in _DETAIL_KIND}


def serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
