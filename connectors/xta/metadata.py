"""``oscimeta:MessageMetaData`` ↔ an XÖV message.

Derived from the Nachrichtenkopf (:func:`build_metadata`) — our conventions, written in
``docs/xta.md``:

==============================  =============================================================
Originators/Author/Identifier   the author's Behördenkennung ``praefix:kennung``, ``type="xoev"``
Destinations/Reader/Identifier  the reader's Behördenkennung, ``type="xoev"``
MsgIdentification/MessageID     ``urn:uuid:{nachrichtenUUID}``
Qualifier/Service               the standard's root namespace (one URI per standard version)
Qualifier/BusinessScenario      ``Undefined``: ``{standard} {version}``
Qualifier/MessageType           code = message type (``0500``), name = root element,
                                ``payloadSchema`` = the root namespace
DeliveryAttributes              Origin = erstellungszeitpunkt, Delivery = received,
                                InitialFetch = fetched (when known)
==============================  =============================================================

:func:`read_metadata` reads an incoming one; :func:`check_consistent` refuses one that
contradicts the message (author, reader, MessageID, MessageType, payloadSchema).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from xoev.message import MessageInfo

from .exceptions import MetadataError
from .namespaces import OSCIMETA, WSA, q

__all__ = [
    "PARTY_TYPE",
    "MessageMetadata",
    "build_metadata",
    "check_consistent",
    "message_id_for",
    "party",
    "read_metadata",
    "uuid_of_message_id",
]

PARTY_TYPE = "xoev"
"""``Identifier/@type`` of a Behördenkennung."""
_MESSAGE_TYPE_LIST = "urn:amtsbote:xta:nachrichtentyp"


def message_id_for(nachrichten_uuid: str) -> str:
    """The XTA MessageID of a message: ``urn:uuid:`` and its nachrichtenUUID."""
    return f"urn:uuid:{nachrichten_uuid}"


def uuid_of_message_id(message_id: str) -> str | None:
    """The UUID in ``urn:uuid:…`` (or a bare UUID), lower case; None for other URIs."""
    text = message_id.strip()
    if text.lower().startswith("urn:uuid:"):
        text = text[9:]
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MessageMetadata:
    """What an incoming MessageMetaData says (None where absent)."""

    message_id: str | None
    author: str | None
    reader: str | None
    service: str | None
    message_type: str | None
    payload_schema: str | None
    test: bool = False


def _identifier(parent: etree._Element | None, path: str) -> str | None:
    if parent is None:
        return None
    node = parent.find(path)
    if node is None or not (node.text or "").strip():
        return None
    return " ".join((node.text or "").split())


def read_metadata(element: etree._Element) -> MessageMetadata:
    """Read ``oscimeta:MessageMetaData``; raises :class:`MetadataError` for a missing part."""
    if element.tag != q(OSCIMETA, "MessageMetaData"):
        raise MetadataError("MessageMetaData", "header is not oscimeta:MessageMetaData")
    author = _identifier(
        element, f"{q(OSCIMETA, 'Originators')}/{q(OSCIMETA, 'Author')}/{q(OSCIMETA, 'Identifier')}"
    )
    reader = _identifier(
        element,
        f"{q(OSCIMETA, 'Destinations')}/{q(OSCIMETA, 'Reader')}/{q(OSCIMETA, 'Identifier')}",
    )
    message_id = _identifier(element, f"{q(OSCIMETA, 'MsgIdentification')}/{q(WSA, 'MessageID')}")
    qualifier = element.find(q(OSCIMETA, "Qualifier"))
    if author is None:
        raise MetadataError("Originators/Author/Identifier", "missing")
    if qualifier is None:
        raise MetadataError("Qualifier", "missing")
    message_type = qualifier.find(q(OSCIMETA, "MessageType"))
    return MessageMetadata(
        message_id=message_id,
        author=author,
        reader=reader,
        service=_identifier(qualifier, q(OSCIMETA, "Service")),
        message_type=_identifier(message_type, "code"),
        payload_schema=message_type.get("payloadSchema") if message_type is not None else None,
        test=element.get("TestMsg", "false").strip() in ("true", "1"),
    )


def _same_kennung(a: str, b: str) -> bool:
    pa, _, ka = a.strip().partition(":")
    pb, _, kb = b.strip().partition(":")
    return pa.lower() == pb.lower() and ka == kb


def check_consistent(meta: MessageMetadata, info: MessageInfo) -> None:
    """Refuse metadata that contradicts the message's Nachrichtenkopf."""
    if meta.author and info.author and not _same_kennung(meta.author, info.author):
        raise MetadataError(
            "Originators/Author/Identifier",
            f"{meta.author} is not the author (autor) of the message, {info.author}",
        )
    if meta.reader and info.reader and not _same_kennung(meta.reader, info.reader):
        raise MetadataError(
            "Destinations/Reader/Identifier",
            f"{meta.reader} is not the reader (leser) of the message, {info.reader}",
        )
    if meta.message_id is not None:
        given = uuid_of_message_id(meta.message_id)
        if given is None:
            raise MetadataError(
                "MsgIdentification/MessageID",
                "must be urn:uuid: followed by the message's nachrichtenUUID",
            )
        if info.nachrichten_uuid and given != info.nachrichten_uuid.strip().lower():
            raise MetadataError(
                "MsgIdentification/MessageID",
                f"{meta.message_id} is not the message's nachrichtenUUID {info.nachrichten_uuid}",
            )
    if meta.payload_schema and info.namespace and meta.payload_schema != info.namespace:
        raise MetadataError(
            "Qualifier/MessageType/@payloadSchema",
            f"{meta.payload_schema} is not the message's namespace {info.namespace}",
        )
    if meta.message_type and meta.message_type not in {info.message_type, info.root}:
        raise MetadataError(
            "Qualifier/MessageType/code",
            f"{meta.message_type} is not the message's type {info.message_type} ({info.root})",
        )


def party(local: str, kennung: str, *, name: str | None = None) -> etree._Element:
    """``oscimeta:{local}`` (Author, Reader) with the Behördenkennung as Identifier."""
    element = etree.Element(q(OSCIMETA, local), nsmap={"oscimeta": OSCIMETA})
    identifier = etree.SubElement(element, q(OSCIMETA, "Identifier"), type=PARTY_TYPE)
    if name:
        identifier.set("name", name)
    identifier.text = kennung
    return element


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def build_metadata(
    info: MessageInfo,
    *,
    nachrichten_uuid: str,
    author: str,
    reader: str,
    created: datetime | None = None,
    delivered: datetime | None = None,
    fetched: datetime | None = None,
    size: int | None = None,
) -> etree._Element:
    """The MessageMetaData of a message (``author``/``reader``: Behördenkennungen)."""
    nsmap = {"oscimeta": OSCIMETA, "wsa": WSA}
    meta = etree.Element(q(OSCIMETA, "MessageMetaData"), nsmap=nsmap)
    attributes = etree.SubElement(meta, q(OSCIMETA, "DeliveryAttributes"))
    for local, value in (("Origin", created), ("Delivery", delivered), ("InitialFetch", fetched)):
        if value is not None:
            etree.SubElement(attributes, q(OSCIMETA, local)).text = _stamp(value)
    originators = etree.SubElement(meta, q(OSCIMETA, "Originators"))
    originators.append(party("Author", author))
    destinations = etree.SubElement(meta, q(OSCIMETA, "Destinations"))
    destinations.append(party("Reader", reader))
    ident = etree.SubElement(meta, q(OSCIMETA, "MsgIdentification"))
    etree.SubElement(ident, q(WSA, "MessageID")).text = message_id_for(nachrichten_uuid)
    qualifier = etree.SubElement(meta, q(OSCIMETA, "Qualifier"))
    namespace = info.namespace or "urn:amtsbote:unknown"
    etree.SubElement(qualifier, q(OSCIMETA, "Service")).text = namespace
    scenario = etree.SubElement(qualifier, q(OSCIMETA, "BusinessScenario"))
    etree.SubElement(
        scenario, q(OSCIMETA, "Undefined")
    ).text = f"{info.standard or 'unknown'} {info.version or ''}".strip()
    mtype = etree.SubElement(
        qualifier,
        q(OSCIMETA, "MessageType"),
        listURI=f"{_MESSAGE_TYPE_LIST}:{(info.standard or 'unknown').lower()}",
        listVersionID=info.version or "1",
        payloadSchema=namespace,
    )
    etree.SubElement(mtype, "code").text = info.message_type or info.root
    etree.SubElement(mtype, "name").text = info.root
    if size:
        etree.SubElement(meta, q(OSCIMETA, "MsgSize")).text = str(size)
    return meta
