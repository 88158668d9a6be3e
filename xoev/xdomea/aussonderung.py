"""The xdomea Aussonderung (AussonderungDurchfuehren): messages 0501–0507 as typed models.

Four-stage process: the agency offers its closed records (0501 :class:`Anbietung`, the
Anbieteverzeichnis); the archive confirms receipt (0504 :class:`AnbietungEmpfangen`) and appraises
them (0502 :class:`Bewertungsverzeichnis`, one :class:`Bewertung` per record: A archivwürdig,
V vernichten/kassabel, B bewerten); the agency confirms the appraisal (0505
:class:`BewertungEmpfangen`) and hands over what is archivwürdig with its primary files (0503
:class:`Aussonderung`); the archive confirms receipt (0507 :class:`AussonderungEmpfangen`) and
import, with an archive signature per record (0506 :class:`ImportBestaetigung`). Two-stage: 0503
directly, then 0507 and 0506.

Versions: 3.0.0 and 3.1.0. Their content models for 0501–0507 and every type these use are the
same; only the namespace differs (3.1.0 changed message 0511). So the models, :func:`build` and
:func:`parse` are shared; a message's ``version`` picks the namespace and bundle from
:mod:`xoev.xdomea.v3_0_0` / :mod:`xoev.xdomea.v3_1_0`, and :func:`parse` reads the version from the
root namespace. ``tests/test_xdomea_aussonderung.py`` checks that the content models agree.

:func:`build` validates what it writes (XSD and codelists, ``validate=False`` to opt out) and raises
:class:`~xoev.xdomea.exceptions.BuildError` instead of returning an invalid message.
:func:`parse` validates too and is strict: whatever the models do not hold is a
:class:`~xoev.xdomea.exceptions.StructureError`; ``strict=False`` skips it and lists its XPaths in
``skipped``. ``parse(build(m)) == m``, and ``build(parse(x))`` is ``x`` after canonicalisation for a
message written in the form :func:`build` writes (see ``samples/``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from lxml import etree

from ..namespaces import split_tag
from ..parsing import ParserConfig, parse_xml
from ..registry import SchemaRegistry, default_registry
from ..validation import validate_tree
from . import v3_0_0, v3_1_0
from .exceptions import (
    BuildError,
    InvalidMessageError,
    ModelError,
    NotAussonderungError,
    StructureError,
)
from .reading import Reader
from .records import (
    Aussonderungsart,
    Dokument,
    Kopf,
    Record,
    Writer,
    check_uuid,
    iter_records,
    write_record,
)

__all__ = [
    "MESSAGE_CLASSES",
    "NAMESPACES",
    "Anbietung",
    "AnbietungEmpfangen",
    "AusgesondertesObjekt",
    "Aussonderung",
    "AussonderungEmpfangen",
    "AussonderungsNachricht",
    "Bewertung",
    "BewertungEmpfangen",
    "Bewertungsverzeichnis",
    "ImportBestaetigung",
    "build",
    "dateinamen",
    "parse",
    "records",
    "to_element",
]

NAMESPACES: dict[str, str] = {"3.0.0": v3_0_0.NAMESPACE, "3.1.0": v3_1_0.NAMESPACE}
"""xdomea version → root namespace."""
_VERSIONS = {ns: version for version, ns in NAMESPACES.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class AussonderungsNachricht:
    """Common part: the head, the xdomea version, and (after a lenient parse) what was skipped."""

    TYPE: ClassVar[str] = ""
    ROOT: ClassVar[str] = ""

    kopf: Kopf
    version: str = "3.0.0"
    skipped: tuple[str, ...] = field(default=(), compare=False)
    """XPaths of elements a ``parse(strict=False)`` did not read (not written by build)."""

    def __post_init__(self) -> None:
        if self.version not in NAMESPACES:
            raise ModelError(
                "version", f"xdomea {self.version} is not one of {', '.join(NAMESPACES)}"
            )

    @property
    def namespace(self) -> str:
        return NAMESPACES[self.version]


def _non_empty(values: tuple[object, ...], name: str) -> None:
    if not values:
        raise ModelError(name, "needs at least one entry")


@dataclass(frozen=True, slots=True, kw_only=True)
class Anbietung(AussonderungsNachricht):
    """0501: the records offered (Anbieteverzeichnis), metadata only as a rule."""

    TYPE: ClassVar[str] = "0501"
    ROOT: ClassVar[str] = "Aussonderung.Anbieteverzeichnis.0501"

    schriftgutobjekte: tuple[Record, ...]
    empfangsbestaetigung: bool = True

    def __post_init__(self) -> None:
        AussonderungsNachricht.__post_init__(self)
        _non_empty(self.schriftgutobjekte, "schriftgutobjekte")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bewertung:
    """One ``BewertetesObjekt`` of a 0502: the record's ID and its Aussonderungsart."""

    id: str
    aussonderungsart: Aussonderungsart

    def __post_init__(self) -> None:
        check_uuid(self.id, "Bewertung.id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bewertungsverzeichnis(AussonderungsNachricht):
    """0502: the archive's appraisal of the offered records."""

    TYPE: ClassVar[str] = "0502"
    ROOT: ClassVar[str] = "Aussonderung.Bewertungsverzeichnis.0502"

    bewertungen: tuple[Bewertung, ...]
    empfangsbestaetigung: bool = True

    def __post_init__(self) -> None:
        AussonderungsNachricht.__post_init__(self)
        _non_empty(self.bewertungen, "bewertungen")

    def ids(self, art: Aussonderungsart) -> tuple[str, ...]:
        """IDs appraised with ``art`` (e.g. ``Aussonderungsart.ARCHIVWUERDIG``), in order."""
        return tuple(b.id for b in self.bewertungen if b.aussonderungsart is art)


@dataclass(frozen=True, slots=True, kw_only=True)
class Aussonderung(AussonderungsNachricht):
    """0503: the records handed over, with their primary files (named by ``Dateiname``)."""

    TYPE: ClassVar[str] = "0503"
    ROOT: ClassVar[str] = "Aussonderung.Aussonderung.0503"

    schriftgutobjekte: tuple[Record, ...]
    rueckmeldung_archivkennung: bool = True
    empfangsbestaetigung: bool = True

    def __post_init__(self) -> None:
        AussonderungsNachricht.__post_init__(self)
        _non_empty(self.schriftgutobjekte, "schriftgutobjekte")
        names = dateinamen(self)
        if len(set(names)) != len(names):
            raise ModelError("schriftgutobjekte", "a Dateiname is used twice")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnbietungEmpfangen(AussonderungsNachricht):
    """0504: the archive confirms receipt of the 0501."""

    TYPE: ClassVar[str] = "0504"
    ROOT: ClassVar[str] = "Aussonderung.AnbietungEmpfangBestaetigen.0504"


@dataclass(frozen=True, slots=True, kw_only=True)
class BewertungEmpfangen(AussonderungsNachricht):
    """0505: the agency confirms receipt of the 0502."""

    TYPE: ClassVar[str] = "0505"
    ROOT: ClassVar[str] = "Aussonderung.BewertungEmpfangBestaetigen.0505"


@dataclass(frozen=True, slots=True, kw_only=True)
class AusgesondertesObjekt:
    """One ``AusgesondertesSGO`` of a 0506: import result and archive signature of a record."""

    id: str
    erfolgreich: bool
    archivkennung: str | None = None
    fehlermeldungen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_uuid(self.id, "AusgesondertesObjekt.id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportBestaetigung(AussonderungsNachricht):
    """0506: the archive confirms the import, per record, with its archive signature."""

    TYPE: ClassVar[str] = "0506"
    ROOT: ClassVar[str] = "Aussonderung.AussonderungImportBestaetigen.0506"

    ergebnisse: tuple[AusgesondertesObjekt, ...]

    def __post_init__(self) -> None:
        AussonderungsNachricht.__post_init__(self)
        _non_empty(self.ergebnisse, "ergebnisse")


@dataclass(frozen=True, slots=True, kw_only=True)
class AussonderungEmpfangen(AussonderungsNachricht):
    """0507: the archive confirms receipt of the 0503."""

    TYPE: ClassVar[str] = "0507"
    ROOT: ClassVar[str] = "Aussonderung.AussonderungEmpfangBestaetigen.0507"


MESSAGE_CLASSES: dict[str, type[AussonderungsNachricht]] = {
    cls.ROOT: cls
    for cls in (
        Anbietung,
        Bewertungsverzeichnis,
        Aussonderung,
        AnbietungEmpfangen,
        BewertungEmpfangen,
        ImportBestaetigung,
        AussonderungEmpfangen,
    )
}
"""Root element local name → model class."""


def records(msg: AussonderungsNachricht) -> Iterator[Record]:
    """Every record of a 0501/0503, depth first; none for the other types."""
    yield from iter_records(getattr(msg, "schriftgutobjekte", ()))


def dateinamen(msg: AussonderungsNachricht) -> tuple[str, ...]:
    """Every ``Dateiname`` of the message's documents, in document order."""
    return tuple(
        f.dateiname
        for r in records(msg)
        if isinstance(r, Dokument)
        for v in r.versionen
        for f in v.formate
    )


# --------------------------------------------------------------------------- build


def _bool(value: bool) -> str:
    return "true" if value else "false"


def to_element(msg: AussonderungsNachricht) -> etree._Element:
    w = Writer(msg.namespace)
    root = etree.Element(f"{{{w.ns}}}{msg.ROOT}", nsmap={"xdomea": w.ns})
    kopf = w.kopf(root, msg.kopf, msg.TYPE)
    if isinstance(msg, Aussonderung):
        w.el(kopf, "Importbestaetigung", "1")  # fixed="1" in NkAussonderungType
        w.el(kopf, "RueckmeldungArchivkennung", _bool(msg.rueckmeldung_archivkennung))
    if isinstance(msg, Anbietung | Bewertungsverzeichnis | Aussonderung):
        w.el(kopf, "Empfangsbestaetigung", _bool(msg.empfangsbestaetigung))
    if isinstance(msg, Anbietung | Aussonderung):
        for record in msg.schriftgutobjekte:
            write_record(w, root, record)
    elif isinstance(msg, Bewertungsverzeichnis):
        for b in msg.bewertungen:
            obj = w.el(root, "BewertetesObjekt")
            w.el(obj, "ID", b.id)
            w.code(w.el(obj, "Aussonderungsart"), "Aussonderungsart", b.aussonderungsart.value)
    elif isinstance(msg, ImportBestaetigung):
        for e in msg.ergebnisse:
            sgo = w.el(root, "AusgesondertesSGO")
            w.el(sgo, "IDSGO", e.id)
            w.el(sgo, "Erfolgreich", _bool(e.erfolgreich))
            for text in e.fehlermeldungen:
                w.el(sgo, "Fehlermeldung", text)
            w.opt(sgo, "Archivkennung", e.archivkennung)
    return root


def build(
    msg: AussonderungsNachricht, *, validate: bool = True, registry: SchemaRegistry | None = None
) -> bytes:
    """The message as UTF-8 XML with declaration. With ``validate`` (default) it is checked
    against the bundle of ``msg.version`` and the codelists (``registry``, default the
    process-wide one); any error raises :class:`BuildError` and nothing is returned."""
    data = etree.tostring(
        to_element(msg), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    if validate:
        report = validate_tree(
            parse_xml(data), source=msg.ROOT, registry=registry or default_registry()
        )
        errors = [f for f in report.findings if f.severity == "error"]
        if errors:
            raise BuildError(errors, message_type=msg.TYPE, version=msg.version)
    return data


# --------------------------------------------------------------------------- parse


def parse(
    data: bytes | etree._ElementTree | etree._Element,
    *,
    strict: bool = True,
    validate: bool = True,
    registry: SchemaRegistry | None = None,
    config: ParserConfig | None = None,
    source: str | None = None,
) -> AussonderungsNachricht:
    """Read a 0501–0507 message of xdomea 3.0.0 or 3.1.0 into its model.

    Bytes are parsed with the hardened parser (``config``). With ``validate`` (default) a message
    that fails its XSD or codelists raises :class:`InvalidMessageError` with the findings. A root
    that is no Aussonderung message raises :class:`NotAussonderungError`; structure problems a
    :class:`StructureError` (see the module docstring for ``strict``)."""
    if isinstance(data, bytes | bytearray):
        tree = parse_xml(bytes(data), config=config, source=source or "<bytes>")
        root = tree.getroot()
    elif isinstance(data, etree._ElementTree):
        root = data.getroot()
    else:
        root = data
    namespace, local = split_tag(root.tag)
    version = _VERSIONS.get(namespace or "")
    cls = MESSAGE_CLASSES.get(local)
    if version is None or cls is None:
        known = [f"{r} (xdomea {', '.join(NAMESPACES)})" for r in MESSAGE_CLASSES]
        raise NotAussonderungError(local, namespace, known, source=source, line=root.sourceline)
    if validate:
        report = validate_tree(
            etree.ElementTree(root), source=source or local, registry=registry or default_registry()
        )
        errors = [f for f in report.findings if f.severity == "error"]
        if errors:
            raise InvalidMessageError(errors, source=source)
    reader = Reader(NAMESPACES[version], strict=strict, source=source)
    top = reader.children(root)
    kopf_el = top.require("Kopf")
    head = reader.children(kopf_el)
    kopf, type_code = reader.kopf(head)
    if type_code != cls.TYPE:
        raise StructureError(
            f"Nachrichtentyp {type_code} does not match the root element {local}",
            element="Nachrichtentyp",
            line=kopf_el.sourceline,
            source=source,
        )
    fields: dict[str, object] = {}
    if cls is Aussonderung:
        reader.boolean(head.require("Importbestaetigung"))
        fields["rueckmeldung_archivkennung"] = reader.boolean(
            head.require("RueckmeldungArchivkennung")
        )
    if cls in (Anbietung, Bewertungsverzeichnis, Aussonderung):
        fields["empfangsbestaetigung"] = reader.boolean(head.require("Empfangsbestaetigung"))
    head.finish()
    if cls in (Anbietung, Aussonderung):
        fields["schriftgutobjekte"] = tuple(
            reader.schriftgutobjekt(e) for e in top.take_all("Schriftgutobjekt")
        )
    elif cls is Bewertungsverzeichnis:
        fields["bewertungen"] = tuple(
            _bewertung(reader, e) for e in top.take_all("BewertetesObjekt")
        )
    elif cls is ImportBestaetigung:
        fields["ergebnisse"] = tuple(
            _ergebnis(reader, e) for e in top.take_all("AusgesondertesSGO")
        )
    top.finish()
    try:
        return cls(kopf=kopf, version=version, skipped=tuple(reader.skipped), **fields)
    except ModelError as exc:
        raise StructureError(str(exc), element=local, line=root.sourceline, source=source) from exc


def _bewertung(reader: Reader, element: etree._Element) -> Bewertung:
    c = reader.children(element)
    rid = reader.uuid(c.require("ID"))
    art = reader.aussonderungsart(c.require("Aussonderungsart"))
    c.finish()
    return Bewertung(id=rid, aussonderungsart=art)


def _ergebnis(reader: Reader, element: etree._Element) -> AusgesondertesObjekt:
    c = reader.children(element)
    rid = reader.uuid(c.require("IDSGO"))
    ok = reader.boolean(c.require("Erfolgreich"))
    fehler = tuple(reader.text(e) or "" for e in c.take_all("Fehlermeldung"))
    kennung = reader.text(c.take("Archivkennung"))
    c.finish()
    return AusgesondertesObjekt(
        id=rid, erfolgreich=ok, archivkennung=kennung, fehlermeldungen=fehler
    )
