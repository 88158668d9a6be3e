"""amtsbote Rückmeldung 1.0: the answer of a consulted agency (model, build, parse).

Root ``amt.rueckmeldung.0900`` in ``urn:amtsbote:schemata:rueckmeldung:1.0``: Nachrichtenkopf,
``bezug`` (the nachrichtenUUID answered), ``vorgang`` (the asking agency's case id), ``ergebnis``
(code from ``urn:amtsbote:codeliste:rueckmeldung-ergebnis``) and an optional ``bemerkung``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from ..code import Code
from ..exceptions import XoevError
from ..nachrichtenkopf import Nachrichtenkopf, read_code, write_code, write_text

__all__ = [
    "ERGEBNIS_LIST_URI",
    "MESSAGE_TYPE",
    "NAMESPACE",
    "ROOT",
    "SCHEMA_PATH",
    "Rueckmeldung",
    "RueckmeldungError",
    "build",
    "parse",
]

NAMESPACE = "urn:amtsbote:schemata:rueckmeldung:1.0"
MESSAGE_TYPE = "0900"
ROOT = "amt.rueckmeldung.0900"
ERGEBNIS_LIST_URI = "urn:amtsbote:codeliste:rueckmeldung-ergebnis"
SCHEMA_PATH = Path(__file__).parent / "schema" / "1.0" / "rueckmeldung.xsd"
CODELIST_PATH = Path(__file__).parent / "codelists" / "rueckmeldung-ergebnis_1.0.xml"


class RueckmeldungError(XoevError, ValueError):
    """A Rückmeldung cannot be read or built; says what and where (an
    :class:`~xoev.exceptions.XoevError`, also a ValueError)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rueckmeldung:
    nachrichtenkopf: Nachrichtenkopf
    bezug: str
    ergebnis: Code
    vorgang: str | None = None
    bemerkung: str | None = None
    produkt: str = "amtsbote"
    produkthersteller: str = "amtsbote"
    produktversion: str | None = None

    @property
    def nachrichten_uuid(self) -> str:
        return self.nachrichtenkopf.nachrichten_uuid


def _q(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"


@cache
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser))


def build(msg: Rueckmeldung, *, validate: bool = True) -> bytes:
    """Model → XML bytes; validated against the XSD unless ``validate=False``."""
    root = etree.Element(_q(ROOT), nsmap={"rm": NAMESPACE})
    root.set("produkt", msg.produkt)
    root.set("produkthersteller", msg.produkthersteller)
    if msg.produktversion:
        root.set("produktversion", msg.produktversion)
    root.set("standard", "amtsbote-Rueckmeldung")
    root.set("version", "1.0")
    root.append(msg.nachrichtenkopf.to_element(NAMESPACE))
    write_text(root, NAMESPACE, "bezug", msg.bezug)
    if msg.vorgang is not None:
        write_text(root, NAMESPACE, "vorgang", msg.vorgang)
    write_code(root, NAMESPACE, "ergebnis", msg.ergebnis)
    if msg.bemerkung is not None:
        write_text(root, NAMESPACE, "bemerkung", msg.bemerkung)
    if validate:
        schema = _schema()
        if not schema.validate(root):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
            raise RueckmeldungError(f"{ROOT} {msg.nachrichten_uuid} is invalid: {errors}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse(data: bytes | etree._ElementTree | etree._Element) -> Rueckmeldung:
    """XML → model (strict: the document must be a valid Rückmeldung)."""
    if isinstance(data, bytes):
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise RueckmeldungError(f"not XML: {exc}") from exc
    elif isinstance(data, etree._ElementTree):
        root = data.getroot()
    else:
        root = data
    if root.tag != _q(ROOT):
        raise RueckmeldungError(f"not a Rückmeldung: root is {root.tag}, expected {_q(ROOT)}")
    schema = _schema()
    if not schema.validate(root):
        e = schema.error_log[0]
        raise RueckmeldungError(f"invalid Rückmeldung, line {e.line}: {e.message}")

    def text(local: str) -> str | None:
        el = root.find(_q(local))
        return el.text if el is not None else None

    ergebnis_el = root.find(_q("ergebnis"))
    assert ergebnis_el is not None  # schema-valid
    kopf_el = root.find(_q("nachrichtenkopf"))
    assert kopf_el is not None
    return Rueckmeldung(
        nachrichtenkopf=Nachrichtenkopf.from_element(kopf_el),
        bezug=text("bezug") or "",
        vorgang=text("vorgang"),
        ergebnis=read_code(ergebnis_el),
        bemerkung=text("bemerkung"),
        produkt=root.get("produkt", "amtsbote"),
        produkthersteller=root.get("produkthersteller", "amtsbote"),
        produktversion=root.get("produktversion"),
    )
