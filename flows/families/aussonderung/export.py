"""The DMS's export folder: what the city's document management system hands over for an
Aussonderung, read and checked before anything is built from it.

Layout (our own, documented in docs/aussonderung.md)::

    <export>/manifest.yaml      the records: Akten → Vorgänge → Dokumente, with their metadata
    <export>/<datei> ...        the primary documents the manifest names (relative paths)

``manifest.yaml``::

    version: 1
    prozess_id: 3f2b…           # the Aussonderung's ProzessID (UUID), fixed by the DMS
    verfahren: vierstufig       # or zweistufig (0503 directly)
    xdomea: "3.1.0"             # or "3.0.0"
    akten:
      - id: 6c1e…               # UUID of the Akte in the DMS
        aktenzeichen: "32.11.02-2011/0042"
        titel: "Gewerbeakte Gaststätte Zur Linde"
        beginn: 2011-03-01      # Laufzeit
        ende: 2019-12-31
        vorgaenge:
          - id: 9d0a…
            titel: "Gewerbeanmeldung"
            dokumente:
              - id: 1b7f…
                titel: "Anmeldung"
                datei: dokumente/0042-anmeldung.pdf
                format: "044"   # optional xdomea Dateiformat code, else from the extension

Optional: ``aufbewahrungsdauer`` (years) and ``bewertungsvorschlag`` (A | V) on an Akte,
``aktenzeichen``, ``beginn``, ``ende``, ``bewertungsvorschlag`` on a Vorgang.

Every problem is reported at once with the manifest's file, line and field; primary files are
checked to exist inside the folder (no ``..``, no absolute paths, no symlinks leaving it), and
their size and SHA-512 are computed by streaming.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ...exceptions import AmtsboteFlowError

__all__ = [
    "Akte",
    "Dokument",
    "ExportError",
    "ExportFile",
    "Manifest",
    "Vorgang",
    "read_export",
]

_CHUNK = 1 << 20


class ExportError(AmtsboteFlowError, ValueError):
    """An export folder that cannot be used; ``problems`` are ``file:line: field: message``."""

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder, self.problems = folder, problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"export {self.folder}: " + "; ".join(self.problems)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _uuid(value: str) -> str:
    return str(uuid.UUID(str(value)))


UuidText = Annotated[str, AfterValidator(_uuid)]


Vorschlag = Literal["A", "V"]
"""Bewertungsvorschlag of the agency: A archivwürdig, V vernichten (kassabel)."""


class Dokument(_Model):
    id: UuidText
    titel: str = Field(min_length=1, max_length=500)
    datei: str = Field(min_length=1)
    datum: date | None = None
    format: str | None = Field(default=None, pattern=r"^\d{3}$")
    """xdomea Dateiformat code (``044`` PDF/A …); default from the file name's extension."""


class Vorgang(_Model):
    id: UuidText
    titel: str = Field(min_length=1, max_length=500)
    aktenzeichen: str | None = Field(default=None, max_length=100)
    beginn: date | None = None
    ende: date | None = None
    bewertungsvorschlag: Vorschlag | None = None
    dokumente: tuple[Dokument, ...] = ()


class Akte(_Model):
    id: UuidText
    aktenzeichen: str = Field(min_length=1, max_length=100)
    titel: str = Field(min_length=1, max_length=500)
    beginn: date
    ende: date
    aufbewahrungsdauer: int | None = Field(default=None, ge=0, le=999)
    bewertungsvorschlag: Vorschlag | None = None
    vorgaenge: tuple[Vorgang, ...] = ()
    dokumente: tuple[Dokument, ...] = ()

    def all_dokumente(self) -> Iterator[Dokument]:
        yield from self.dokumente
        for v in self.vorgaenge:
            yield from v.dokumente


class Manifest(_Model):
    version: Literal[1]
    prozess_id: UuidText
    verfahren: Literal["vierstufig", "zweistufig"]
    xdomea: Literal["3.0.0", "3.1.0"]
    akten: tuple[Akte, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ExportFile:
    """A primary document of the export: where it is, its size and SHA-512."""

    name: str
    path: Path
    size: int
    sha512: str


@dataclass(frozen=True, slots=True)
class Export:
    folder: Path
    manifest: Manifest
    files: dict[str, ExportFile]
    """``datei`` → the file."""


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _digest(path: Path) -> tuple[int, str]:
    h, size = hashlib.sha512(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def read_export(folder: str | Path) -> Export:
    """Read and check an export folder (see the module docstring)."""
    folder = Path(folder)
    source = folder / "manifest.yaml"
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(folder, [f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        raise ExportError(folder, [f"{where}: not YAML: {exc}"]) from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        locs = [tuple(e["loc"]) for e in errors]
        for err in errors:
            loc = tuple(err["loc"])
            if any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs):
                continue  # "akten: too short" only because an Akte inside is wrong
            line = _line_of(root, loc)
            field = ".".join(str(p) for p in loc) or "-"
            problems.append(f"{source}:{line or '?'}: {field}: {err['msg']}")
        raise ExportError(folder, problems) from None
    problems, files = [], {}
    base = folder.resolve()
    ids: set[str] = set()
    for i, akte in enumerate(manifest.akten):
        objects = [(f"akten.{i}", akte.id)] + [
            (f"akten.{i}.vorgaenge.{j}", v.id) for j, v in enumerate(akte.vorgaenge)
        ]
        objects += [(f"akten.{i}.dokument", d.id) for d in akte.all_dokumente()]
        for where, oid in objects:
            if oid in ids:
                problems.append(f"{source}: {where}.id: duplicate id {oid}")
            ids.add(oid)
        for doc in akte.all_dokumente():
            rel = Path(doc.datei)
            path = (folder / rel).resolve()
            if rel.is_absolute() or ".." in rel.parts or not path.is_relative_to(base):
                problems.append(
                    f"{source}: {akte.aktenzeichen}: datei {doc.datei!r} is not "
                    "inside the export folder"
                )
            elif not path.is_file():
                problems.append(f"{source}: {akte.aktenzeichen}: datei {doc.datei!r} is missing")
            elif doc.datei in files:
                problems.append(
                    f"{source}: {akte.aktenzeichen}: datei {doc.datei!r} is named twice"
                )
            else:
                size, digest = _digest(path)
                files[doc.datei] = ExportFile(doc.datei, path, size, digest)
    if problems:
        raise ExportError(folder, problems)
    return Export(folder, manifest, files)
