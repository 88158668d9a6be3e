"""The codelists shipped with XGewerbeanzeige 2.2 support (``codelists_v2_2.yaml``): their
genericode files in ``codelists/``, the element → listURI bindings, and rendering of the genericode
XML.

The genericode files are generated from the YAML (``python -m xoev.xgewerbeanzeige.generate``) so
that bindings, files and the message-type table cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from lxml import etree

from ..codelists import RECONSTRUCTED_NAMESPACE
from ..namespaces import GENERICODE
from .exceptions import TableError
from .message_types import nachrichtentypen

__all__ = [
    "CODELIST_DIR",
    "SOURCE_PATH",
    "Codeliste",
    "code_bindings",
    "codelist_paths",
    "codelisten",
    "externe_elemente",
    "render_genericode",
]

SOURCE_PATH = Path(__file__).with_name("codelists_v2_2.yaml")
CODELIST_DIR = Path(__file__).with_name("codelists")


@dataclass(frozen=True, slots=True)
class Codeliste:
    kurzname: str
    name: str
    uri: str
    version: str
    elemente: tuple[str, ...]
    codes: tuple[tuple[str, str], ...]
    hinweis: str
    nachgebildet: bool = True
    """Written by amtsbote after the standard (may lack codes): marked so in the genericode."""

    @property
    def canonical_version_uri(self) -> str:
        return f"{self.uri}_{self.version}"

    @property
    def path(self) -> Path:
        return CODELIST_DIR / f"{self.kurzname}_{self.version}.xml"

    def beschreibung(self, code: str) -> str | None:
        return next((b for c, b in self.codes if c == code), None)


def _need(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise TableError(SOURCE_PATH.name, where, f"missing key {key!r}")
    return entry[key]


def _flag(entry: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise TableError(SOURCE_PATH.name, where, f"{key} must be true or false, not {value!r}")
    return value


@cache
def _load() -> tuple[tuple[Codeliste, ...], Mapping[str, str]]:
    raw = yaml.safe_load(SOURCE_PATH.read_text(encoding="utf-8"))
    lists: list[Codeliste] = []
    bound: dict[str, str] = {}
    for i, entry in enumerate(_need(raw, "listen", "top level")):
        where = f"listen[{i}]"
        kurzname = str(_need(entry, "kurzname", where))
        where = f"listen[{i}] ({kurzname})"
        raw_codes = _need(entry, "codes", where)
        if raw_codes == "nachrichtentypen":
            codes = tuple((t.code, t.beschreibung) for t in nachrichtentypen())
        else:
            codes = tuple((str(c), str(b)) for c, b in raw_codes)
        if len({c for c, _ in codes}) != len(codes):
            raise TableError(SOURCE_PATH.name, where, "duplicate code")
        liste = Codeliste(
            kurzname=kurzname,
            name=str(_need(entry, "name", where)),
            uri=str(_need(entry, "uri", where)),
            version=str(_need(entry, "version", where)),
            elemente=tuple(str(e) for e in _need(entry, "elemente", where)),
            codes=codes,
            hinweis=" ".join(str(_need(entry, "hinweis", where)).split()),
            nachgebildet=_flag(entry, "nachgebildet", where, default=True),
        )
        for element in liste.elemente:
            if element in bound:
                raise TableError(
                    SOURCE_PATH.name, where, f"element {element} already bound to {bound[element]}"
                )
            bound[element] = liste.uri
        lists.append(liste)
    extern = raw.get("extern") or {}
    clash = sorted(set(extern) & set(bound))
    if clash:
        raise TableError(SOURCE_PATH.name, "extern", f"elements both bound and extern: {clash}")
    return tuple(lists), MappingProxyType({str(k): str(v) for k, v in extern.items()})


def codelisten() -> tuple[Codeliste, ...]:
    return _load()[0]


def code_bindings() -> Mapping[str, str]:
    """XÖV element local name → listURI of the list its codes come from."""
    return MappingProxyType({e: cl.uri for cl in codelisten() for e in cl.elemente})


def codelist_paths() -> tuple[Path, ...]:
    return tuple(cl.path for cl in codelisten())


def externe_elemente() -> Mapping[str, str]:
    """Code elements whose lists are not shipped → what list they use."""
    return _load()[1]


def render_genericode(liste: Codeliste) -> bytes:
    """The genericode 1.0 document for ``liste`` (deterministic bytes)."""
    gc = f"{{{GENERICODE}}}"
    root = etree.Element(f"{gc}CodeList", nsmap={"gc": GENERICODE})
    if liste.nachgebildet:
        appinfo = etree.SubElement(etree.SubElement(root, "Annotation"), "AppInfo")
        marker = etree.SubElement(
            appinfo,
            f"{{{RECONSTRUCTED_NAMESPACE}}}nachgebildet",
            nsmap={"ab": RECONSTRUCTED_NAMESPACE},
        )
        marker.text = "true"
    ident = etree.SubElement(root, "Identification")
    etree.SubElement(ident, "ShortName").text = liste.kurzname
    etree.SubElement(ident, "LongName").text = liste.name
    etree.SubElement(ident, "Version").text = liste.version
    etree.SubElement(ident, "CanonicalUri").text = liste.uri
    etree.SubElement(ident, "CanonicalVersionUri").text = liste.canonical_version_uri
    agency = etree.SubElement(ident, "Agency")
    etree.SubElement(
        agency, "LongName"
    ).text = "amtsbote (nachgebildet nach XGewerbeanzeige 2.2, siehe Kommentar)"
    columns = etree.SubElement(root, "ColumnSet")
    for cid in ("code", "beschreibung"):
        column = etree.SubElement(columns, "Column", Id=cid, Use="required")
        etree.SubElement(column, "ShortName").text = cid
        etree.SubElement(column, "Data", Type="string")
    key = etree.SubElement(columns, "Key", Id="codeKey")
    etree.SubElement(key, "ShortName").text = "codeKey"
    etree.SubElement(key, "ColumnRef", Ref="code")
    rows = etree.SubElement(root, "SimpleCodeList")
    for code, beschreibung in liste.codes:
        row = etree.SubElement(rows, "Row")
        for ref, value in (("code", code), ("beschreibung", beschreibung)):
            v = etree.SubElement(row, "Value", ColumnRef=ref)
            etree.SubElement(v, "SimpleValue").text = value
    comment = (
        f" Generated by amtsbote from {SOURCE_PATH.name} "
        f"(python -m xoev.xgewerbeanzeige.generate); do not edit. {liste.hinweis} "
    ).replace("--", "-")
    root.addprevious(etree.Comment(comment))
    tree = root.getroottree()
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
