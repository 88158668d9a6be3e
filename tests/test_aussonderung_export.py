"""The DMS export folder of an Aussonderung: read, checked, every problem with file and line."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest

from flows.families.aussonderung.export import ExportError, read_export

SHARED = Path(__file__).resolve().parents[2] / "shared" / "xoev" / "beispiele" / "primaerdokumente"


def _export(
    tmp: Path,
    *,
    datei: str = "dokumente/anmeldung.pdf",
    akte_id: str | None = None,
    extra: str = "",
) -> Path:
    folder = tmp / "export"
    (folder / "dokumente").mkdir(parents=True)
    shutil.copy(SHARED.resolve() / "test_pdf_a2-b.pdf", folder / "dokumente" / "anmeldung.pdf")
    (folder / "manifest.yaml").write_text(
        f"""\
version: 1
prozess_id: {uuid.uuid4()}
verfahren: vierstufig
xdomea: "3.1.0"
akten:
  - id: {akte_id or uuid.uuid4()}
    aktenzeichen: "32.11.02-2011/0042"
    titel: "Gewerbeakte Gaststätte Zur Linde (fiktiv)"
    beginn: 2011-03-01
    ende: 2019-12-31{extra}
    vorgaenge:
      - id: {uuid.uuid4()}
        titel: "Gewerbeanmeldung"
        dokumente:
          - id: {uuid.uuid4()}
            titel: "Anmeldung"
            datei: {datei}
""",
        encoding="utf-8",
    )
    return folder


def test_an_export_is_read_with_the_digest_of_each_primary_document(tmp_path: Path) -> None:
    export = read_export(_export(tmp_path))
    [akte] = export.manifest.akten
    assert akte.aktenzeichen == "32.11.02-2011/0042"
    f = export.files["dokumente/anmeldung.pdf"]
    data = (SHARED.resolve() / "test_pdf_a2-b.pdf").read_bytes()
    assert f.size == len(data) and f.sha512 == hashlib.sha512(data).hexdigest()


def test_problems_name_file_line_and_field(tmp_path: Path) -> None:
    folder = _export(tmp_path, akte_id="not-a-uuid", extra="\n    farbe: rot")
    with pytest.raises(ExportError) as err:
        read_export(folder)
    text = str(err.value)
    assert f"{folder / 'manifest.yaml'}:6: akten.0.id:" in text
    assert ":11: akten.0.farbe: Extra inputs are not permitted" in text
    assert "at least 1 item" not in text  # no consequential error


@pytest.mark.parametrize("datei", ["../outside.pdf", "/etc/passwd", "dokumente/fehlt.pdf"])
def test_primary_documents_must_be_in_the_folder(tmp_path: Path, datei: str) -> None:
    with pytest.raises(ExportError, match=r"is not inside|is missing"):
        read_export(_export(tmp_path, datei=datei))
