"""What a message says about itself: standard, version, message type, UUID, author and reader.

Two header shapes are read:

* the XÖV ``nachrichtenkopf`` (XGewerbeanzeige and most XÖV standards)::

      {ns}nachrichtenkopf/{ns}identifikation.nachricht/{ns}nachrichtenUUID
                                                      /{ns}nachrichtentyp/code
                                                      /{ns}erstellungszeitpunkt
      {ns}nachrichtenkopf/{ns}autor/{ns}behoerdenkennung/{ns}praefix/code
                                                        /{ns}kennung/code
      {ns}nachrichtenkopf/{ns}leser/…   (same as autor)

* the xdomea ``Kopf``: ``ProzessID``, ``Nachrichtentyp/code``, ``Erstellungszeitpunkt``,
  ``Absender``/``Empfaenger`` → ``Behoerdenkennung/Praefix/code`` and
  ``Behoerdenkennung/Behoerdenschluessel/code``.

``code`` children are unqualified (XÖV ``Code``). Nothing here validates; missing parts are None.

Message keys
    An XÖV message is keyed by its ``nachrichtenUUID``. xdomea's Kopf has none: its ``ProzessID`` is
    shared by every message of one process. An xdomea message is therefore keyed by
    :func:`xdomea_message_key` — ``uuid5(XDOMEA_KEY_NAMESPACE, f"{ProzessID}/{type code}")``, the
    ProzessID in lower case — which ``MessageInfo.nachrichten_uuid`` reports; the ProzessID itself
    is in ``MessageInfo.process_id``. A reply names the key of the message it answers in
    ``in_reply_to`` (:data:`XDOMEA_REPLY_TO`): 0502 and 0504 answer the 0501 of the same process,
    0505 the 0502, 0506 and 0507 the 0503. The keys are stable, so a redelivered message has the
    key it had the first time.
"""

from __future__ import annotations

import re
import uuid as _uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lxml import etree

from .namespaces import split_tag
from .parsing import ParserConfig, parse_xml
from .registry import SchemaRegistry, default_registry

__all__ = [
    "XDOMEA_KEY_NAMESPACE",
    "XDOMEA_REPLY_TO",
    "MessageInfo",
    "inspect_message",
    "message_ids",
    "type_from_root",
    "xdomea_message_key",
]

_TYPE_SUFFIX = re.compile(r"\.(\d{4})$")

XDOMEA_KEY_NAMESPACE = _uuid.uuid5(_uuid.NAMESPACE_URL, "urn:amtsbote:xdomea:message-key")
"""UUIDv5 namespace of xdomea message keys, ``15dc65e3-c2e7-57a3-8d4a-97e660317df7`` (fixed once:
changing it would re-key every journal; a test pins the value)."""

XDOMEA_REPLY_TO: Mapping[str, str] = {
    "0502": "0501",  # Bewertungsverzeichnis answers the Anbietung
    "0504": "0501",  # Anbietung empfangen
    "0505": "0502",  # Bewertung empfangen
    "0506": "0503",  # Aussonderung importiert (archive signatures)
    "0507": "0503",  # Aussonderung empfangen
}
"""xdomea reply type → the type of the message of the same process it answers."""


def xdomea_message_key(prozess_id: str, message_type: str) -> str:
    """The key of an xdomea message: ``uuid5(XDOMEA_KEY_NAMESPACE, "{prozessid}/{type}")`` with the
    ProzessID stripped and in lower case and the four-digit type code (``0501``)."""
    return str(_uuid.uuid5(XDOMEA_KEY_NAMESPACE, f"{prozess_id.strip().lower()}/{message_type}"))


@dataclass(frozen=True, slots=True)
class MessageInfo:
    namespace: str | None
    standard: str | None
    version: str | None
    root: str
    """Local name of the root element, e.g. ``abh.gewerbemeldung.0500``."""
    message_type: str | None
    """Message type code, e.g. ``0500``."""
    nachrichten_uuid: str | None
    """The message's key: its ``nachrichtenUUID``; for xdomea (whose Kopf has none)
    :func:`xdomea_message_key` of ProzessID and type, None when either is missing."""
    erstellungszeitpunkt: str | None
    author: str | None
    """Behördenkennung of the author as ``praefix:kennung``."""
    reader: str | None
    """Behördenkennung of the reader/recipient as ``praefix:kennung``."""
    in_reply_to: str | None = None
    """The key of the message this one answers: for standards that name it
    (``StandardVersion.in_reply_to_element``, e.g. a Rückmeldung's ``bezug``), and for xdomea
    replies (:data:`XDOMEA_REPLY_TO`) the key of the answered message of the same process."""
    process_id: str | None = None
    """xdomea: the Kopf's ``ProzessID`` as written (one per process). None for other standards."""

    @property
    def prozess_id(self) -> str | None:
        """``process_id`` under the name the journal reads (``MessageMeta.from_info``): with it
        present the journal keeps ``nachrichten_uuid`` and ``in_reply_to`` as given here."""
        return self.process_id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _children(element: etree._Element | None) -> dict[Any, etree._Element]:
    """Children by tag, first occurrence wins (one pass; the hot path reads several)."""
    found: dict[Any, etree._Element] = {}
    if element is not None:
        for child in element:
            if child.tag not in found:
                found[child.tag] = child
    return found


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _code(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    for child in element:
        if child.tag == "code":
            return _text(child)
    return None


def _kennung(party: etree._Element | None, q: str, *, xdomea: bool) -> str | None:
    if party is None:
        return None
    if xdomea:
        bk = _children(_children(party).get(f"{q}Behoerdenkennung"))
        praefix = _code(bk.get(f"{q}Praefix"))
        kennung = _code(bk.get(f"{q}Behoerdenschluessel"))
    else:
        bk = _children(_children(party).get(f"{q}behoerdenkennung"))
        praefix = _code(bk.get(f"{q}praefix"))
        kennung = _code(bk.get(f"{q}kennung"))
    if praefix is None and kennung is None:
        return None
    return f"{praefix or ''}:{kennung or ''}"


def _first(element: etree._Element | None, tag: str) -> etree._Element | None:
    if element is None:
        return None
    for child in element.iterchildren(tag):
        return child
    return None


def message_ids(root: etree._Element, namespace: str | None) -> tuple[str | None, str | None]:
    """``(nachrichtenUUID or xdomea ProzessID, message type code)`` — the lean subset of
    :func:`inspect_message` that :func:`xoev.validate` needs on its hot path."""
    q = f"{{{namespace}}}" if namespace else ""
    head = _first(root, f"{q}nachrichtenkopf")
    if head is not None:
        ident = _first(head, f"{q}identifikation.nachricht")
        uuid = _text(_first(ident, f"{q}nachrichtenUUID"))
        return uuid, _text(_first(_first(ident, f"{q}nachrichtentyp"), "code"))
    kopf = _first(root, f"{q}Kopf")
    if kopf is not None:
        uuid = _text(_first(kopf, f"{q}ProzessID"))
        return uuid, _text(_first(_first(kopf, f"{q}Nachrichtentyp"), "code"))
    return None, None


def type_from_root(local: str) -> str | None:
    """``abh.gewerbemeldung.0500`` → ``0500`` (XÖV root names end in the message type code)."""
    match = _TYPE_SUFFIX.search(local)
    return match.group(1) if match else None


def inspect_message(
    message: etree._ElementTree | etree._Element | bytes,
    *,
    registry: SchemaRegistry | None = None,
    config: ParserConfig | None = None,
) -> MessageInfo:
    """Read the header of a message (bytes are parsed with the hardened parser).

    ``registry`` (default: the process-wide one) names standard and version from the namespace;
    for unknown namespaces the root's ``standard`` and ``version`` attributes (XÖV convention) are
    used when present. Nothing is validated; missing parts are None.
    """
    if isinstance(message, bytes | bytearray):
        message = parse_xml(bytes(message), config=config)
    root = message.getroot() if isinstance(message, etree._ElementTree) else message
    namespace, local = split_tag(root.tag)
    q = f"{{{namespace}}}" if namespace else ""

    sv = (registry or default_registry()).get(namespace)
    standard = sv.standard if sv else root.get("standard")
    version = sv.version if sv else root.get("version")

    uuid = created = type_code = author = reader = process_id = None
    top = _children(root)
    head = top.get(f"{q}nachrichtenkopf")
    if head is not None:
        parts = _children(head)
        ident = _children(parts.get(f"{q}identifikation.nachricht"))
        uuid = _text(ident.get(f"{q}nachrichtenUUID"))
        type_code = _code(ident.get(f"{q}nachrichtentyp"))
        created = _text(ident.get(f"{q}erstellungszeitpunkt"))
        author = _kennung(parts.get(f"{q}autor"), q, xdomea=False)
        reader = _kennung(parts.get(f"{q}leser"), q, xdomea=False)
    elif (kopf := top.get(f"{q}Kopf")) is not None:
        parts = _children(kopf)
        process_id = _text(parts.get(f"{q}ProzessID"))
        type_code = _code(parts.get(f"{q}Nachrichtentyp"))
        created = _text(parts.get(f"{q}Erstellungszeitpunkt"))
        author = _kennung(parts.get(f"{q}Absender"), q, xdomea=True)
        reader = _kennung(parts.get(f"{q}Empfaenger"), q, xdomea=True)

    in_reply_to = None
    if sv is not None and sv.in_reply_to_element:
        in_reply_to = _text(top.get(f"{q}{sv.in_reply_to_element}"))

    if type_code is None:
        mt = sv.message_type_for_root(local) if sv else None
        type_code = mt.code if mt is not None else type_from_root(local)

    if process_id is not None and type_code is not None:
        uuid = xdomea_message_key(process_id, type_code)
        answered = XDOMEA_REPLY_TO.get(type_code)
        if answered is not None and in_reply_to is None:
            in_reply_to = xdomea_message_key(process_id, answered)

    return MessageInfo(
        namespace=namespace,
        standard=standard,
        version=version,
        root=local,
        message_type=type_code,
        nachrichten_uuid=uuid,
        erstellungszeitpunkt=created,
        author=author,
        reader=reader,
        in_reply_to=in_reply_to,
        process_id=process_id,
    )
