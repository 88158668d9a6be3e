"""Fictitious Aussonderung messages of the Stadt Paderborn and the Landesarchiv NRW OWL (no
personal data), shared by the xdomea and container tests; ``python tests/xdomea_examples.py``
rewrites ``xoev/xdomea/samples/aussonderung/`` from them."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

from xoev.code import Code
from xoev.xdomea.aussonderung import (
    Anbietung,
    AnbietungEmpfangen,
    AusgesondertesObjekt,
    Aussonderung,
    AussonderungEmpfangen,
    AussonderungsNachricht,
    Bewertung,
    BewertungEmpfangen,
    Bewertungsverzeichnis,
    ImportBestaetigung,
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
    SendendesSystem,
    Version,
    Vorgang,
)

PROZESS = "3c6f1a52-8d0e-4b7a-9f21-5e4d3c2b1a09"
AKTE = "a1e0c3d4-5b6f-4a7b-8c9d-0e1f2a3b4c5d"
VORGANG = "b2f1d4e5-6c70-4b8c-9dae-1f203b4c5d6e"
VORGANG_KASSABEL = "c3a2e5f6-7d81-4c9d-aebf-20314c5d6e7f"
DOK_ANMELDUNG = "d4b3f607-8e92-4dae-bfc0-31425d6e7f80"
DOK_BESCHEID = "e5c40718-9fa3-4ebf-80d1-42536e7f8091"
DOK_ABMELDUNG = "f6d51829-a0b4-4fc0-91e2-536470809102"

PRIMARY_SOURCES = {
    f"{DOK_ANMELDUNG}_Gewerbeanmeldung.pdf": "test_pdf_a1-b.pdf",
    f"{DOK_BESCHEID}_Erlaubnisbescheid.docx": "test.docx",
    f"{DOK_ABMELDUNG}_Gewerbeabmeldung.pdf": "test_pdf_a2-b.pdf",
}
"""Dateiname in the 0503 → file in ../shared/xoev/beispiele/primaerdokumente/."""

STADT = Kontakt(
    behoerdenschluessel=Code(
        "05774032",
        list_uri="urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags",
        list_version_id="2018-01-31",
    ),
    praefix=Code("MELDID"),
    institution="Stadt Paderborn",
    kurzbezeichnung="Gewerbeamt",
)
ARCHIV = Kontakt(
    institution="Landesarchiv NRW, Abteilung Ostwestfalen-Lippe", kurzbezeichnung="LAV NRW OWL"
)
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PDFA = Code("044", list_version_id="1.0")
DOCX = Code("035", list_version_id="1.0")


def kopf(*, from_city: bool, prozess: str = PROZESS) -> Kopf:
    return Kopf(
        prozess_id=prozess,
        erstellungszeitpunkt=AT,
        absender=STADT if from_city else ARCHIV,
        empfaenger=ARCHIV if from_city else STADT,
        sendendes_system=SendendesSystem(produktname="amtsbote", version="0.1.0"),
    )


def _doc(doc_id: str, titel: str, datum: date, name: str | None, fmt: Code) -> Dokument:
    versionen = (
        ()
        if name is None
        else (
            Version(
                nummer="1",
                formate=(
                    Format(
                        dateiname=f"{doc_id}_{name}",
                        name=fmt,
                        version="1.0",
                        dateiname_original=name,
                    ),
                ),
            ),
        )
    )
    return Dokument(
        id=doc_id, titel=titel, aktenzeichen="32.10.01-2019/117", datum=datum, versionen=versionen
    )


def akte(*, with_files: bool) -> Akte:
    """Gewerbeakte with two Vorgänge (Anmeldung with a permit, a kassabel Ummeldung) and the
    Abmeldung; ``with_files`` (0503): only the archivwürdig parts, the documents with their
    primary files, the Akte appraised A."""
    f = with_files
    anmeldung = Vorgang(
        id=VORGANG,
        titel="Anmeldung Gaststätte",
        aktenzeichen="32.10.01-2019/117-1",
        archiv=Archivmetadaten(
            aufbewahrungsdauer=10, bewertungsvorschlag=Aussonderungsart.ARCHIVWUERDIG
        ),
        laufzeit=Laufzeit(beginn=date(2019, 4, 1), ende=date(2019, 6, 30)),
        dokumente=(
            _doc(
                DOK_ANMELDUNG,
                "Gewerbeanmeldung",
                date(2019, 4, 1),
                "Gewerbeanmeldung.pdf" if f else None,
                PDFA,
            ),
            _doc(
                DOK_BESCHEID,
                "Erlaubnis nach § 2 GastG",
                date(2019, 6, 30),
                "Erlaubnisbescheid.docx" if f else None,
                DOCX,
            ),
        ),
    )
    ummeldung = Vorgang(
        id=VORGANG_KASSABEL,
        titel="Ummeldung (Anschrift)",
        aktenzeichen="32.10.01-2019/117-2",
        archiv=Archivmetadaten(
            aufbewahrungsdauer=10, bewertungsvorschlag=Aussonderungsart.VERNICHTEN
        ),
        laufzeit=Laufzeit(beginn=date(2021, 2, 1), ende=date(2021, 2, 3)),
    )
    return Akte(
        id=AKTE,
        titel="Gewerbeakte Gaststätte Am Rathaus",
        aktenzeichen="32.10.01-2019/117",
        archiv=Archivmetadaten(
            aufbewahrungsdauer=10,
            aussonderungsart=Aussonderungsart.ARCHIVWUERDIG if f else Aussonderungsart.BEWERTEN,
        ),
        laufzeit=Laufzeit(beginn=date(2019, 4, 1), ende=date(2024, 12, 31)),
        dokumente=(
            _doc(
                DOK_ABMELDUNG,
                "Gewerbeabmeldung",
                date(2024, 12, 31),
                "Gewerbeabmeldung.pdf" if f else None,
                PDFA,
            ),
        ),
        vorgaenge=(anmeldung,) if f else (anmeldung, ummeldung),
    )


def messages(version: str = "3.0.0") -> dict[str, AussonderungsNachricht]:
    """One message of each type 0501–0507."""
    return {
        "0501": Anbietung(
            kopf=kopf(from_city=True), version=version, schriftgutobjekte=(akte(with_files=False),)
        ),
        "0502": Bewertungsverzeichnis(
            kopf=kopf(from_city=False),
            version=version,
            bewertungen=(
                Bewertung(id=AKTE, aussonderungsart=Aussonderungsart.ARCHIVWUERDIG),
                Bewertung(id=VORGANG, aussonderungsart=Aussonderungsart.ARCHIVWUERDIG),
                Bewertung(id=VORGANG_KASSABEL, aussonderungsart=Aussonderungsart.VERNICHTEN),
            ),
        ),
        "0503": Aussonderung(
            kopf=kopf(from_city=True), version=version, schriftgutobjekte=(akte(with_files=True),)
        ),
        "0504": AnbietungEmpfangen(kopf=kopf(from_city=False), version=version),
        "0505": BewertungEmpfangen(kopf=kopf(from_city=True), version=version),
        "0506": ImportBestaetigung(
            kopf=kopf(from_city=False),
            version=version,
            ergebnisse=(
                AusgesondertesObjekt(
                    id=AKTE, erfolgreich=True, archivkennung="LAV NRW OWL, D 106 Paderborn Nr. 4711"
                ),
                AusgesondertesObjekt(
                    id=VORGANG,
                    erfolgreich=True,
                    archivkennung="LAV NRW OWL, D 106 Paderborn Nr. 4711/1",
                ),
            ),
        ),
        "0507": AussonderungEmpfangen(kopf=kopf(from_city=False), version=version),
    }


def sample_name(msg: AussonderungsNachricht) -> str:
    return f"{msg.version}/{msg.ROOT}.xml"


if __name__ == "__main__":  # pragma: no cover - rewrites the shipped samples
    from xoev.xdomea.aussonderung import build

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "xoev/xdomea/samples/aussonderung")
    for version in ("3.0.0", "3.1.0"):
        for msg in messages(version).values():
            target = out / sample_name(msg)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(build(msg))
            print(target)
