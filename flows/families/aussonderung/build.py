"""Building the city's xdomea messages of an Aussonderung, and choosing what is handed over.

* :func:`from_export` — the DMS's export folder → the start message (0501 for the four-stage,
  0503 for the two-stage procedure) and the primary documents under their ``Dateiname``; for the
  four-stage procedure also the *candidate* 0503 (every record with its files) that is kept with
  the case, so the 0503 built weeks later after the appraisal does not need the export again.
* :func:`select` — data minimisation of the 0503: only what the 0502 appraised archivwürdig
  (``A``), an object without an appraisal of its own taking its parent's; a kassabel (``V``) or
  unresolved (``B``) object is left out, and so is everything inside it unless appraised ``A``.
* :func:`readdress` — a message passed on (a DMS-built 0501/0503) with the city as Absender and
  the archive of the route as Empfänger.

A ``Dateiname`` is ``{Dokument-ID}_{file name}`` (unique, as x-man expects); the format code is
the manifest's ``format`` or follows the file name's extension (:data:`FORMAT_BY_EXTENSION`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from connectors.directory import Agency
from xoev.code import Code
from xoev.xdomea.aussonderung import (
    Anbietung,
    Aussonderung,
    AussonderungsNachricht,
    Bewertungsverzeichnis,
)
from xoev.xdomea.records import (
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

from ...exceptions import AmtsboteFlowError
from . import export as ex

__all__ = [
    "AGS_LIST_URI",
    "FORMAT_BY_EXTENSION",
    "CandidateError",
    "Selection",
    "from_export",
    "kontakt",
    "kopf",
    "readdress",
    "select",
]

AGS_LIST_URI = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags"
FORMAT_BY_EXTENSION = {
    "pdf": "018",
    "docx": "035",
    "doc": "003",
    "odt": "015",
    "ods": "014",
    "xlsx": "036",
    "xls": "028",
    "xml": "030",
    "txt": "045",
    "tif": "024",
    "tiff": "024",
    "jpg": "011",
    "jpeg": "010",
    "png": "019",
    "eml": "006",
    "msg": "012",
    "csv": "002",
    "rtf": "022",
}
"""File name extension → xdomea Dateiformat code (list 1.0); anything else is ``100``
(Sonstiges). PDF/A (``044``) cannot be told by the extension: the manifest says ``format``."""
_PRODUCT = SendendesSystem(produktname="amtsbote", version="0.1.0")


class CandidateError(AmtsboteFlowError):
    """The 0503 cannot be built: a record appraised archivwürdig has no primary document."""


def kontakt(agency: Agency) -> Kontakt:
    """The xdomea Kontakt of a directory agency: its Behördenkennung (the AGS list for MELDID)
    and its name."""
    praefix, kennung = agency.praefix, agency.kennung
    schluessel = (
        Code(kennung, list_uri=AGS_LIST_URI, list_version_id="2018-01-31")
        if praefix == "MELDID"
        else Code(kennung)
    )
    return Kontakt(
        behoerdenschluessel=schluessel, praefix=Code(praefix), institution=agency.name[:80]
    )


def kopf(
    prozess_id: str, *, absender: Agency, empfaenger: Agency, hinweis: str | None = None
) -> Kopf:
    return Kopf(
        prozess_id=prozess_id,
        erstellungszeitpunkt=datetime.now(UTC).replace(microsecond=0),
        absender=kontakt(absender),
        empfaenger=kontakt(empfaenger),
        sendendes_system=_PRODUCT,
        hinweis=hinweis,
    )


def dateiname(doc: ex.Dokument) -> str:
    return f"{doc.id}_{PurePosixPath(doc.datei).name}"


def _format(doc: ex.Dokument) -> Code:
    ext = PurePosixPath(doc.datei).suffix.lower().lstrip(".")
    return Code(doc.format or FORMAT_BY_EXTENSION.get(ext, "100"), list_version_id="1.0")


def _doc(doc: ex.Dokument, *, with_files: bool) -> Dokument:
    versionen = (
        (
            Version(
                nummer="1",
                formate=(
                    Format(
                        dateiname=dateiname(doc),
                        name=_format(doc),
                        version="1.0",
                        dateiname_original=PurePosixPath(doc.datei).name,
                    ),
                ),
            ),
        )
        if with_files
        else ()
    )
    return Dokument(id=doc.id, titel=doc.titel, datum=doc.datum, versionen=versionen)


def _archiv(dauer: int | None, vorschlag: str | None) -> Archivmetadaten | None:
    if dauer is None and vorschlag is None:
        return None
    return Archivmetadaten(
        aufbewahrungsdauer=dauer,
        bewertungsvorschlag=(Aussonderungsart(vorschlag) if vorschlag else None),
    )


def _akte(a: ex.Akte, *, with_files: bool) -> Akte:
    vorgaenge = tuple(
        Vorgang(
            id=v.id,
            titel=v.titel,
            aktenzeichen=v.aktenzeichen,
            archiv=_archiv(None, v.bewertungsvorschlag),
            laufzeit=Laufzeit(beginn=v.beginn, ende=v.ende) if v.beginn or v.ende else None,
            dokumente=tuple(_doc(d, with_files=with_files) for d in v.dokumente),
        )
        for v in a.vorgaenge
    )
    return Akte(
        id=a.id,
        titel=a.titel,
        aktenzeichen=a.aktenzeichen,
        archiv=_archiv(a.aufbewahrungsdauer, a.bewertungsvorschlag),
        laufzeit=Laufzeit(beginn=a.beginn, ende=a.ende),
        dokumente=tuple(_doc(d, with_files=with_files) for d in a.dokumente),
        vorgaenge=vorgaenge,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class FromExport:
    """What an export folder gives: the start message, the candidate 0503 (four-stage) and the
    primary documents by ``Dateiname``."""

    start: AussonderungsNachricht
    candidate: Aussonderung | None
    files: dict[str, ex.ExportFile]


def from_export(export: ex.Export, *, absender: Agency, empfaenger: Agency) -> FromExport:
    m = export.manifest
    head = kopf(m.prozess_id, absender=absender, empfaenger=empfaenger)
    files = {dateiname(d): export.files[d.datei] for a in m.akten for d in a.all_dokumente()}
    full = Aussonderung(
        kopf=head,
        version=m.xdomea,
        schriftgutobjekte=tuple(_akte(a, with_files=True) for a in m.akten),
    )
    if m.verfahren == "zweistufig":
        return FromExport(full, None, files)
    offer = Anbietung(
        kopf=head,
        version=m.xdomea,
        schriftgutobjekte=tuple(_akte(a, with_files=False) for a in m.akten),
    )
    return FromExport(offer, full, files)


def readdress(
    msg: AussonderungsNachricht, *, absender: Agency, empfaenger: Agency
) -> AussonderungsNachricht:
    """``msg`` with the city as Absender and the route's archive as Empfänger (ProzessID, time
    of creation and content kept)."""
    head = dataclasses.replace(msg.kopf, absender=kontakt(absender), empfaenger=kontakt(empfaenger))
    return dataclasses.replace(msg, kopf=head)


# --------------------------------------------------------------------------- selection


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """The appraisal applied to the offered records."""

    records: tuple[Record, ...]
    """What the 0503 carries (archivwürdig, with the containers around them)."""
    archivwuerdig: tuple[str, ...]
    """IDs handed over (every object whose effective appraisal is A)."""
    kassabel: tuple[str, ...]
    """IDs appraised V (directly or by their parent): may be destroyed after the 0505."""
    offen: tuple[str, ...]
    """IDs without a resolved appraisal (B, or none at all): neither handed over nor released."""


def select(offered: Iterable[Record], appraisal: Bewertungsverzeichnis) -> Selection:
    arts = {b.id: b.aussonderungsart for b in appraisal.bewertungen}
    keep: list[str] = []
    drop: list[str] = []
    hold: list[str] = []

    def visit(r: Record, inherited: Aussonderungsart | None) -> Record | None:
        art = arts.get(r.id, inherited)
        (
            keep
            if art is Aussonderungsart.ARCHIVWUERDIG
            else drop
            if art is Aussonderungsart.VERNICHTEN
            else hold
        ).append(r.id)
        if isinstance(r, Dokument):
            return r if art is Aussonderungsart.ARCHIVWUERDIG else None

        def children(xs: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(c for c in (visit(x, art) for x in xs) if c is not None)

        mark = (
            dataclasses.replace(
                r.archiv or Archivmetadaten(), aussonderungsart=Aussonderungsart.ARCHIVWUERDIG
            )
            if art is Aussonderungsart.ARCHIVWUERDIG
            else r.archiv
        )
        if isinstance(r, Vorgang):
            docs, subs = children(r.dokumente), children(r.teilvorgaenge)
            if art is Aussonderungsart.ARCHIVWUERDIG or docs or subs:
                return dataclasses.replace(r, archiv=mark, dokumente=docs, teilvorgaenge=subs)
            return None
        docs, vgs, subs = children(r.dokumente), children(r.vorgaenge), children(r.teilakten)
        if art is Aussonderungsart.ARCHIVWUERDIG or docs or vgs or subs:
            return dataclasses.replace(
                r, archiv=mark, dokumente=docs, vorgaenge=vgs, teilakten=subs
            )
        return None

    kept = tuple(x for x in (visit(r, None) for r in offered) if x is not None)
    return Selection(kept, tuple(keep), tuple(drop), tuple(hold))


def missing_files(records: Iterable[Record]) -> list[str]:
    """IDs of the Dokumente among ``records`` (depth first) that carry no primary file."""
    from xoev.xdomea.records import iter_records

    return [
        r.id
        for r in iter_records(tuple(records))
        if isinstance(r, Dokument) and not any(v.formate for v in r.versionen)
    ]
