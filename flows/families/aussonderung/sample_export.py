"""A fictitious DMS export for demo, tests and bench: closed Gewerbeakten of the Stadt Paderborn.

No real people or businesses: the Akten are named after invented businesses ("Gaststätte Am
Rathaus (fiktiv)"), Aktenzeichen follow the city's Aktenplan pattern 32.10.01-<year>/<n>. The
primary documents are copies of the PDF/A and DOCX test files in
``../shared/xoev/beispiele/primaerdokumente`` when ``documents`` names that folder, else generated
bytes of ``document_size`` (bench: hundreds of MB in total).

Each Akte has an Anmeldung Vorgang (Bewertungsvorschlag A, with two documents) and an Ummeldung
Vorgang (Bewertungsvorschlag V, one document) — so the simulated archive's appraisal hands over
the Anmeldungen and releases the Ummeldungen for deletion.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import yaml

__all__ = ["write_sample_export"]

_NAMES = (
    "Gaststätte Am Rathaus",
    "Bäckerei Domplatz",
    "Fahrradhandel Pader",
    "Kiosk Liboriberg",
    "Schreinerei Westerntor",
    "Imbiss Riemekeviertel",
    "Blumenladen Schloß Neuhaus",
)
_NS = uuid.UUID("2d9c8a43-3f0e-4b51-a6c7-7c61f0e4a2b9")


def _id(seed: str, *parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join([seed, *map(str, parts)])))


def write_sample_export(
    folder: str | Path,
    *,
    akten: int = 2,
    verfahren: str = "vierstufig",
    xdomea: str = "3.1.0",
    documents: Path | None = None,
    document_size: int = 64 * 1024,
    seed: str = "demo",
) -> Path:
    """Write the export into ``folder`` (created) and return it. ``seed`` makes IDs and the
    ProzessID reproducible (the same seed is the same Aussonderung)."""
    out = Path(folder)
    (out / "dokumente").mkdir(parents=True, exist_ok=True)
    sources = None
    if documents is not None and (documents / "test_pdf_a2-b.pdf").is_file():
        sources = {
            "pdf": documents / "test_pdf_a2-b.pdf",
            "pdfa1": documents / "test_pdf_a1-b.pdf",
            "docx": documents / "test.docx",
        }

    def document(name: str, kind: str, i: int) -> str:
        target = out / "dokumente" / name
        if sources is not None:
            shutil.copyfile(sources[kind], target)
        else:
            with target.open("wb") as f:
                left = document_size
                while left > 0:
                    chunk = os.urandom(min(left, 1 << 20))
                    f.write(chunk)
                    left -= len(chunk)
        return f"dokumente/{name}"

    records = []
    for i in range(akten):
        year = 2005 + i % 15
        az = f"32.10.01-{year}/{100 + i}"
        titel = f"Gewerbeakte {_NAMES[i % len(_NAMES)]} (fiktiv) Nr. {i + 1}"
        records.append(
            {
                "id": _id(seed, i),
                "aktenzeichen": az,
                "titel": titel,
                "beginn": f"{year}-03-01",
                "ende": f"{year + 6}-12-31",
                "aufbewahrungsdauer": 10,
                "vorgaenge": [
                    {
                        "id": _id(seed, i, "anmeldung"),
                        "titel": "Gewerbeanmeldung",
                        "aktenzeichen": f"{az}-1",
                        "bewertungsvorschlag": "A",
                        "dokumente": [
                            {
                                "id": _id(seed, i, "anmeldung", 1),
                                "titel": "Anmeldung",
                                "datei": document(f"{i:04d}-anmeldung.pdf", "pdf", i),
                                "format": "044",
                            },
                            {
                                "id": _id(seed, i, "anmeldung", 2),
                                "titel": "Erlaubnisbescheid",
                                "datei": document(f"{i:04d}-erlaubnis.docx", "docx", i),
                            },
                        ],
                    },
                    {
                        "id": _id(seed, i, "ummeldung"),
                        "titel": "Ummeldung (Anschrift)",
                        "aktenzeichen": f"{az}-2",
                        "bewertungsvorschlag": "V",
                        "dokumente": [
                            {
                                "id": _id(seed, i, "ummeldung", 1),
                                "titel": "Ummeldung",
                                "datei": document(f"{i:04d}-ummeldung.pdf", "pdfa1", i),
                                "format": "044",
                            },
                        ],
                    },
                ],
            }
        )
    manifest = {
        "version": 1,
        "prozess_id": _id(seed, "prozess"),
        "verfahren": verfahren,
        "xdomea": xdomea,
        "akten": records,
    }
    (out / "manifest.yaml").write_text(
        "# Fictitious DMS export (amtsbote sample): closed Gewerbeakten, no real persons\n"
        + yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return out
