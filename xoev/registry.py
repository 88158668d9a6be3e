"""Which XÖV standards and versions amtsbote knows, and their compiled XSD bundles.

A message is recognised by the namespace of its root element; each :class:`StandardVersion`
names exactly one namespace, so the namespace fixes the version.

Where versions come from
    The built-in standard packages listed in :data:`BUILTIN_PACKAGES`, each exposing
    ``VERSIONS: tuple[StandardVersion, ...]``. They are imported when a registry is created; a
    package that is missing or fails to import is skipped and reported in
    :attr:`SchemaRegistry.problems` (the registry works with what is there).

Where schemas come from
    A built-in version may ship its bundle (``schema`` set, origin ``built-in``). A version with
    ``schema=None`` (a bundle the operator supplies) names its entry file (``entry_name``, e.g.
    ``xdomea.xsd``), which is searched recursively on the **schema path**: the ``schema_path``
    argument (CLI ``--schema-path DIR``, repeatable) followed by the directories in
    ``AMTSBOTE_SCHEMA_PATH`` (``os.pathsep``-separated). A file counts only when its
    ``targetNamespace`` is the version's namespace. The xdomea bundles ship with amtsbote.

    **The schema path overrides built-in bundles**: when a schema-path directory holds the entry
    file of a known version (same file name as the built-in entry, same ``targetNamespace``), that
    bundle is used and its origin is the directory. This lets an operator put a corrected bundle in
    place without a new release; ``amtsbote schemas`` shows where each bundle came from. Among
    schema-path directories the first wins. Explicit ``schema_path`` directories must exist;
    missing directories from the environment variable are skipped and reported in ``problems``.

Versions by configuration
    A bundle on the schema path for a namespace no package declares is a version of its own
    (:mod:`xoev.bundles`): described by a ``bundle.yaml`` beside its XSDs (standard, version,
    schema, codelists, KoSIT configuration), or — without one — by its XSD's ``targetNamespace``
    when that follows an XÖV pattern naming standard and version. A ``bundle.yaml`` for a namespace
    a package declares overrides that version's bundle and keeps its message types and business
    rules. Origin is the bundle folder; :attr:`StandardVersion.configured_by` says how it was
    configured. Unusable ``bundle.yaml`` files are reported in :attr:`SchemaRegistry.problems` and
    in the error for a document of an unknown namespace. A namespace amtsbote knows of but does
    not ship (XGewerbeanzeige 2.0, 2.1, XGewerbeordnung) without a bundle is a
    :class:`~xoev.exceptions.VersionNotBuiltInError`.

Codelists
    :attr:`SchemaRegistry.codelists` (loaded on first use) holds the genericode files named by the
    versions (``StandardVersion.codelists``) plus every genericode ``*.xml`` found on the schema
    path; schema-path lists override built-in ones with the same (listURI, version).

Compilation
    Each bundle is compiled once (lxml ``XMLSchema``) with a parser that has entity resolution,
    DTD loading and network access off; ``xs:import``/``xs:include`` resolve local files only.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lxml import etree

from .bundles import BUNDLE_FILE, discover, load_bundle, not_built_in, target_namespace
from .codelists import CodelistRegistry, is_genericode
from .exceptions import (
    BundleError,
    CodelistError,
    KositConfigError,
    SchemaCompileError,
    SchemaPathError,
    SchemaUnavailableError,
    UnknownDocumentError,
    VersionNotBuiltInError,
)
from .namespaces import split_tag
from .standards import StandardVersion
from .xsd import CompiledSchema

if TYPE_CHECKING:
    from .kosit import KositConfiguration

__all__ = [
    "BUILTIN_PACKAGES",
    "SCHEMA_PATH_ENV",
    "SchemaRegistry",
    "SchemaStatus",
    "default_registry",
    "reset_default_registry",
]

BUILTIN_PACKAGES: tuple[str, ...] = ("xoev.xgewerbeanzeige", "xoev.xdomea", "xoev.rueckmeldung")
SCHEMA_PATH_ENV = "AMTSBOTE_SCHEMA_PATH"
MAX_SCAN_FILES = 50_000
"""Files looked at per registry when walking the schema path (a guard against ``/``)."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """A version as the registry resolved it, for listings (``amtsbote schemas``)."""

    version: StandardVersion
    available: bool
    """Is there a bundle (built in or found on the schema path)?"""
    searched: tuple[str, ...]
    """Schema-path directories searched for the entry file."""

    def to_dict(self) -> dict[str, Any]:
        sv = self.version
        return {
            "standard": sv.standard,
            "version": sv.version,
            "namespace": sv.namespace,
            "available": self.available,
            "schema": str(sv.schema) if sv.schema else None,
            "origin": sv.origin if self.available else None,
            "entry_name": sv.entry_name or (sv.schema.name if sv.schema else None),
            "searched": list(self.searched),
            "message_types": [
                {"code": mt.code, "root": mt.root, "description": mt.description}
                for mt in sv.message_types
            ],
            "codelists": [str(p) for p in sv.codelists],
            "configured_by": sv.configured_by,
            "kosit": str(sv.kosit) if sv.kosit else None,
        }


class _LocalOnlyResolver(etree.Resolver):
    """Lets libxml2 load local files for ``xs:import``/``xs:include``; remote URLs are noted
    and left to the parser's ``no_network``, which refuses them."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        scheme = urlparse(system_url).scheme.lower()
        if scheme and scheme != "file" and len(scheme) > 1:  # "c:" is a drive letter
            self.refused.append(system_url)
        return None


def _compile(path: Path, origin: str) -> CompiledSchema:
    resolver = _LocalOnlyResolver()
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    parser.resolvers.add(resolver)
    try:
        doc = etree.parse(str(path), parser)
        schema = etree.XMLSchema(doc)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        detail = str(exc)
        if resolver.refused:
            detail += f" (refers to remote resources, network access is off: {resolver.refused})"
        raise SchemaCompileError(str(path), detail) from exc
    if resolver.refused:
        # libxml2 only warns about a failed xs:import and compiles without it
        raise SchemaCompileError(
            str(path),
            f"refers to remote resources, network access is off: {', '.join(resolver.refused)}",
        )
    return CompiledSchema(schema, path=str(path), origin=origin)


def _env_path() -> list[str]:
    raw = os.environ.get(SCHEMA_PATH_ENV, "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


class SchemaRegistry:
    """Standards and versions by root namespace, with compiled schemas and codelists.

    ``schema_path``: directories searched (recursively) for bundles and genericode files, before
    those of ``AMTSBOTE_SCHEMA_PATH`` (read unless ``use_env=False``). ``packages``: standard
    packages to import. ``versions``: further versions (e.g. for embedding or tests), treated like
    built-ins. Thread-safe.
    """

    def __init__(
        self,
        schema_path: Iterable[str | os.PathLike[str]] = (),
        *,
        use_env: bool = True,
        packages: Sequence[str] = BUILTIN_PACKAGES,
        versions: Iterable[StandardVersion] = (),
    ) -> None:
        self.problems: list[str] = []
        dirs: list[Path] = []
        for entry in schema_path:
            p = Path(entry)
            if not p.is_dir():
                raise SchemaPathError(os.fspath(entry), "is not a directory")
            dirs.append(p.resolve())
        if use_env:
            for entry in _env_path():
                p = Path(entry)
                if p.is_dir():
                    dirs.append(p.resolve())
                else:
                    self.problems.append(f"{SCHEMA_PATH_ENV}: {entry} is not a directory, skipped")
        self.schema_path: tuple[Path, ...] = tuple(dict.fromkeys(dirs))

        declared: list[StandardVersion] = []
        for name in packages:
            declared.extend(self._import_versions(name))
        declared.extend(versions)

        wanted = {self._entry_name(sv) for sv in declared} - {None}
        self._files: dict[Path, dict[str, list[Path]]] = {}
        self._xml_files: dict[Path, list[Path]] = {}
        self._xsd_files: dict[Path, list[Path]] = {}
        self._bundle_files: dict[Path, list[Path]] = {}
        for directory in self.schema_path:
            self._index(directory, {w for w in wanted if w})

        self._by_ns: dict[str, StandardVersion] = {}
        for sv in declared:
            if sv.namespace in self._by_ns:
                other = self._by_ns[sv.namespace]
                self.problems.append(
                    f"{sv.standard} {sv.version}: namespace {sv.namespace} already taken by "
                    f"{other.standard} {other.version}, ignored"
                )
                continue
            self._by_ns[sv.namespace] = self._resolve(sv)
        self.bundle_problems: list[str] = []
        """Bundles on the schema path that cannot be used (also in :attr:`problems`)."""
        self._unconfigured: dict[str, list[Path]] = {}
        self._ns_problems: dict[str, str] = {}
        self._kosit_lines: dict[str, int | None] = {}
        self._configure()
        self._compiled: dict[str, CompiledSchema] = {}
        self._kosit: dict[str, KositConfiguration] = {}
        self._lock = threading.Lock()
        self._codelists: CodelistRegistry | None = None

    # -- construction helpers -----------------------------------------------------------------

    def _import_versions(self, name: str) -> list[StandardVersion]:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                self.problems.append(f"{name}: not installed, skipped")
            else:
                self.problems.append(f"{name}: import failed ({exc}), skipped")
            return []
        except Exception as exc:  # a broken standard package must not take the others down
            self.problems.append(f"{name}: import failed ({type(exc).__name__}: {exc}), skipped")
            return []
        found = getattr(module, "VERSIONS", None)
        if not isinstance(found, tuple | list) or not all(
            isinstance(v, StandardVersion) for v in found
        ):
            self.problems.append(f"{name}: has no VERSIONS tuple of StandardVersion, skipped")
            return []
        return list(found)

    @staticmethod
    def _entry_name(sv: StandardVersion) -> str | None:
        if sv.entry_name:
            return sv.entry_name
        return sv.schema.name if sv.schema is not None else None

    def _index(self, directory: Path, wanted: set[str]) -> None:
        files: dict[str, list[Path]] = {}
        xml: list[Path] = []
        xsd: list[Path] = []
        bundles: list[Path] = []
        self._xsd_files[directory], self._bundle_files[directory] = xsd, bundles
        seen = 0
        for current, dirnames, filenames in os.walk(directory):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                seen += 1
                if seen > MAX_SCAN_FILES:
                    self.problems.append(
                        f"schema path {directory}: more than {MAX_SCAN_FILES} files, "
                        f"stopped looking"
                    )
                    self._files[directory], self._xml_files[directory] = files, xml
                    return
                if filename in wanted:
                    files.setdefault(filename, []).append(Path(current, filename))
                lower = filename.lower()
                if lower.endswith(".xml"):
                    xml.append(Path(current, filename))
                elif lower.endswith(".xsd"):
                    xsd.append(Path(current, filename))
                elif filename == BUNDLE_FILE:
                    bundles.append(Path(current, filename))
        self._files[directory], self._xml_files[directory] = files, xml

    def _resolve(self, sv: StandardVersion) -> StandardVersion:
        name = self._entry_name(sv)
        if not name:
            return sv
        for directory in self.schema_path:
            for candidate in self._files.get(directory, {}).get(name, []):
                if target_namespace(candidate) == sv.namespace:
                    return dataclasses.replace(sv, schema=candidate, origin=str(directory))
        return sv

    def _configure(self) -> None:
        """Versions by configuration (:mod:`xoev.bundles`): ``bundle.yaml`` files first, then XSDs
        of unknown namespaces outside any bundle folder; the first schema-path directory wins."""
        claimed: list[Path] = []
        configured: dict[str, str] = {}
        known = {ns: (sv.standard, sv.version) for ns, sv in self._by_ns.items()}
        for directory in self.schema_path:
            for file in self._bundle_files.get(directory, []):
                claimed.append(file.parent.resolve())
                try:
                    bundle = load_bundle(file, known=known)
                except BundleError as exc:
                    self.bundle_problems.append(str(exc))
                    self.problems.append(f"bundle skipped: {exc}")
                    continue
                codelists = tuple(p for p in bundle.codelists if is_genericode(p))
                for entry in bundle.entries:
                    if entry.namespace in configured:
                        self.problems.append(
                            f"{bundle.file}: {entry.namespace} already configured by "
                            f"{configured[entry.namespace]}, ignored"
                        )
                        continue
                    configured[entry.namespace] = str(bundle.file)
                    self._kosit_lines[entry.namespace] = bundle.kosit_line
                    changes: dict[str, Any] = {
                        "schema": entry.schema,
                        "origin": str(bundle.directory),
                        "kosit": bundle.kosit,
                        "kosit_repository": bundle.kosit_repository,
                        "configured_by": str(bundle.file),
                    }
                    declared = self._by_ns.get(entry.namespace)
                    if declared is not None:  # overrides the bundle, keeps types and rules
                        changes["codelists"] = declared.codelists + codelists
                        self._by_ns[entry.namespace] = dataclasses.replace(declared, **changes)
                    else:
                        self._by_ns[entry.namespace] = StandardVersion(
                            standard=entry.standard,
                            version=entry.version,
                            namespace=entry.namespace,
                            codelists=codelists,
                            **changes,
                        )

        for directory in self.schema_path:
            free = [
                p
                for p in self._xsd_files.get(directory, [])
                if not any(p.resolve().is_relative_to(c) for c in claimed)
            ]
            unknown: dict[str, list[Path]] = {}
            for path in free:
                namespace = target_namespace(path)
                if namespace and namespace not in self._by_ns:
                    unknown.setdefault(namespace, []).append(path)
            entries, problems = discover(unknown, free)
            for entry in entries:
                if entry.namespace in self._by_ns:
                    continue
                self._by_ns[entry.namespace] = StandardVersion(
                    standard=entry.standard,
                    version=entry.version,
                    namespace=entry.namespace,
                    schema=entry.schema,
                    origin=str(entry.schema.parent),
                    configured_by="targetNamespace",
                )
            for namespace, problem in problems.items():
                self._ns_problems.setdefault(namespace, problem)
            for namespace, paths in unknown.items():
                if namespace not in self._by_ns:
                    self._unconfigured.setdefault(namespace, []).extend(paths)

    # -- queries ------------------------------------------------------------------------------

    def versions(self) -> tuple[StandardVersion, ...]:
        """Every known version, resolved against the schema path, by standard and version."""
        return tuple(
            sorted(self._by_ns.values(), key=lambda v: (v.standard.lower(), v.version, v.namespace))
        )

    def status(self) -> list[SchemaStatus]:
        searched = tuple(str(d) for d in self.schema_path)
        return [
            SchemaStatus(version=sv, available=sv.schema is not None, searched=searched)
            for sv in self.versions()
        ]

    def supported(self) -> list[str]:
        """``"<standard> <version> (<namespace>)"`` for every known version."""
        return [f"{sv.standard} {sv.version} ({sv.namespace})" for sv in self.versions()]

    def get(self, namespace: str | None) -> StandardVersion | None:
        """The version for a root namespace, or None."""
        return self._by_ns.get(namespace) if namespace else None

    def lookup(
        self, namespace: str | None, *, root: str = "?", source: str | None = None
    ) -> StandardVersion:
        """The version for a root namespace, or :class:`UnknownDocumentError`."""
        sv = self._by_ns.get(namespace) if namespace else None
        if sv is not None:
            return sv
        hints = []
        if namespace in self._ns_problems:
            hints.append(self._ns_problems[namespace])
        elif namespace in self._unconfigured:
            folders = ", ".join(dict.fromkeys(str(p.parent) for p in self._unconfigured[namespace]))
            hints.append(
                f"the schema path has XSDs with this targetNamespace (in {folders}), but "
                f"nothing names their standard and version: put a {BUNDLE_FILE} with "
                f'standard and version beside them (docs/xoev.md, "Versions by configuration")'
            )
        if self.bundle_problems:
            hints.append("unusable bundles: " + "; ".join(self.bundle_problems))
        skipped = [p for p in self.problems if "skipped" in p and p.startswith("xoev.")]
        if skipped:
            hints.append("not loaded: " + "; ".join(skipped))
        unshipped = not_built_in(namespace)
        if unshipped is not None and namespace:
            raise VersionNotBuiltInError(
                standard=unshipped[0],
                version=unshipped[1],
                namespace=namespace,
                searched=[str(d) for d in self.schema_path],
                hint="; ".join(hints) or None,
            )
        hint = "; ".join(hints) or None
        raise UnknownDocumentError(namespace, root, self.supported(), source=source, hint=hint)

    def detect(
        self, tree: etree._ElementTree | etree._Element, *, source: str | None = None
    ) -> StandardVersion:
        root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
        namespace, local = split_tag(root.tag)
        return self.lookup(namespace, root=local, source=source)

    def schema(self, sv: StandardVersion) -> CompiledSchema:
        """The compiled bundle of a version (compiled on first use, then cached)."""
        compiled = self._compiled.get(sv.namespace)
        if compiled is not None:
            return compiled
        with self._lock:
            compiled = self._compiled.get(sv.namespace)
            if compiled is None:
                resolved = self._by_ns.get(sv.namespace, sv)
                if resolved.schema is None:
                    raise SchemaUnavailableError(
                        standard=resolved.standard,
                        version=resolved.version,
                        namespace=resolved.namespace,
                        entry_name=self._entry_name(resolved),
                        searched=[str(d) for d in self.schema_path],
                    )
                compiled = _compile(resolved.schema, resolved.origin)
                self._compiled[sv.namespace] = compiled
        return compiled

    def kosit(self, sv: StandardVersion) -> KositConfiguration | None:
        """The KoSIT configuration of a version's bundle (loaded on first use, then cached), or
        None; :class:`~xoev.exceptions.BundleError` when it cannot be used."""
        resolved = self._by_ns.get(sv.namespace, sv)
        if resolved.kosit is None:
            return None
        config = self._kosit.get(sv.namespace)
        if config is not None:
            return config
        with self._lock:
            config = self._kosit.get(sv.namespace)
            if config is None:
                from .kosit import KositConfiguration

                try:
                    config = KositConfiguration.load(
                        resolved.kosit, repository=resolved.kosit_repository
                    )
                except KositConfigError as exc:
                    raise BundleError(
                        f"kosit: the KoSIT configuration cannot be used: {exc}",
                        path=resolved.configured_by,
                        line=self._kosit_lines.get(sv.namespace),
                    ) from exc
                self._kosit[sv.namespace] = config
        return config

    @property
    def codelists(self) -> CodelistRegistry:
        """Codelists of the known versions plus those on the schema path (loaded on first use)."""
        registry = self._codelists
        if registry is not None:
            return registry
        with self._lock:
            if self._codelists is None:
                self._codelists = self._load_codelists()
            return self._codelists

    def _load_codelists(self) -> CodelistRegistry:
        registry = CodelistRegistry()
        for sv in self._by_ns.values():
            for path in sv.codelists:
                try:
                    registry.load_file(path)
                except CodelistError as exc:
                    self.problems.append(str(exc))
        # first schema-path directory wins: load in reverse, later loads replace earlier ones
        for directory in reversed(self.schema_path):
            for path in self._xml_files.get(directory, []):
                if not is_genericode(path):
                    continue
                try:
                    registry.load_file(path, replace=True)
                except CodelistError as exc:
                    self.problems.append(str(exc))
        return registry


_default: SchemaRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> SchemaRegistry:
    """The process-wide registry (built-ins plus ``AMTSBOTE_SCHEMA_PATH``), created on first use."""
    global _default
    registry = _default
    if registry is None:
        with _default_lock:
            if _default is None:
                _default = SchemaRegistry()
            registry = _default
    return registry


def reset_default_registry() -> None:
    """Forget the default registry (e.g. after ``AMTSBOTE_SCHEMA_PATH`` changed)."""
    global _default
    with _default_lock:
        _default = None
