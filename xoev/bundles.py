"""Versions by configuration: XSD bundles on the schema path for namespaces no package declares.

A **bundle** is a folder of XSDs (plus, optionally, genericode codelists and a KoSIT validator
configuration). The registry (:mod:`xoev.registry`) turns it into a
:class:`~xoev.standards.StandardVersion` in one of two ways:

``bundle.yaml`` beside the XSDs (:func:`load_bundle`)
    ::

        standard: XGewerbeordnung        # optional when the namespace follows an XÖV pattern
        version: "1.6"                   # likewise; the raw text counts (1.10 stays 1.10)
        schema: xgewerbeordnung-xga.xsd  # or a list; optional: every root XSD of the folder
        namespace: http://…              # optional; must be the schema's targetNamespace
        codelists: codelisten            # optional folder of genericode files
        kosit: pruefung                  # optional: scenarios.xml or its folder
        kosit_repository: pruefung/repo  # optional: KoSIT's -r (default: folder of scenarios.xml)

    Paths are relative to the folder of ``bundle.yaml`` and must stay inside it. Unknown keys are
    errors; ``rules`` in particular is refused — a bundle carries data, never code. Every problem
    is a :class:`~xoev.exceptions.BundleError` naming ``file:line``.

The XSD's ``targetNamespace`` alone (:func:`derive_version`)
    An XSD on the schema path whose namespace no package declares and no ``bundle.yaml`` claims
    is picked up when its namespace follows an XÖV pattern that names standard and version:

    * ``http://www.<x-name>.de/spezifikation/[<part>/]<version>`` — e.g.
      ``http://www.xgewerbeordnung.de/spezifikation/xga/1.6`` → XGewerbeordnung 1.6;
    * ``urn:xoev-de:<…>:<name>:<…>:<version>`` or ``…:<name>_<version>`` — e.g.
      ``urn:xoev-de:xdomea:schema:3.1.0`` → xdomea 3.1.0.

    Any other namespace needs a ``bundle.yaml``.

Entry files. Without ``schema``, the entries are the **root XSDs** of the folder: those no other XSD
there includes, imports or redefines (so a bundle's building blocks are not versions of their own).
Two roots with the same namespace are ambiguous: name the one to use in ``bundle.yaml``.

:func:`not_built_in` names versions amtsbote knows of but does not ship (XGewerbeanzeige 2.0 and
2.1, any XGewerbeordnung), for the error that says to put their bundle on the schema path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from .exceptions import BundleError
from .namespaces import XSD

__all__ = [
    "BUNDLE_FILE",
    "Bundle",
    "BundleEntry",
    "derive_version",
    "discover",
    "load_bundle",
    "not_built_in",
    "root_schemas",
    "target_namespace",
]

BUNDLE_FILE = "bundle.yaml"
_MAX_BUNDLE_BYTES = 64 * 1024

_VERSION = r"\d+(?:[._]\d+)*"
#: ``http(s)://(www.)x<name>.de/spezifikation/[<part>/]<version>`` (XGewerbeanzeige,
#: XGewerbeordnung, …)
_HTTP = re.compile(
    rf"https?://(?:www\.)?(?P<name>x[a-z0-9-]+)\.de/spezifikation/(?:[a-z0-9-]+/)*"
    rf"(?P<version>{_VERSION})/?",
    re.IGNORECASE,
)
_URN_VERSION = re.compile(_VERSION)
_URN_NAME_VERSION = re.compile(rf"(?P<name>[a-z][a-z0-9-]*)_(?P<version>{_VERSION})", re.IGNORECASE)
#: parts of a ``urn:xoev-de:`` namespace that name no standard
_URN_NOISE = frozenset({"schema", "schemata", "standard", "nachrichten", "kosit", "xoev"})

#: Versions amtsbote knows of but does not ship: namespace → (standard, version).
_UNSHIPPED = {
    "http://www.xgewerbeanzeige.de/spezifikation/2.0": ("XGewerbeanzeige", "2.0"),
    "http://www.xgewerbeanzeige.de/spezifikation/2.1": ("XGewerbeanzeige", "2.1"),
}
#: Standards amtsbote knows of but ships no version of (any namespace of theirs).
_UNSHIPPED_STANDARDS = frozenset({"XGewerbeordnung"})


def _standard_name(host_name: str) -> str:
    """``xgewerbeordnung`` → ``XGewerbeordnung`` (the XÖV spelling: X + capitalised rest)."""
    rest = host_name[1:]
    return "X" + rest[:1].upper() + rest[1:].lower()


def derive_version(namespace: str) -> tuple[str, str] | None:
    """(standard, version) when ``namespace`` follows an XÖV pattern naming both, else None."""
    match = _HTTP.fullmatch(namespace.strip())
    if match:
        return _standard_name(match["name"]), match["version"].replace("_", ".")
    parts = namespace.strip().split(":")
    if len(parts) < 4 or [p.lower() for p in parts[:2]] != ["urn", "xoev-de"]:
        return None
    last = parts[-1]
    named = _URN_NAME_VERSION.fullmatch(last)
    if named:
        return named["name"], named["version"].replace("_", ".")
    if not _URN_VERSION.fullmatch(last):
        return None
    names = [p for p in parts[2:-1] if p.lower() not in _URN_NOISE]
    return (names[0], last) if names else None


def not_built_in(namespace: str | None) -> tuple[str, str] | None:
    """(standard, version) of a version amtsbote knows of but does not ship, else None."""
    if not namespace:
        return None
    if namespace in _UNSHIPPED:
        return _UNSHIPPED[namespace]
    derived = derive_version(namespace)
    if derived is not None and derived[0] in _UNSHIPPED_STANDARDS:
        return derived
    return None


def target_namespace(path: Path) -> str | None:
    """The ``targetNamespace`` of an XSD (read from its first element only), or None."""
    try:
        for _event, element in etree.iterparse(
            str(path),
            events=("start",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        ):
            value = element.get("targetNamespace")
            return str(value) if value is not None else None
    except (etree.XMLSyntaxError, OSError):
        return None
    return None


_REFERENCES = (f"{{{XSD}}}include", f"{{{XSD}}}import", f"{{{XSD}}}redefine", f"{{{XSD}}}override")


def _referenced(path: Path) -> set[Path]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (etree.XMLSyntaxError, OSError):
        return set()
    found = set()
    for child in root:
        location = child.get("schemaLocation") if child.tag in _REFERENCES else None
        if location and "://" not in location:
            found.add((path.parent / location).resolve())
    return found


def root_schemas(xsds: Iterable[Path]) -> list[Path]:
    """The XSDs of ``xsds`` that none of the others includes, imports or redefines."""
    files = [p.resolve() for p in xsds]
    referenced: set[Path] = set()
    for path in files:
        referenced |= _referenced(path)
    return [p for p in files if p not in referenced]


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One message schema of a bundle: its namespace and entry XSD."""

    namespace: str
    schema: Path
    standard: str
    version: str


@dataclass(frozen=True, slots=True)
class Bundle:
    """A ``bundle.yaml`` and what it names (paths resolved, inside :attr:`directory`)."""

    file: Path
    directory: Path
    entries: tuple[BundleEntry, ...]
    codelists: tuple[Path, ...] = ()
    kosit: Path | None = None
    kosit_repository: Path | None = None
    kosit_line: int | None = None


def _model() -> Any:
    """The pydantic model of ``bundle.yaml`` (imported on first use: most registries have no
    bundle)."""
    from pydantic import BaseModel, ConfigDict, Field

    class BundleModel(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

        standard: str | None = Field(default=None, min_length=1)
        version: str | None = Field(default=None, min_length=1)
        namespace: str | None = Field(default=None, min_length=1)
        schema_: str | list[str] | None = Field(default=None, alias="schema")
        codelists: str | None = None
        kosit: str | None = None
        kosit_repository: str | None = None

    return BundleModel


class _Reader:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.directory = file.parent.resolve()
        self.lines: dict[str, int] = {}
        self.top = 1

    def error(self, reason: str, key: str | None = None) -> BundleError:
        line = self.lines.get(key, self.top) if key else self.top
        field = f"{key}: " if key else ""
        return BundleError(f"{field}{reason}", path=str(self.file), line=line)

    def read(self) -> dict[str, Any]:
        try:
            if self.file.stat().st_size > _MAX_BUNDLE_BYTES:
                raise self.error(f"larger than {_MAX_BUNDLE_BYTES} bytes")
            text = self.file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
        except OSError as exc:
            raise self.error(f"cannot read: {exc.strerror or exc}") from exc
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            raise BundleError(f"not valid YAML: {reason}", path=str(self.file), line=line) from exc
        finally:
            loader.dispose()
        if not isinstance(node, yaml.MappingNode):
            raise self.error("must be a mapping of keys (standard, version, schema, …)")
        self.top = node.start_mark.line + 1
        data: dict[str, Any] = {}
        constructor = yaml.constructor.SafeConstructor()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in data:
                raise BundleError(
                    f"{key}: given twice (first at line {self.lines[key]})",
                    path=str(self.file),
                    line=line,
                )
            self.lines[key] = line
            if isinstance(value_node, yaml.ScalarNode) and key in ("standard", "version"):
                # the text as written: ``version: 1.10`` is "1.10", not the float 1.1
                data[key] = value_node.value if value_node.value != "" else None
            else:
                data[key] = constructor.construct_object(value_node, deep=True)
        return data

    def path(self, value: str, key: str, *, folder: bool = False) -> Path:
        if os.path.isabs(value) or "://" in value:
            raise self.error(f"{value!r} must be a path relative to the bundle folder", key)
        resolved = (self.directory / value).resolve()
        if not resolved.is_relative_to(self.directory):
            raise self.error(f"{value!r} leaves the bundle folder {self.directory}", key)
        if folder and not resolved.is_dir():
            raise self.error(f"{value!r} is not a folder in {self.directory}", key)
        if not folder and not resolved.exists():
            raise self.error(f"{value!r} does not exist in {self.directory}", key)
        return resolved


def _validation_problem(reader: _Reader, exc: Any) -> BundleError:
    error = exc.errors()[0]
    loc = error.get("loc") or ()
    key = str(loc[0]) if loc else None
    if key == "rules":
        return reader.error(
            "a bundle carries no code: business rules come only with a standard package "
            "(xoev.registry.BUILTIN_PACKAGES)",
            key,
        )
    reason = error.get("msg", "invalid")
    if error.get("type") == "extra_forbidden":
        reason = (
            "unknown key (known: standard, version, namespace, schema, codelists, kosit, "
            "kosit_repository)"
        )
    elif key in ("standard", "version") and error.get("type", "").startswith("string"):
        reason = f'must be text, e.g. {key}: "1.6"'
    return reader.error(reason, key)


def load_bundle(
    file: str | os.PathLike[str], *, known: Mapping[str, tuple[str, str]] | None = None
) -> Bundle:
    """Read and check a ``bundle.yaml``; :class:`~xoev.exceptions.BundleError` (file:line).
    ``known``: namespace → (standard, version) of the versions packages declare; a bundle for one
    of them takes its standard and version (and may only repeat them)."""
    from pydantic import ValidationError

    reader = _Reader(Path(file))
    data = reader.read()
    try:
        spec = _model().model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(reader, exc) from exc

    if spec.schema_ is None:
        schemas = root_schemas(sorted(reader.directory.rglob("*.xsd")))
        if not schemas:
            raise reader.error(f"no XSD in {reader.directory} (name one with schema: FILE)")
    else:
        names = [spec.schema_] if isinstance(spec.schema_, str) else spec.schema_
        if not names:
            raise reader.error("names no file", "schema")
        schemas = [reader.path(n, "schema") for n in names]
    entries: list[BundleEntry] = []
    seen: dict[str, Path] = {}
    for schema in schemas:
        namespace = target_namespace(schema)
        shown = schema.relative_to(reader.directory)
        if not namespace:
            if spec.schema_ is None:
                continue  # a root XSD without targetNamespace is no message schema
            raise reader.error(f"{shown} has no targetNamespace (or is no readable XSD)", "schema")
        if spec.namespace is not None and namespace != spec.namespace:
            if len(schemas) > 1:
                raise reader.error(
                    "only with a single schema (each XSD has its own targetNamespace)", "namespace"
                )
            raise reader.error(
                f"{spec.namespace} is not the targetNamespace of {shown} ({namespace})",
                "namespace",
            )
        if namespace in seen:
            first = seen[namespace].relative_to(reader.directory)
            raise reader.error(
                f"{first} and {shown} both have targetNamespace {namespace}; name the entry "
                f"file with schema: FILE",
                "schema",
            )
        seen[namespace] = schema
        declared = (known or {}).get(namespace)
        if declared is not None:
            for key, given, expected in zip(
                ("standard", "version"), (spec.standard, spec.version), declared, strict=True
            ):
                if given is not None and given != expected:
                    raise reader.error(
                        f"{namespace} is {declared[0]} {declared[1]} (declared by a standard "
                        f"package); leave {key} out or give {expected!r}",
                        key,
                    )
        derived = declared or derive_version(namespace)
        standard = spec.standard or (derived[0] if derived else None)
        version = spec.version or (derived[1] if derived else None)
        if standard is None or version is None:
            missing = "standard" if standard is None else "version"
            raise reader.error(
                f"{missing} is required: the namespace {namespace} of {shown} follows no XÖV "
                f"pattern it could be derived from"
            )
        entries.append(BundleEntry(namespace, schema, standard, version))
    if not entries:
        raise reader.error(f"no XSD in {reader.directory} has a targetNamespace")

    codelists: tuple[Path, ...] = ()
    if spec.codelists is not None:
        folder = reader.path(spec.codelists, "codelists", folder=True)
        codelists = tuple(sorted(p for p in folder.rglob("*.xml") if p.is_file()))
    kosit = repository = None
    if spec.kosit is not None:
        kosit = reader.path(spec.kosit, "kosit")
    if spec.kosit_repository is not None:
        if kosit is None:
            raise reader.error("needs kosit", "kosit_repository")
        repository = reader.path(spec.kosit_repository, "kosit_repository", folder=True)
    return Bundle(
        file=reader.file.resolve(),
        directory=reader.directory,
        entries=tuple(entries),
        codelists=codelists,
        kosit=kosit,
        kosit_repository=repository,
        kosit_line=reader.lines.get("kosit"),
    )


def discover(
    unknown: Mapping[str, list[Path]], xsds: Iterable[Path]
) -> tuple[list[BundleEntry], dict[str, str]]:
    """Versions from ``targetNamespace`` alone: for each namespace of ``unknown`` (namespace →
    the XSDs that have it) the one root XSD among ``xsds`` (everything a schema-path directory
    holds). Returns the entries and, per namespace that could not be taken, why."""
    entries: list[BundleEntry] = []
    problems: dict[str, str] = {}
    candidates = {ns: paths for ns, paths in unknown.items() if derive_version(ns) is not None}
    if not candidates:
        return entries, problems
    roots = set(root_schemas(xsds))
    for namespace, paths in candidates.items():
        derived = derive_version(namespace)
        assert derived is not None
        entry = [p for p in (q.resolve() for q in paths) if p in roots]
        if len(entry) == 1:
            entries.append(BundleEntry(namespace, entry[0], *derived))
        elif len(entry) > 1:
            names = ", ".join(str(p) for p in entry)
            problems[namespace] = (
                f"{derived[0]} {derived[1]} ({namespace}): several entry XSDs ({names}); put a "
                f"{BUNDLE_FILE} beside the one to use naming it with schema: FILE"
            )
    return entries, problems
