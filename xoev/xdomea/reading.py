"""Reading xdomea records and the message head into the models of :mod:`xoev.xdomea.records`.

:class:`Reader` follows the schema order of the modelled elements (see :mod:`xoev.xdomea.records`)
with :class:`xoev.nachrichtenkopf.ChildReader`: strict by default (an element not modelled, out of
place or with an invalid value is a :class:`~xoev.xdomea.exceptions.StructureError` naming element,
line and XPath, never the value); ``strict=False`` skips what is not modelled and lists its XPaths
in :attr:`Reader.skipped`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Literal

from lxml import etree

from ..code import Code
from ..nachrichtenkopf import (
    ChildReader,
    element_path,
    parse_date,
    parse_datetime,
    read_code,
    read_text,
)
from .exceptions import StructureError
from .records import (
    Akte,
    Archivmetadaten,
    Aussonderungsart,
    Dokument,
    Format,
    Kontakt,
    Kopf,
    Laufzeit,
    Record,
    SendendesSystem,
    Version,
    Vorgang,
)

__all__ = ["Reader"]


class Reader:
    """Reads the modelled parts; ``skipped`` collects what ``strict=False`` left out."""

    def __init__(self, namespace: str, *, strict: bool, source: str | None) -> None:
        self.ns = namespace
        self.strict = strict
        self.source = source
        self.skipped: list[str] = []

    def error(self, reason: str, element: etree._Element) -> StructureError:
        name = element.tag.rpartition("}")[2] if isinstance(element.tag, str) else "node()"
        return StructureError(
            reason,
            element=name,
            xpath=element_path(element),
            line=element.sourceline,
            source=self.source,
        )

    def children(self, parent: etree._Element) -> ChildReader:
        return ChildReader(
            parent, self.ns, strict=self.strict, error=self.error, skipped=self.skipped
        )

    def text(self, element: etree._Element | None) -> str | None:
        if element is None:
            return None
        return read_text(element, strict=self.strict, error=self.error)

    def value(
        self, element: etree._Element | None, convert: Callable[[str], object], what: str
    ) -> object:
        text = self.text(element)
        if text is None or element is None:
            return None
        try:
            return convert(text)
        except ValueError as exc:
            raise self.error(
                f"element {element.tag.rpartition('}')[2]} is not a valid {what}", element
            ) from exc

    def code(self, element: etree._Element) -> Code:
        return read_code(element, strict=self.strict, error=self.error)

    def plain_code(self, element: etree._Element, allowed: frozenset[str] | None = None) -> str:
        code = self.code(element)
        if allowed is not None and code.code not in allowed:
            raise self.error(
                f"code of {element.tag.rpartition('}')[2]} is not one of "
                f"{', '.join(sorted(allowed))}",
                element,
            )
        return code.code

    def boolean(self, element: etree._Element) -> bool:
        text = self.text(element)
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise self.error(f"element {element.tag.rpartition('}')[2]} is not an xs:boolean", element)

    def uuid(self, element: etree._Element) -> str:
        text = self.text(element) or ""
        try:
            uuid.UUID(text)
        except ValueError:
            raise self.error(
                f"element {element.tag.rpartition('}')[2]} is not a UUID", element
            ) from None
        return text

    def kontakt(self, element: etree._Element) -> Kontakt:
        c = self.children(element)
        schluessel = praefix = None
        name = kurz = None
        if (bk := c.take("Behoerdenkennung")) is not None:
            b = self.children(bk)
            if (e := b.take("Behoerdenschluessel")) is not None:
                schluessel = self.code(e)
            if (e := b.take("Praefix")) is not None:
                praefix = self.code(e)
            b.finish()
        if (inst := c.take("Institution")) is not None:
            i = self.children(inst)
            name, kurz = self.text(i.take("Name")), self.text(i.take("Kurzbezeichnung"))
            i.finish()
        c.finish()
        return Kontakt(
            behoerdenschluessel=schluessel, praefix=praefix, institution=name, kurzbezeichnung=kurz
        )

    def kopf(self, c: ChildReader) -> tuple[Kopf, str]:
        """Reads the NkBasisType part of an open Kopf reader; returns the head and type code."""
        prozess = self.uuid(c.require("ProzessID"))
        type_code = self.plain_code(c.require("Nachrichtentyp"))
        created_el = c.require("Erstellungszeitpunkt")
        created = self.value(
            created_el, lambda t: parse_datetime(t, require_tz=False), "xs:dateTime"
        )
        absender = self.kontakt(c.require("Absender"))
        empfaenger = self.kontakt(c.require("Empfaenger"))
        system = None
        if (s_el := c.take("SendendesSystem")) is not None:
            s = self.children(s_el)
            system = SendendesSystem(
                instanz_id=self.text(s.take("InstanzID")),
                produktname=self.text(s.take("Produktname")),
                version=self.text(s.take("Version")),
            )
            s.finish()
        hinweis = self.text(c.take("Hinweis"))
        assert isinstance(created, datetime)
        return Kopf(
            prozess_id=prozess,
            erstellungszeitpunkt=created,
            absender=absender,
            empfaenger=empfaenger,
            sendendes_system=system,
            hinweis=hinweis,
        ), type_code

    def _archiv(self, element: etree._Element | None) -> Archivmetadaten | None:
        if element is None:
            return None
        c = self.children(element)
        dauer: int | Literal["unbefristet"] | None = None
        if (d_el := c.take("Aufbewahrungsdauer")) is not None:
            d = self.children(d_el)
            if (jahre := d.take("AnzahlJahre")) is not None:
                value = self.value(jahre, int, "number of years")
                assert isinstance(value, int)
                dauer = value
            else:
                self.boolean(d.require("Unbefristet"))
                dauer = "unbefristet"
            d.finish()
        art = None
        if (a_el := c.take("Aussonderungsart")) is not None:
            art = self.aussonderungsart(a_el)
        vorschlag = None
        if (v_el := c.take("Bewertungsvorschlag")) is not None:
            vorschlag = Aussonderungsart(self.plain_code(v_el, frozenset("AV")))
        c.finish()
        return Archivmetadaten(
            aufbewahrungsdauer=dauer, aussonderungsart=art, bewertungsvorschlag=vorschlag
        )

    def aussonderungsart(self, element: etree._Element) -> Aussonderungsart:
        """An ``AussonderungsartType`` (choice; only the coded form is modelled)."""
        c = self.children(element)
        code = self.plain_code(
            c.require("Aussonderungsart"), frozenset(a.value for a in Aussonderungsart)
        )
        c.finish()
        return Aussonderungsart(code)

    def _laufzeit(self, element: etree._Element | None) -> Laufzeit | None:
        if element is None:
            return None
        c = self.children(element)
        beginn = self.value(c.take("Beginn"), parse_date, "xs:date")
        ende = self.value(c.take("Ende"), parse_date, "xs:date")
        c.finish()
        assert beginn is None or isinstance(beginn, date)
        assert ende is None or isinstance(ende, date)
        return Laufzeit(beginn=beginn, ende=ende)

    def _version(self, element: etree._Element) -> Version:
        c = self.children(element)
        nummer = self.text(c.require("Nummer")) or ""
        formate = []
        for f_el in c.take_all("Format"):
            f = self.children(f_el)
            name = self.code(f.require("Name"))
            version = self.text(f.require("Version")) or ""
            p = self.children(f.require("Primaerdokument"))
            dateiname = self.text(p.require("Dateiname")) or ""
            original = self.text(p.take("DateinameOriginal"))
            p.finish()
            f.finish()
            formate.append(
                Format(dateiname=dateiname, name=name, version=version, dateiname_original=original)
            )
        if not formate:
            raise self.error("required element Format missing in Version", element)
        c.finish()
        return Version(nummer=nummer, formate=tuple(formate))

    def _head(self, c: ChildReader) -> tuple[str, str | None, str | None]:
        ident = self.children(c.require("Identifikation"))
        rid = self.uuid(ident.require("ID"))
        ident.finish()
        titel = zeichen = None
        if (m_el := c.take("AllgemeineMetadaten")) is not None:
            m = self.children(m_el)
            titel, zeichen = self.text(m.take("Betreff")), self.text(m.take("Kennzeichen"))
            m.finish()
        return rid, titel, zeichen

    def dokument(self, element: etree._Element) -> Dokument:
        c = self.children(element)
        rid, titel, zeichen = self._head(c)
        datum = self.value(c.take("DatumDesSchreibens"), parse_date, "xs:date")
        versionen = tuple(self._version(v) for v in c.take_all("Version"))
        c.finish()
        assert datum is None or isinstance(datum, date)
        return Dokument(id=rid, titel=titel, aktenzeichen=zeichen, datum=datum, versionen=versionen)

    def vorgang(self, element: etree._Element) -> Vorgang:
        c = self.children(element)
        rid, titel, zeichen = self._head(c)
        archiv = self._archiv(c.take("ArchivspezifischeMetadaten"))
        laufzeit = self._laufzeit(c.take("Laufzeit"))
        dokumente = tuple(self.dokument(d) for d in c.take_all("Dokument"))
        teile = tuple(self.vorgang(t) for t in c.take_all("Teilvorgang"))
        c.finish()
        return Vorgang(
            id=rid,
            titel=titel,
            aktenzeichen=zeichen,
            archiv=archiv,
            laufzeit=laufzeit,
            dokumente=dokumente,
            teilvorgaenge=teile,
        )

    def akte(self, element: etree._Element) -> Akte:
        c = self.children(element)
        rid, titel, zeichen = self._head(c)
        archiv = self._archiv(c.take("ArchivspezifischeMetadaten"))
        laufzeit = self._laufzeit(c.take("Laufzeit"))
        dokumente: tuple[Dokument, ...] = ()
        vorgaenge: tuple[Vorgang, ...] = ()
        teilakten: tuple[Akte, ...] = ()
        if (inhalt := c.take("Akteninhalt")) is not None:
            i = self.children(inhalt)
            dokumente = tuple(self.dokument(d) for d in i.take_all("Dokument"))
            vorgaenge = tuple(self.vorgang(v) for v in i.take_all("Vorgang"))
            teilakten = tuple(self.akte(t) for t in i.take_all("Teilakte"))
            i.finish()
        c.finish()
        return Akte(
            id=rid,
            titel=titel,
            aktenzeichen=zeichen,
            archiv=archiv,
            laufzeit=laufzeit,
            dokumente=dokumente,
            vorgaenge=vorgaenge,
            teilakten=teilakten,
        )

    def schriftgutobjekt(self, element: etree._Element) -> Record:
        c = self.children(element)
        readers: tuple[tuple[str, Callable[[etree._Element], Record]], ...] = (
            ("Akte", self.akte),
            ("Vorgang", self.vorgang),
            ("Dokument", self.dokument),
        )
        for local, read in readers:
            if (found := c.take(local)) is not None:
                c.finish()
                return read(found)
        raise self.error("Schriftgutobjekt holds no Akte, Vorgang or Dokument", element)
