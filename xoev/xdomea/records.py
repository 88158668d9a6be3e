"""xdomea records (Schriftgutobjekte) and the message head, as typed models with read and write.

Shared by every xdomea version amtsbote knows (3.0.0, 3.1.0: the types used here have the same
content model in both, see :mod:`xoev.xdomea.aussonderung`). What is modelled, in schema order::

    Kopf        ProzessID, Nachrichtentyp, Erstellungszeitpunkt, Absender, Empfaenger (Kontakt),
                SendendesSystem?, Hinweis?
    Kontakt     Behoerdenkennung? (Behoerdenschluessel?, Praefix?), Institution? (Name?,
                Kurzbezeichnung?)
    Akte        Identifikation/ID, AllgemeineMetadaten? (Betreff = titel, Kennzeichen =
                aktenzeichen), ArchivspezifischeMetadaten?, Laufzeit?, Akteninhalt? (Dokument*,
                Vorgang*, Teilakte*)
    Vorgang     Identifikation/ID, AllgemeineMetadaten?, ArchivspezifischeMetadaten?, Laufzeit?,
                Dokument*, Teilvorgang*
    Dokument    Identifikation/ID, AllgemeineMetadaten?, DatumDesSchreibens?, Version*
                (Nummer, Format+ (Name, Version, Primaerdokument/Dateiname,
                DateinameOriginal?)) — xdomea gives a Dokument no Laufzeit
    ArchivspezifischeMetadaten  Aufbewahrungsdauer? (AnzahlJahre | Unbefristet),
                Aussonderungsart? (code A/B/V), Bewertungsvorschlag? (code A/V)

Reading (:mod:`xoev.xdomea.reading`) is strict by default: anything else is a
:class:`~xoev.xdomea.exceptions.StructureError` naming element, line and XPath; with
``strict=False`` elements not modelled are skipped and their XPaths collected. Code elements whose
list the schema fixes are written without ``listURI``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from lxml import etree

from ..code import Code
from ..nachrichtenkopf import format_date
from .exceptions import ModelError

__all__ = [
    "Akte",
    "Archivmetadaten",
    "Aussonderungsart",
    "Dokument",
    "Format",
    "Kontakt",
    "Kopf",
    "Laufzeit",
    "Record",
    "SendendesSystem",
    "Version",
    "Vorgang",
    "Writer",
    "check_uuid",
    "iter_records",
    "write_record",
]


class Aussonderungsart(StrEnum):
    """Codes of ``urn:xoev-de:xdomea:codeliste:aussonderungsart`` 1.0 (the Bewertung); the
    Bewertungsvorschlag list (``…:bewertungsvorschlag`` 1.0) has A and V only."""

    ARCHIVWUERDIG = "A"
    """Das Schriftgutobjekt ist archivwürdig."""
    BEWERTEN = "B"
    """Das Schriftgutobjekt ist zum Bewerten markiert."""
    VERNICHTEN = "V"
    """Das Schriftgutobjekt ist zum Vernichten markiert (kassabel)."""


def check_uuid(value: str, name: str) -> str:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise ModelError(name, "is not a UUID") from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Kontakt:
    behoerdenschluessel: Code | None = None
    praefix: Code | None = None
    institution: str | None = None
    kurzbezeichnung: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendendesSystem:
    instanz_id: str | None = None
    produktname: str | None = "amtsbote"
    version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Kopf:
    """The head common to 0501–0507 (``NkBasisType``); the type code comes from the message."""

    prozess_id: str
    erstellungszeitpunkt: datetime
    absender: Kontakt
    empfaenger: Kontakt
    sendendes_system: SendendesSystem | None = None
    hinweis: str | None = None

    def __post_init__(self) -> None:
        check_uuid(self.prozess_id, "Kopf.prozess_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Laufzeit:
    beginn: date | None = None
    ende: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Archivmetadaten:
    aufbewahrungsdauer: int | Literal["unbefristet"] | None = None
    aussonderungsart: Aussonderungsart | None = None
    bewertungsvorschlag: Aussonderungsart | None = None

    def __post_init__(self) -> None:
        if self.bewertungsvorschlag is Aussonderungsart.BEWERTEN:
            raise ModelError("bewertungsvorschlag", "the Bewertungsvorschlag list has A and V only")


@dataclass(frozen=True, slots=True, kw_only=True)
class Format:
    """One file of a document version: format code (``…:dateiformat``), format version and the
    ``Dateiname`` under which the primary file travels (starts with a UUID)."""

    dateiname: str
    name: Code
    """E.g. ``Code("044", list_version_id="1.0")`` for PDF/A (``listVersionID`` is required)."""
    version: str
    dateiname_original: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    nummer: str = "1"
    formate: tuple[Format, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Dokument:
    id: str
    titel: str | None = None
    aktenzeichen: str | None = None
    datum: date | None = None
    """``DatumDesSchreibens``."""
    versionen: tuple[Version, ...] = ()

    def __post_init__(self) -> None:
        check_uuid(self.id, "Dokument.id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Vorgang:
    id: str
    titel: str | None = None
    aktenzeichen: str | None = None
    archiv: Archivmetadaten | None = None
    laufzeit: Laufzeit | None = None
    dokumente: tuple[Dokument, ...] = ()
    teilvorgaenge: tuple[Vorgang, ...] = ()

    def __post_init__(self) -> None:
        check_uuid(self.id, "Vorgang.id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Akte:
    id: str
    titel: str | None = None
    aktenzeichen: str | None = None
    archiv: Archivmetadaten | None = None
    laufzeit: Laufzeit | None = None
    dokumente: tuple[Dokument, ...] = ()
    vorgaenge: tuple[Vorgang, ...] = ()
    teilakten: tuple[Akte, ...] = ()

    def __post_init__(self) -> None:
        check_uuid(self.id, "Akte.id")


Record = Akte | Vorgang | Dokument


def iter_records(records: tuple[Record, ...]) -> Iterator[Record]:
    """Every record, depth first (an Akte, then its Dokumente, Vorgänge, Teilakten)."""
    for record in records:
        yield record
        if isinstance(record, Akte):
            yield from iter_records(record.dokumente + record.vorgaenge + record.teilakten)
        elif isinstance(record, Vorgang):
            yield from iter_records(record.dokumente + record.teilvorgaenge)


# --------------------------------------------------------------------------- writing


class Writer:
    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def el(self, parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
        child = etree.SubElement(parent, f"{{{self.ns}}}{local}")
        if text is not None:
            child.text = text
        return child

    def opt(self, parent: etree._Element, local: str, text: str | None) -> None:
        if text is not None:
            self.el(parent, local, text)

    def code(self, parent: etree._Element, local: str, code: Code | str) -> None:
        (code if isinstance(code, Code) else Code(str(code))).fill(self.el(parent, local))

    def kontakt(self, parent: etree._Element, local: str, k: Kontakt) -> None:
        el = self.el(parent, local)
        if k.behoerdenschluessel is not None or k.praefix is not None:
            bk = self.el(el, "Behoerdenkennung")
            if k.behoerdenschluessel is not None:
                self.code(bk, "Behoerdenschluessel", k.behoerdenschluessel)
            if k.praefix is not None:
                self.code(bk, "Praefix", k.praefix)
        if k.institution is not None or k.kurzbezeichnung is not None:
            inst = self.el(el, "Institution")
            self.opt(inst, "Name", k.institution)
            self.opt(inst, "Kurzbezeichnung", k.kurzbezeichnung)

    def kopf(self, parent: etree._Element, kopf: Kopf, type_code: str) -> etree._Element:
        el = self.el(parent, "Kopf")
        self.el(el, "ProzessID", kopf.prozess_id)
        self.code(el, "Nachrichtentyp", type_code)
        self.el(el, "Erstellungszeitpunkt", kopf.erstellungszeitpunkt.isoformat())
        self.kontakt(el, "Absender", kopf.absender)
        self.kontakt(el, "Empfaenger", kopf.empfaenger)
        if (s := kopf.sendendes_system) is not None:
            sys_el = self.el(el, "SendendesSystem")
            self.opt(sys_el, "InstanzID", s.instanz_id)
            self.opt(sys_el, "Produktname", s.produktname)
            self.opt(sys_el, "Version", s.version)
        self.opt(el, "Hinweis", kopf.hinweis)
        return el

    def _head(self, el: etree._Element, r: Record) -> None:
        self.el(self.el(el, "Identifikation"), "ID", r.id)
        if r.titel is not None or r.aktenzeichen is not None:
            meta = self.el(el, "AllgemeineMetadaten")
            self.opt(meta, "Betreff", r.titel)
            self.opt(meta, "Kennzeichen", r.aktenzeichen)
        if not isinstance(r, Dokument) and (a := r.archiv) is not None:
            arch = self.el(el, "ArchivspezifischeMetadaten")
            if a.aufbewahrungsdauer is not None:
                dauer = self.el(arch, "Aufbewahrungsdauer")
                if a.aufbewahrungsdauer == "unbefristet":
                    self.el(dauer, "Unbefristet", "1")  # fixed="1"
                else:
                    self.el(dauer, "AnzahlJahre", str(a.aufbewahrungsdauer))
            if a.aussonderungsart is not None:
                self.code(
                    self.el(arch, "Aussonderungsart"), "Aussonderungsart", a.aussonderungsart.value
                )
            if a.bewertungsvorschlag is not None:
                self.code(arch, "Bewertungsvorschlag", a.bewertungsvorschlag.value)

    def _laufzeit(self, el: etree._Element, laufzeit: Laufzeit | None) -> None:
        if laufzeit is not None:
            lz = self.el(el, "Laufzeit")
            self.opt(lz, "Beginn", format_date(laufzeit.beginn) if laufzeit.beginn else None)
            self.opt(lz, "Ende", format_date(laufzeit.ende) if laufzeit.ende else None)

    def record(self, parent: etree._Element, local: str, r: Record) -> None:
        el = self.el(parent, local)
        self._head(el, r)
        if isinstance(r, Dokument):
            self.opt(el, "DatumDesSchreibens", format_date(r.datum) if r.datum else None)
            for v in r.versionen:
                v_el = self.el(el, "Version")
                self.el(v_el, "Nummer", v.nummer)
                for f in v.formate:
                    f_el = self.el(v_el, "Format")
                    self.code(f_el, "Name", f.name)
                    self.el(f_el, "Version", f.version)
                    pd = self.el(f_el, "Primaerdokument")
                    self.el(pd, "Dateiname", f.dateiname)
                    self.opt(pd, "DateinameOriginal", f.dateiname_original)
        elif isinstance(r, Vorgang):
            self._laufzeit(el, r.laufzeit)
            for d in r.dokumente:
                self.record(el, "Dokument", d)
            for t in r.teilvorgaenge:
                self.record(el, "Teilvorgang", t)
        else:
            self._laufzeit(el, r.laufzeit)
            if r.dokumente or r.vorgaenge or r.teilakten:
                inhalt = self.el(el, "Akteninhalt")
                for doc in r.dokumente:
                    self.record(inhalt, "Dokument", doc)
                for vorgang in r.vorgaenge:
                    self.record(inhalt, "Vorgang", vorgang)
                for teilakte in r.teilakten:
                    self.record(inhalt, "Teilakte", teilakte)


def write_record(writer: Writer, parent: etree._Element, record: Record) -> None:
    """``Schriftgutobjekt`` holding one Akte, Vorgang or Dokument."""
    sgo = writer.el(parent, "Schriftgutobjekt")
    writer.record(sgo, type(record).__name__, record)
