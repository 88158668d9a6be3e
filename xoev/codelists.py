"""XÖV codelists in genericode, and the codelist check over a message.

A genericode file (OASIS genericode 1.0, as published by XRepository) identifies its list by
``Identification/CanonicalUri`` (the XÖV ``listURI``) and ``Identification/Version`` (the
``listVersionID``). Its rows are read from ``SimpleCodeList``; the code is the value of the key
column: the column referenced by the ``Key`` marked as recommended (``empfohleneCodeSpalte`` /
``recommendedKeyColumn``), else by the first ``Key``, else the first column.

:class:`CodelistRegistry` keys lists by ``(listURI, version)``. Lookup is exact when the message
names a version; without one the latest loaded version is used (versions compare numerically
part by part, so ``1.10`` > ``1.9`` and ``2019-05-31`` > ``2018-01-31``).

:meth:`CodelistRegistry.check` runs over a document: every element with an unqualified ``code``
child is an XÖV ``Code``; its list is the ``listURI`` attribute or, when the instance leaves it
out, the standard's binding for the element's local name (``StandardVersion.code_bindings``).

* A code missing from a loaded official list is an error (rule ``codelist``).
* A code missing from a list amtsbote reconstructed (:attr:`Codelist.reconstructed`, marked in the
  genericode) is a warning naming the list as possibly incomplete (``codelist:incomplete``):
  never a rejection.
* An empty ``listVersionID``, or one naming a version not loaded, is checked against the newest
  loaded version of the ``listURI`` with a warning (``codelist:version``) — never skipped.
* A list that is not loaded at all (e.g. a large external list) gives no finding.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from .exceptions import CodelistError
from .findings import Finding, Severity
from .namespaces import GENERICODE, local_name

__all__ = [
    "RECONSTRUCTED_NAMESPACE",
    "CodeEntry",
    "Codelist",
    "CodelistRegistry",
    "is_genericode",
    "load_genericode",
    "version_key",
]

_GC = f"{{{GENERICODE}}}"
#: The marker of a list written by amtsbote, not published: ``<Annotation><AppInfo>`` of the
#: ``CodeList`` holds ``<ab:nachgebildet xmlns:ab="urn:amtsbote:codeliste">true</…>``.
RECONSTRUCTED_NAMESPACE = "urn:amtsbote:codeliste"
_RECONSTRUCTED = f"{{{RECONSTRUCTED_NAMESPACE}}}nachgebildet"
_RECOMMENDED = ("empfohleneCodeSpalte", "recommendedKeyColumn")
_DESCRIPTION_COLUMNS = ("beschreibung", "description", "name", "wert", "value", "shortname")
_MAX_TAGS_CACHED = 4096  # per bindings mapping (hostile documents have many distinct tags)
_MAX_BINDINGS_CACHED = 16


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for codelist versions: numeric parts numerically, others as text."""
    parts = re.findall(r"\d+|[^\d\W_]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts)


@dataclass(frozen=True, slots=True)
class CodeEntry:
    code: str
    values: Mapping[str, str]
    """Every column of the row by column id (the key column included)."""
    description: str | None = None


@dataclass(frozen=True)
class Codelist:
    short_name: str
    version: str
    canonical_uri: str
    canonical_version_uri: str | None
    long_name: str | None
    key_column: str
    columns: tuple[str, ...]
    entries: Mapping[str, CodeEntry] = field(repr=False)
    source: str = ""
    reconstructed: bool = False
    """Written after the standard by amtsbote, not published (may lack codes): an unknown code
    is a warning naming the list as incomplete, never an error. Official lists are
    authoritative."""

    def __contains__(self, code: object) -> bool:
        return code in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self.entries)

    def description(self, code: str) -> str | None:
        entry = self.entries.get(code)
        return entry.description if entry is not None else None


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=True,
    )


def is_genericode(path: str | os.PathLike[str]) -> bool:
    """Does the file's root element look like a genericode ``CodeList``? Reads the start only."""
    try:
        for _event, element in etree.iterparse(
            os.fspath(path),
            events=("start",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        ):
            return bool(element.tag == f"{_GC}CodeList")
    except (etree.XMLSyntaxError, OSError):
        return False
    return False


def load_genericode(source: str | os.PathLike[str] | bytes) -> Codelist:
    """Read one genericode file (a path, or its bytes)."""
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    try:
        if isinstance(source, bytes):
            root = etree.fromstring(source, _parser())
        else:
            root = etree.parse(os.fspath(source), _parser()).getroot()
    except etree.XMLSyntaxError as exc:
        raise CodelistError(name, f"not well-formed XML: {exc}") from exc
    except OSError as exc:
        raise CodelistError(name, f"cannot read: {exc}") from exc
    if root.tag != f"{_GC}CodeList":
        raise CodelistError(name, f"root element is {root.tag}, not genericode CodeList")

    # genericode 1.0 leaves the children unqualified; some producers qualify them
    q = "" if root.find("Identification") is not None else _GC
    ident = root.find(f"{q}Identification")
    if ident is None:
        raise CodelistError(name, "no Identification")
    uri = _text(ident.find(f"{q}CanonicalUri"))
    version = _text(ident.find(f"{q}Version"))
    short_name = _text(ident.find(f"{q}ShortName"))
    if not uri or not version:
        raise CodelistError(name, "Identification lacks CanonicalUri or Version")

    column_set = root.find(f"{q}ColumnSet")
    columns: tuple[str, ...] = ()
    key_column: str | None = None
    if column_set is not None:
        columns = tuple(c.get("Id", "") for c in column_set.findall(f"{q}Column"))
        keys = column_set.findall(f"{q}Key")
        chosen = None
        for key in keys:
            appinfo = key.find(f"{q}Annotation/{q}AppInfo")
            if appinfo is not None and any(local_name(str(c.tag)) in _RECOMMENDED for c in appinfo):
                chosen = key
                break
        if chosen is None and keys:
            chosen = keys[0]
        if chosen is not None:
            ref = chosen.find(f"{q}ColumnRef")
            key_column = ref.get("Ref") if ref is not None else None
    if not key_column:
        if not columns:
            raise CodelistError(name, "no ColumnSet columns")
        key_column = columns[0]
    description_column = _description_column(columns, key_column)

    entries: dict[str, CodeEntry] = {}
    rows = root.find(f"{q}SimpleCodeList")
    for row in rows.iterfind(f"{q}Row") if rows is not None else ():
        values: dict[str, str] = {}
        for value in row.iterfind(f"{q}Value"):
            simple = value.find(f"{q}SimpleValue")
            if simple is not None and simple.text is not None:
                values[value.get("ColumnRef", "")] = simple.text.strip()
        code = values.get(key_column)
        if code is None:
            continue
        entries[code] = CodeEntry(
            code=code,
            values=values,
            description=values.get(description_column) if description_column else None,
        )
    return Codelist(
        short_name=short_name or uri,
        version=version,
        canonical_uri=uri,
        canonical_version_uri=_text(ident.find(f"{q}CanonicalVersionUri")),
        long_name=_text(ident.find(f"{q}LongName")),
        key_column=key_column,
        columns=columns,
        entries=entries,
        source=name,
        reconstructed=_is_reconstructed(root, q),
    )


def _is_reconstructed(root: etree._Element, q: str) -> bool:
    for appinfo in root.iterfind(f"{q}Annotation/{q}AppInfo"):
        marker = appinfo.find(_RECONSTRUCTED)
        if marker is not None and (marker.text or "").strip().lower() == "true":
            return True
    return False


def _description_column(columns: tuple[str, ...], key: str) -> str | None:
    others = [c for c in columns if c != key]
    for wanted in _DESCRIPTION_COLUMNS:
        for column in others:
            if column.lower() == wanted:
                return column
    return others[0] if others else None


_BoundCodes = dict[str, tuple[str | None, Mapping[str, CodeEntry] | None]]
"""check(): element tag → (listURI bound to its local name, codes of that list's latest version)."""


class CodelistRegistry:
    """Loaded codelists by ``(listURI, version)``. Thread-safe for concurrent reads; loading is
    serialised."""

    def __init__(self, codelists: Iterable[Codelist] = ()) -> None:
        self._lists: dict[tuple[str, str], Codelist] = {}
        self._latest: dict[str, Codelist] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by add(): invalidates the check() caches
        # check(): codes of the list bound to an element (by tag, a Clark name) per code_bindings
        # mapping, keyed by the mapping's id; an entry keeps the mapping, a copy of it (to notice
        # a changed mapping) and the generation it was made for
        self._bound: dict[int, tuple[Mapping[str, str], dict[str, str], int, _BoundCodes]] = {}
        for codelist in codelists:
            self.add(codelist)

    def add(self, codelist: Codelist, *, replace: bool = True) -> bool:
        """Register a list; returns False when the same (uri, version) is there and not
        ``replace``."""
        key = (codelist.canonical_uri, codelist.version)
        with self._lock:
            if key in self._lists and not replace:
                return False
            self._lists[key] = codelist
            latest = self._latest.get(codelist.canonical_uri)
            if latest is None or version_key(codelist.version) >= version_key(latest.version):
                self._latest[codelist.canonical_uri] = codelist
            self._generation += 1
        return True

    def load_file(self, path: str | os.PathLike[str], *, replace: bool = True) -> Codelist:
        codelist = load_genericode(path)
        self.add(codelist, replace=replace)
        return codelist

    def load_dir(
        self, directory: str | os.PathLike[str], *, replace: bool = True
    ) -> list[Codelist]:
        """Load every genericode ``*.xml`` below ``directory`` (other XML files are skipped)."""
        loaded = []
        for path in sorted(Path(directory).rglob("*.xml")):
            if path.is_file() and is_genericode(path):
                loaded.append(self.load_file(path, replace=replace))
        return loaded

    def get(self, uri: str, version: str | None = None) -> Codelist | None:
        """Exact ``(uri, version)``; without a version the latest loaded one."""
        if version is None:
            return self._latest.get(uri)
        return self._lists.get((uri, version))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._latest
        return key in self._lists

    def __len__(self) -> int:
        return len(self._lists)

    def __iter__(self) -> Iterator[Codelist]:
        return iter(list(self._lists.values()))

    def versions(self, uri: str) -> list[str]:
        return sorted((v for (u, v) in self._lists if u == uri), key=version_key)

    def _bound_codes(self, bindings: Mapping[str, str]) -> _BoundCodes:
        """The (lazily filled) cache tag → (listURI bound to the element's local name, codes
        of the latest loaded version of that list), None where there is none, for
        ``bindings``. Made afresh when a list was added since or the mapping changed (one
        C-level dict compare)."""
        cached = self._bound.get(id(bindings))
        if (
            cached is not None
            and cached[0] is bindings
            and cached[2] == self._generation
            and cached[1] == bindings
        ):
            return cached[3]
        if len(self._bound) >= _MAX_BINDINGS_CACHED:
            self._bound.clear()
        by_tag: _BoundCodes = {}
        self._bound[id(bindings)] = (bindings, dict(bindings), self._generation, by_tag)
        return by_tag

    def check(
        self,
        tree: etree._ElementTree | etree._Element,
        *,
        code_bindings: Mapping[str, str] | None = None,
    ) -> list[Finding]:
        """Codelist findings for a document (see the module docstring)."""
        if not self._lists:
            return []
        root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
        bindings = code_bindings or {}
        bound = bool(bindings)
        by_tag = self._bound_codes(bindings) if bound else {}
        lists, latest = self._lists, self._latest
        findings: list[Finding] = []
        doc: etree._ElementTree | None = None
        # hot path: one C-level pass over the code elements, per element only what decides
        for code_el in root.iter("code"):
            parent = code_el.getparent()
            if parent is None:
                continue
            if parent.keys():
                uri = parent.get("listURI")
                version = parent.get("listVersionID")
            else:
                uri = version = None  # the usual case: the list is bound to the element
            if uri is None:
                if not bound:
                    continue
                tag = parent.tag
                hit = by_tag.get(tag)
                if hit is None:
                    bound_uri = bindings.get(tag[tag.rfind("}") + 1 :])
                    bound_list = latest.get(bound_uri) if bound_uri is not None else None
                    hit = (bound_uri, bound_list.entries if bound_list is not None else None)
                    if len(by_tag) < _MAX_TAGS_CACHED:
                        by_tag[tag] = hit
                uri, codes = hit
                if uri is None:
                    continue
                if version is None:
                    if codes is None:
                        continue
                    text = code_el.text
                    if (text.strip() if text is not None else "") in codes:
                        continue
            asked = version.strip() if version is not None else None
            codelist = lists.get((uri, asked)) if asked else latest.get(uri)
            if codelist is None and asked:
                codelist = latest.get(uri)  # a version we do not have: the newest we have
            if codelist is None:
                continue  # a list not loaded at all (e.g. a large external one)
            if doc is None:
                doc = root.getroottree()
            element = local_name(parent.tag)
            if version is not None and codelist.version != asked:
                findings.append(
                    Finding(
                        severity=Severity.WARNING,
                        message=(
                            f"listVersionID '{version}' in {element}: "
                            + (
                                "leer"
                                if not asked
                                else "diese Version der Codeliste liegt nicht vor"
                            )
                            + f"; geprüft gegen {uri} Version {codelist.version}"
                        ),
                        rule="codelist:version",
                        line=parent.sourceline,
                        xpath=doc.getpath(parent),
                    )
                )
            text = code_el.text
            code = text.strip() if text is not None else ""
            if code in codelist.entries:
                continue
            if codelist.reconstructed:
                findings.append(
                    Finding(
                        severity=Severity.WARNING,
                        message=(
                            f"Code '{code}' in {element} fehlt in der von amtsbote nachgebildeten "
                            f"Codeliste {uri} (Version {codelist.version}); die Liste ist "
                            "möglicherweise unvollständig, der Code wird nicht abgelehnt"
                        ),
                        rule="codelist:incomplete",
                        line=code_el.sourceline,
                        xpath=doc.getpath(parent),
                    )
                )
                continue
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    message=(
                        f"Code '{code}' in {element} ist nicht in der Codeliste {uri} "
                        f"(Version {codelist.version}) enthalten"
                    ),
                    rule="codelist",
                    line=code_el.sourceline,
                    xpath=doc.getpath(parent),
                )
            )
        return findings
