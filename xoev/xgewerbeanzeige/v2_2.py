# xml(...) returns dataclasses.field(...) with the XÖV name as metadata, which ruff cannot know:
# ruff: noqa: RUF009
"""XGewerbeanzeige 2.2: typed model, reading (:func:`parse`), writing (:func:`build`), schema check
(:func:`schema_findings`) and data minimisation per recipient (:func:`project`, :func:`build_for`).

Model overview (field order = schema order; XÖV names in the ``xml(...)`` declarations)::

    Gewerbemeldung            root <praefix>.gewerbemeldung.<code>, attributes produkt …
    ├── nachrichtenkopf       xoev.nachrichtenkopf.Nachrichtenkopf
    ├── berichtszeitraum?
    └── saetze: Satz+         satz
        └── meldung           Anmeldung | Ummeldung | Abmeldung   (common part: Meldung)
            ├── satzErstellung, ereigniszeitpunkt?, autor?, istKorrektur, gemeindeSchluessel, …
            ├── gewerbe: Gewerbe
            │   ├── betrieb: Betrieb, anzahl…?, betriebArt: BetriebArt, niederlassungArt, …
            │   ├── handwerkskarte?: Handwerkskarte, anschrift: Anschrift, erreichbarkeit*,
            │   │   hauptniederlassung?: Hauptniederlassung
            │   └── beteiligtePerson*: BeteiligtePerson (… staatangehoerigkeiten?,
            │       anschrift?, erreichbarkeit*, aufenthaltstitel?: Aufenthaltstitel)
            ├── gueltigAb, datumMeldung, taetigkeitenGesamt: Taetigkeiten
            └── Anmeldung: grundAnmeldungSchluessel | Ummeldung: anschriftAlt?,
                bisherigeUnfallversicherung?, gruendeUmmeldung? | Abmeldung: kuenftigesGewerbe?,
                grundAbmeldungSchluessel?, ursacheAbmeldungSchluessel?

``familienname`` is optional in the model because the statistics profile carries no names; the
schema of the full profile requires it. ``build`` validates against the shipped XSD and the
business rules (errors only) unless ``validate=False``.

Validation on the hot path (one ``build`` per recipient and case): the XSD check of ``build`` runs
libxml2 (``lxml.etree.XMLSchema``, compiled once per process, about a hundredth of the cost of
xmlschema). Only when libxml2 finds the document invalid are the complete findings for the
:class:`BuildError` collected with xmlschema (:func:`schema_findings`, which also reports defects
below the first one of an element); xmlschema is imported on first use only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lxml import etree

from .. import xsd
from ..code import Code
from ..exceptions import SchemaCompileError
from ..findings import Finding, Severity
from ..nachrichtenkopf import (
    Anschrift,
    Behoerde,
    Behoerdenkennung,
    Erreichbarkeit,
    IdentifikationNachricht,
    Nachrichtenkopf,
    element_path,
)
from ..parsing import parse_xml
from . import rules_v2_2
from ._binding import Context, read_fields, specs, write_fields, xml
from .exceptions import (
    BuildError,
    NotXGewerbeanzeigeError,
    StructureError,
    TableError,
    UnknownMessageTypeError,
)
from .message_types import NAMESPACE, NachrichtenTyp, datengruppen, nachrichtentyp, nachrichtentypen

if TYPE_CHECKING:
    import xmlschema

__all__ = [
    "NAMESPACE",
    "PREFIX",
    "SCHEMA_PATH",
    "Abmeldung",
    "Anmeldung",
    "Anschrift",
    "Aufenthaltstitel",
    "Behoerde",
    "Behoerdenkennung",
    "BeteiligtePerson",
    "Betrieb",
    "BetriebArt",
    "Erreichbarkeit",
    "Geburtsdatum",
    "Gewerbe",
    "Gewerbemeldung",
    "GruendeUmmeldung",
    "Handwerkskarte",
    "Hauptniederlassung",
    "IdentifikationNachricht",
    "KuenftigesGewerbe",
    "Meldung",
    "Nachrichtenkopf",
    "Produktangaben",
    "Satz",
    "Schwerpunkt",
    "Staatsangehoerigkeiten",
    "Taetigkeit",
    "Taetigkeiten",
    "Unfallversicherung",
    "WeitereTaetigkeiten",
    "build",
    "build_for",
    "parse",
    "project",
    "project_meldung",
    "schema_findings",
    "to_element",
]

PREFIX = "xga"
"""Namespace prefix written by :func:`build` (as in the KoSIT messages)."""
SCHEMA_PATH = Path(__file__).parent / "schema" / "2.2" / "xgewerbeanzeige.xsd"

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_ROOT_ATTRIBUTES = ("produkt", "produkthersteller", "produktversion", "standard", "version", "test")


# =========================================================================== model


@dataclass(frozen=True, slots=True)
class Geburtsdatum:
    """``geburtsdatum`` in the form TTMMJJJJ; ``00`` for an unknown day or month (→ ``None``)."""

    jahr: int
    monat: int | None = None
    tag: int | None = None

    @classmethod
    def from_text(cls, text: str) -> Geburtsdatum:
        if len(text) != 8 or not text.isdigit():
            raise ValueError("expected TTMMJJJJ (8 digits)")
        tag, monat, jahr = int(text[:2]), int(text[2:4]), int(text[4:])
        if tag > 31 or monat > 12:
            raise ValueError("day above 31 or month above 12")
        return cls(jahr=jahr, monat=monat or None, tag=tag or None)

    @classmethod
    def from_date(cls, value: date) -> Geburtsdatum:
        return cls(jahr=value.year, monat=value.month, tag=value.day)

    def __str__(self) -> str:
        return f"{self.tag or 0:02d}{self.monat or 0:02d}{self.jahr:04d}"

    @property
    def datum(self) -> date | None:
        """The calendar date if day and month are known and form a real date, else ``None``."""
        if self.tag is None or self.monat is None:
            return None
        try:
            return date(self.jahr, self.monat, self.tag)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Betrieb:
    id: str | None = xml("ID", None)
    geschaeftsbezeichnung: str | None = xml("geschaeftsbezeichnung", None)
    eingetragener_name: str | None = xml("eingetragenerName", None)
    eintragung_nr: str | None = xml("eintragungNr", None)
    eintragung_ort: str | None = xml("eintragungOrt", None)
    eintragung_plz: str | None = xml("eintragungPLZ", None)
    eintragung_art: Code | None = xml("eintragungArt", None)
    gericht_schluessel: Code | None = xml("gerichtSchluessel", None)
    rechtsform_schluessel: Code = xml("rechtsformSchluessel")


@dataclass(frozen=True, slots=True, kw_only=True)
class BetriebArt:
    """Each a Code of list janein (``0``/``1``)."""

    industrie: Code = xml("industrie")
    handwerk: Code = xml("handwerk")
    handel: Code = xml("handel")
    sonstiges: Code = xml("sonstiges")

    @classmethod
    def aus(
        cls,
        *,
        industrie: bool = False,
        handwerk: bool = False,
        handel: bool = False,
        sonstiges: bool = False,
    ) -> BetriebArt:
        def jn(flag: bool) -> Code:
            return Code("1" if flag else "0")

        return cls(
            industrie=jn(industrie),
            handwerk=jn(handwerk),
            handel=jn(handel),
            sonstiges=jn(sonstiges),
        )

    @property
    def ist_handwerk(self) -> bool:
        return self.handwerk.code == "1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Handwerkskarte:
    status: Code = xml("status")
    ausgestellt_am: date | None = xml("ausgestelltAm", None)
    ausgestellt_von_name: str | None = xml("ausgestelltVonName", None)
    ausgestellt_von_plz: str | None = xml("ausgestelltVonPLZ", None)
    ausgestellt_von_ort: str | None = xml("ausgestelltVonOrt", None)
    ausgestellt_von_schluessel: Code | None = xml("ausgestelltVonSchluessel", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hauptniederlassung:
    anschrift: Anschrift | None = xml("anschrift", None)
    erreichbarkeit: tuple[Erreichbarkeit, ...] = xml("erreichbarkeit", ())


@dataclass(frozen=True, slots=True, kw_only=True)
class Staatsangehoerigkeiten:
    """``staatangehoerigkeiten`` (sic, the XÖV name): Destatis Staatsangehörigkeitsschlüssel."""

    schluessel: tuple[Code, ...] = xml("staatsangehoerigkeitSchluessel", min=1)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.schluessel)


@dataclass(frozen=True, slots=True, kw_only=True)
class Aufenthaltstitel:
    status: Code = xml("status")
    ausgestellt_am: date | None = xml("ausgestelltAm", None)
    ausgestellt_von_name: str | None = xml("ausgestelltVonName", None)
    ausgestellt_von_plz: str | None = xml("ausgestelltVonPLZ", None)
    ausgestellt_von_ort: str | None = xml("ausgestelltVonOrt", None)
    gueltig_bis: date | None = xml("gueltigBis", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class BeteiligtePerson:
    person_funktion: Code = xml("personFunktion")
    doktorgrad: str | None = xml("doktorgrad", None)
    familienname: str | None = xml("familienname", None)
    vorname: str | None = xml("vorname", None)
    geschlecht: Code | None = xml("geschlecht", None)
    geburtsname: str | None = xml("geburtsname", None)
    geburtsdatum: Geburtsdatum | None = xml("geburtsdatum", None)
    geburtsort: str | None = xml("geburtsort", None)
    geburtsland: str | None = xml("geburtsland", None)
    staatsangehoerigkeiten: Staatsangehoerigkeiten | None = xml("staatangehoerigkeiten", None)
    anschrift: Anschrift | None = xml("anschrift", None)
    erreichbarkeit: tuple[Erreichbarkeit, ...] = xml("erreichbarkeit", ())
    aufenthaltstitel: Aufenthaltstitel | None = xml("aufenthaltstitel", None)

    def __repr__(self) -> str:  # personal data stays out of logs and tracebacks
        return f"BeteiligtePerson(person_funktion={self.person_funktion.code!r}, …)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Gewerbe:
    betrieb: Betrieb = xml("betrieb")
    anzahl_beteiligte: int | None = xml("anzahlBeteiligte", None)
    anzahl_vollzeit_beschaeftigte: int | None = xml("anzahlVollzeitBeschaeftigte", None)
    anzahl_teilzeit_beschaeftigte: int | None = xml("anzahlTeilzeitBeschaeftigte", None)
    betrieb_art: BetriebArt = xml("betriebArt")
    niederlassung_art: Code = xml("niederlassungArt")
    ist_reisegewerbe: Code = xml("istReisegewerbe")
    ist_nebenerwerb: Code = xml("istNebenerwerb")
    handwerkskarte: Handwerkskarte | None = xml("handwerkskarte", None)
    anschrift: Anschrift = xml("anschrift")
    erreichbarkeit: tuple[Erreichbarkeit, ...] = xml("erreichbarkeit", ())
    hauptniederlassung: Hauptniederlassung | None = xml("hauptniederlassung", None)
    beteiligte_personen: tuple[BeteiligtePerson, ...] = xml("beteiligtePerson", ())
    beteiligung_oeffentliche_hand: Code | None = xml("beteiligungOeffentlicheHand", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schwerpunkt:
    taetigkeit_schwerpunkt: str = xml("taetigkeitSchwerpunkt")
    taetigkeit_schluessel: str | None = xml("taetigkeitSchluessel", None)
    """WZ 2008 Unterklasse (five digits)."""
    stichwort: str | None = xml("stichwort", None)
    neu_ausgeuebt: Code | None = xml("neuAusgeuebt", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Taetigkeit:
    taetigkeit_schluessel: str = xml("taetigkeitSchluessel")
    stichwort: str | None = xml("stichwort", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class WeitereTaetigkeiten:
    taetigkeiten_zusammengefasst: str | None = xml("taetigkeitenZusammengefasst", None)
    taetigkeiten: tuple[Taetigkeit, ...] = xml("taetigkeit", ())


@dataclass(frozen=True, slots=True, kw_only=True)
class Taetigkeiten:
    schwerpunkt: Schwerpunkt = xml("schwerpunkt")
    weitere_taetigkeiten: WeitereTaetigkeiten | None = xml("weitereTaetigkeiten", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unfallversicherung:
    traeger: Code = xml("traeger")
    mitgliedsnummer: str | None = xml("mitgliedsnummer", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class GruendeUmmeldung:
    schluessel: tuple[Code, ...] = xml("grundUmmeldungSchluessel", min=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class KuenftigesGewerbe:
    name_firma_gewerbetreibender: str | None = xml("nameFirmaGewerbetreibender", None)
    anschrift: Anschrift | None = xml("anschrift", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Meldung:
    """What Anmeldung, Ummeldung and Abmeldung share (the first part of each)."""

    satz_erstellung: datetime = xml("satzErstellung")
    ereigniszeitpunkt: datetime | None = xml("ereigniszeitpunkt", None)
    autor: Behoerde | None = xml("autor", None)
    ist_korrektur: Code = xml("istKorrektur")
    gemeinde_schluessel: Code = xml("gemeindeSchluessel")
    gemeinde_meldung_nr: str | None = xml("gemeindeMeldungNr", None)
    gewerbebetrieb_id: str = xml("gewerbebetriebID")
    uuid: str = xml("uuid")
    gewerbe: Gewerbe = xml("gewerbe")
    gueltig_ab: date = xml("gueltigAb")
    datum_meldung: date = xml("datumMeldung")
    taetigkeiten_gesamt: Taetigkeiten = xml("taetigkeitenGesamt")

    XML_TAG: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Anmeldung(Meldung):
    grund_anmeldung_schluessel: Code = xml("grundAnmeldungSchluessel")

    XML_TAG: ClassVar[str] = "anmeldung"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ummeldung(Meldung):
    anschrift_alt: Anschrift | None = xml("anschriftAlt", None)
    """Previous address of the Betriebsstätte (on a move)."""
    bisherige_unfallversicherung: Unfallversicherung | None = xml(
        "bisherigeUnfallversicherung", None
    )
    gruende_ummeldung: GruendeUmmeldung | None = xml("gruendeUmmeldung", None)

    XML_TAG: ClassVar[str] = "ummeldung"


@dataclass(frozen=True, slots=True, kw_only=True)
class Abmeldung(Meldung):
    kuenftiges_gewerbe: KuenftigesGewerbe | None = xml("kuenftigesGewerbe", None)
    grund_abmeldung_schluessel: Code | None = xml("grundAbmeldungSchluessel", None)
    ursache_abmeldung_schluessel: Code | None = xml("ursacheAbmeldungSchluessel", None)

    XML_TAG: ClassVar[str] = "abmeldung"


@dataclass(frozen=True, slots=True, kw_only=True)
class Satz:
    meldung: Anmeldung | Ummeldung | Abmeldung = xml("meldung")


@dataclass(frozen=True, slots=True, kw_only=True)
class Gewerbemeldung:
    """One XGewerbeanzeige 2.2 message. ``nachrichtentyp`` is the code of the root element
    (``0500`` for ``abh.gewerbemeldung.0500``). ``skipped`` lists the XPaths of elements that a
    non-strict :func:`parse` skipped; it takes no part in equality and is never written."""

    nachrichtentyp: str
    produkt: str
    produkthersteller: str
    produktversion: str | None = None
    standard: str = "XGewerbeanzeige"
    version: str = "2.2"
    test: str | None = None
    nachrichtenkopf: Nachrichtenkopf = xml("nachrichtenkopf")
    berichtszeitraum: str | None = xml("berichtszeitraum", None)
    saetze: tuple[Satz, ...] = xml("satz", min=1)
    skipped: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        nachrichtentyp(self.nachrichtentyp)  # raises UnknownTableEntryError

    @property
    def message_type(self) -> NachrichtenTyp:
        return nachrichtentyp(self.nachrichtentyp)

    @property
    def root(self) -> str:
        return self.message_type.root

    @property
    def nachrichten_uuid(self) -> str:
        return self.nachrichtenkopf.nachrichten_uuid

    @property
    def meldungen(self) -> tuple[Anmeldung | Ummeldung | Abmeldung, ...]:
        return tuple(s.meldung for s in self.saetze)


@dataclass(frozen=True, slots=True)
class Produktangaben:
    """Root attributes naming the producing software (``produkt``, ``produkthersteller``,
    ``produktversion``) and the optional ``test`` marker used by :func:`build_for`."""

    produkt: str = "amtsbote"
    produkthersteller: str = "amtsbote"
    produktversion: str | None = None
    test: str | None = None

    @classmethod
    def default(cls) -> Produktangaben:
        return cls(produktversion=_product_version())


@cache
def _product_version() -> str | None:
    try:
        return metadata.version("amtsbote")
    except metadata.PackageNotFoundError:
        return None


# =========================================================================== reading


def _error_factory(source: str | None) -> Any:
    def make(reason: str, element: etree._Element) -> Exception:
        name = element.tag.rpartition("}")[2] if isinstance(element.tag, str) else "node()"
        return StructureError(
            reason,
            element=name,
            xpath=element_path(element),
            line=element.sourceline,
            source=source,
        )

    return make


def _parse_bytes(data: bytes, source: str | None) -> etree._ElementTree:
    """Hardened parse (:func:`xoev.parsing.parse_xml`): no DTD, entities or network."""
    return parse_xml(data, source=source)


def parse(
    data: bytes | etree._ElementTree | etree._Element,
    *,
    strict: bool = True,
    source: str | None = None,
) -> Gewerbemeldung:
    """Read an XGewerbeanzeige 2.2 message into the model.

    ``strict=True``: any unknown or misplaced element or attribute is a :class:`StructureError`
    (element, line, XPath). ``strict=False``: unknown elements are skipped and listed in
    ``Gewerbemeldung.skipped``; missing required elements are errors in both modes. A root outside
    the 2.2 namespace raises :class:`NotXGewerbeanzeigeError`, an unknown root in it
    :class:`UnknownMessageTypeError`. ``source`` names the input in error messages.
    """
    if isinstance(data, bytes | bytearray):
        root = _parse_bytes(bytes(data), source).getroot()
    elif isinstance(data, etree._ElementTree):
        root = data.getroot()
    else:
        root = data
    qname = etree.QName(root)
    if qname.namespace != NAMESPACE:
        raise NotXGewerbeanzeigeError(
            qname.localname, qname.namespace, NAMESPACE, source=source, line=root.sourceline
        )
    try:
        typ = nachrichtentyp(qname.localname)
    except KeyError:
        raise UnknownMessageTypeError(
            qname.localname,
            [t.root for t in nachrichtentypen()],
            source=source,
            line=root.sourceline,
        ) from None
    error = _error_factory(source)
    attrs: dict[str, Any] = {}
    for name, value in root.attrib.items():
        if name.startswith(f"{{{_XSI}}}"):
            continue  # xsi:schemaLocation and the like carry no message content
        if name not in _ROOT_ATTRIBUTES:
            if strict:
                raise error(f"unexpected attribute {name} on {qname.localname}", root)
            continue
        attrs[name] = value
    for required in ("produkt", "produkthersteller"):
        if required not in attrs:
            raise error(f"required attribute {required} missing on {qname.localname}", root)
    if strict:
        for name, fixed in (("standard", "XGewerbeanzeige"), ("version", "2.2")):
            if attrs.get(name, fixed) != fixed:
                raise error(f"attribute {name} must be {fixed!r}, not {attrs[name]!r}", root)
    ctx = Context(namespace=NAMESPACE, strict=strict, error=error, skipped=[])
    values = read_fields(Gewerbemeldung, root, ctx)
    return Gewerbemeldung(nachrichtentyp=typ.code, skipped=tuple(ctx.skipped), **attrs, **values)


# =========================================================================== writing


def to_element(msg: Gewerbemeldung) -> etree._Element:
    """The message as an lxml root element (prefix ``xga``), without validation."""
    root = etree.Element(f"{{{NAMESPACE}}}{msg.root}", nsmap={PREFIX: NAMESPACE})
    for name in _ROOT_ATTRIBUTES:
        value = getattr(msg, name)
        if value is not None:
            root.set(name, value)
    return write_fields(msg, root, NAMESPACE)


@cache
def _schema() -> xmlschema.XMLSchema:
    """The shipped XSD for xmlschema, compiled once (no network: xmlschema may load local files
    only). Imported here, not at module level: the valid path of :func:`build` never needs it."""
    import xmlschema

    return xmlschema.XMLSchema(str(SCHEMA_PATH), allow="local")


@cache
def _fast_schema() -> xsd.CompiledSchema:
    """The shipped XSD for libxml2, compiled once: the validity check of :func:`build`. The
    schema is parsed without network, DTD or entity resolution; a shipped schema that does not
    compile raises :class:`xoev.exceptions.SchemaCompileError` (path and libxml2's reason)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise SchemaCompileError(str(SCHEMA_PATH), str(exc)) from exc
    return xsd.CompiledSchema(schema, path=str(SCHEMA_PATH), origin="built-in")


def _xsd_rule(error: Exception) -> str:
    name = type(error).__name__.removeprefix("XMLSchema").removesuffix("Error")
    return f"xsd:{name}"


def _clean(text: str) -> str:
    return text.replace(f"{{{NAMESPACE}}}", f"{PREFIX}:").strip()


def schema_findings(data: bytes | etree._ElementTree) -> list[Finding]:
    """Validate against the shipped XSD; every violation as a :class:`Finding` (``xsd:…``), in
    document order. Unlike libxml2, which stops at the first content error of an element,
    xmlschema also reports defects below it (both defects of the KoSIT invalid message)."""
    tree = _parse_bytes(data, None) if isinstance(data, bytes) else data
    findings: list[Finding] = []
    for error in _schema().iter_errors(tree):
        reason = error.reason or error.message
        elem = error.elem
        line = getattr(elem, "sourceline", None) if elem is not None else None
        xpath = None
        if isinstance(elem, etree._Element):
            xpath = element_path(elem)
        findings.append(
            Finding(
                severity=Severity.ERROR,
                message=_clean(reason),
                rule=_xsd_rule(error),
                line=line,
                xpath=xpath or error.path,
            )
        )
    findings.sort(key=lambda f: (f.line or 0, f.xpath or ""))
    return findings


def _build_errors(tree: etree._ElementTree) -> list[Finding]:
    """What keeps ``tree`` from being sent: XSD violations, then business-rule errors.

    libxml2 decides validity (fast). Only for an invalid document are the XSD findings collected
    with xmlschema (:func:`schema_findings`: complete, in document order); should xmlschema find
    nothing where libxml2 did, libxml2's own findings (:mod:`xoev.xsd`) are reported instead, so
    an invalid document is never let through."""
    compiled = _fast_schema()
    valid, entries = compiled.validate(tree)
    findings: list[Finding] = []
    if not valid:
        findings = schema_findings(tree) or xsd.schema_findings(compiled, tree, entries)
    findings += [f for f in rules_v2_2.check_rules(tree) if f.severity is Severity.ERROR]
    return findings


def build(msg: Gewerbemeldung, *, validate: bool = True) -> bytes:
    """The message as UTF-8 XML bytes with declaration. With ``validate`` (the default) the result
    is checked against the shipped XSD and the business rules; any error raises
    :class:`BuildError` with the findings and nothing is returned. ``validate=False`` is the
    explicit opt-out (e.g. to produce a deliberately invalid test message).

    The XSD check uses libxml2 (compiled once, cheap enough for one call per recipient); the full
    findings of an invalid message come from :func:`schema_findings` (see :func:`_build_errors`).
    A shipped XSD that does not compile (a packaging defect) raises
    :class:`xoev.exceptions.SchemaCompileError`.
    """
    root = to_element(msg)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    if validate:
        findings = _build_errors(_parse_bytes(data, None))
        if findings:
            raise BuildError(findings, message_type=msg.root, nachrichten_uuid=msg.nachrichten_uuid)
    return data


# =========================================================================== data minimisation


def _strip(obj: Any, path: tuple[str, ...]) -> Any:
    spec = next((s for s in specs(type(obj)) if s.xml == path[0]), None)
    if spec is None:
        return obj  # this kind of Meldung has no such element
    value = getattr(obj, spec.attr)
    if len(path) == 1:
        if spec.required:
            raise TableError(
                "types_v2_2.yaml",
                "/".join(path),
                f"element {spec.xml} is required and cannot be left out",
            )
        new: Any = () if spec.repeated else None
    elif value is None:
        return obj
    elif spec.repeated:
        new = tuple(_strip(v, path[1:]) for v in value)
    else:
        new = _strip(value, path[1:])
    return replace(obj, **{spec.attr: new})


def project_meldung(
    meldung: Anmeldung | Ummeldung | Abmeldung, message_type: str | NachrichtenTyp
) -> Anmeldung | Ummeldung | Abmeldung:
    """A copy of one Meldung without the data groups ``message_type`` does not carry."""
    typ = nachrichtentyp(message_type)
    for name, gruppe in datengruppen().items():
        if name in typ.datengruppen:
            continue
        for pfad in gruppe.pfade:
            meldung = _strip(meldung, pfad)
    return meldung


def _kopf_for(kopf: Nachrichtenkopf, typ: NachrichtenTyp) -> Nachrichtenkopf:
    old = kopf.identifikation.nachrichtentyp
    if old.code == typ.code:
        return kopf
    return replace(
        kopf,
        identifikation=replace(
            kopf.identifikation,
            nachrichtentyp=Code(
                typ.code, list_uri=old.list_uri, list_version_id=old.list_version_id
            ),
        ),
    )


def project(
    msg: Gewerbemeldung,
    message_type: str | NachrichtenTyp,
    *,
    kopf: Nachrichtenkopf | None = None,
) -> Gewerbemeldung:
    """A copy of ``msg`` for ``message_type`` (code, root name or prefix): root element and
    ``nachrichtentyp`` of that type, every Satz stripped of the data groups the type does not
    carry (types_v2_2.yaml). ``kopf`` replaces the header (the recipient's ``leser``, a new
    UUID); its ``nachrichtentyp`` code is set to the type's code."""
    typ = nachrichtentyp(message_type)
    return replace(
        msg,
        nachrichtentyp=typ.code,
        nachrichtenkopf=_kopf_for(kopf or msg.nachrichtenkopf, typ),
        saetze=tuple(Satz(meldung=project_meldung(s.meldung, typ)) for s in msg.saetze),
        skipped=(),
    )


Record = Gewerbemeldung | Satz | Meldung | Iterable[Satz | Meldung]


def build_for(
    record: Record,
    message_type: str | NachrichtenTyp,
    *,
    kopf: Nachrichtenkopf,
    produkt: Produktangaben | None = None,
) -> Gewerbemeldung:
    """The message for one recipient type from a full record (a Gewerbemeldung, one Satz or
    Meldung, or several): only the data the type carries, ``kopf`` as header (its
    ``nachrichtentyp`` set to the type's code), root attributes from ``produkt`` (default:
    :meth:`Produktangaben.default`). Use :func:`build` to get the bytes."""
    angaben = produkt or Produktangaben.default()
    if isinstance(record, Gewerbemeldung):
        saetze: tuple[Satz, ...] = record.saetze
    elif isinstance(record, Satz):
        saetze = (record,)
    elif isinstance(record, Meldung):
        saetze = (Satz(meldung=record),)  # type: ignore[arg-type]
    else:
        saetze = tuple(
            s if isinstance(s, Satz) else Satz(meldung=s)  # type: ignore[arg-type]
            for s in record
        )
    if not saetze:
        raise ValueError("build_for needs at least one Satz")
    typ = nachrichtentyp(message_type)
    full = Gewerbemeldung(
        nachrichtentyp=typ.code,
        produkt=angaben.produkt,
        produkthersteller=angaben.produkthersteller,
        produktversion=angaben.produktversion,
        test=angaben.test,
        nachrichtenkopf=kopf,
        saetze=saetze,
    )
    return project(full, typ)
