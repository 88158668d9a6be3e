"""Regenerate the files derived from the XGewerbeanzeige 2.2 tables.

* the root element declarations in ``schema/2.2/xgewerbeanzeige.xsd`` (section between the
  ``BEGIN``/``END generated root elements`` comments) from ``types_v2_2.yaml``;
* the genericode files in ``codelists/`` from ``codelists_v2_2.yaml`` (the list ``nachrichtentyp``
  from ``types_v2_2.yaml``).

Usage::

    .venv/bin/python -m xoev.xgewerbeanzeige.generate           # write what is stale
    .venv/bin/python -m xoev.xgewerbeanzeige.generate --check   # exit 1 if anything is stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .codelisten import CODELIST_DIR, codelisten, render_genericode
from .message_types import nachrichtentypen
from .v2_2 import SCHEMA_PATH

__all__ = ["expected_files", "main", "orphan_files", "render_root_elements", "stale_files", "write"]

BEGIN = "<!-- BEGIN generated root elements"
END = "<!-- END generated root elements -->"
_INDENT = "   "


def render_root_elements() -> str:
    """The generated XSD section, markers included, indented as in the schema."""
    lines = [f"{_INDENT}{BEGIN}: do not edit, run python -m xoev.xgewerbeanzeige.generate -->"]
    for t in nachrichtentypen():
        doc = (
            f"{t.code}: {t.beschreibung}. Rollen: {', '.join(t.rollen)}. Profil: {t.profil}. "
            f"Beleg: {t.beleg}."
        )
        lines += [
            f"{_INDENT}<xs:element name={quoteattr(t.root)} type={quoteattr('xga:' + t.xsd_type)}>",
            f"{_INDENT * 2}<xs:annotation>",
            f"{_INDENT * 3}<xs:documentation>{escape(doc)}</xs:documentation>",
            f"{_INDENT * 2}</xs:annotation>",
            f"{_INDENT}</xs:element>",
        ]
    lines.append(f"{_INDENT}{END}")
    return "\n".join(lines)


def _schema_text(current: str) -> str:
    start = current.find(BEGIN)
    end = current.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{SCHEMA_PATH}: generated-section markers not found")
    line_start = current.rfind("\n", 0, start) + 1
    return current[:line_start] + render_root_elements() + current[end + len(END) :]


def expected_files() -> dict[Path, bytes]:
    """Every generated file with the content it must have."""
    files = {SCHEMA_PATH: _schema_text(SCHEMA_PATH.read_text(encoding="utf-8")).encode("utf-8")}
    for liste in codelisten():
        files[liste.path] = render_genericode(liste)
    return files


def orphan_files() -> list[Path]:
    """Genericode files in ``codelists/`` that no list of the YAML produces."""
    wanted = {liste.path for liste in codelisten()}
    return sorted(p for p in CODELIST_DIR.glob("*.xml") if p not in wanted)


def stale_files() -> list[Path]:
    """Generated files missing or differing from what the tables give, plus orphans."""
    stale = [p for p, data in expected_files().items() if not p.is_file() or p.read_bytes() != data]
    return sorted(stale + orphan_files())


def write() -> list[Path]:
    """Write stale files, remove orphans; returns the paths touched."""
    touched: list[Path] = []
    CODELIST_DIR.mkdir(exist_ok=True)
    for path, data in expected_files().items():
        if not path.is_file() or path.read_bytes() != data:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            touched.append(path)
    for orphan in orphan_files():
        orphan.unlink()
        touched.append(orphan)
    return touched


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xoev.xgewerbeanzeige.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in write():
        print(f"wrote: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
