"""Reading a KoSIT ``scenarios.xml``: validated against the vendored scenario schema, then turned
into :class:`Scenario` objects whose XPaths are compiled and whose resources are resolved inside the
repository.

Every problem is a :class:`~xoev.exceptions.KositConfigError` naming the file and line: not
well-formed, invalid against ``schema/scenarios.xsd``, an XPath lxml cannot compile (XPath 1.0;
KoSIT's Prüftool evaluates XPath 2.0 with Saxon — expressions beyond 1.0 are refused, not guessed),
a resource location that is absolute, a URL, leaves the repository or does not exist.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..exceptions import KositConfigError, UnusableInputError
from ..findings import Severity
from ..parsing import ParserConfig, parse_xml, read_input

__all__ = [
    "SCENARIOS_NS",
    "SCENARIOS_XSD",
    "Resource",
    "Scenario",
    "ScenarioFile",
    "read_scenarios",
    "resolve_location",
]

SCENARIOS_NS = "http://www.xoev.de/de/validator/framework/1/scenarios"
SCENARIOS_XSD = Path(__file__).resolve().parent / "schema" / "scenarios.xsd"
_S = f"{{{SCENARIOS_NS}}}"
_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "information": Severity.INFO}
#: scenarios.xml files are small; official ones stay far below this
_CONFIG_PARSER = ParserConfig(max_bytes=8 * 1024 * 1024)
#: a document every match/acceptMatch is evaluated on once at load (best effort: a predicate on
#: elements this document lacks is not evaluated)
_PROBE = etree.ElementTree(etree.Element("probe"))


@dataclass(frozen=True, slots=True)
class Resource:
    """A ``<resource>``: its name and the file its location resolves to inside the repository."""

    name: str
    location: str
    path: Path
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """One ``<scenario>``: namespaces (prefix → URI) bind the prefixes of ``match`` and
    ``acceptMatch``; ``custom_levels`` maps Schematron rule ids to the level the scenario gives
    them (``createReport/customLevel``)."""

    name: str
    namespaces: dict[str, str]
    match: etree.XPath
    match_text: str
    schemas: tuple[Resource, ...]
    schematrons: tuple[Resource, ...]
    accept_match: etree.XPath | None = None
    accept_match_text: str | None = None
    custom_levels: dict[str, Severity] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ScenarioFile:
    """The parsed ``scenarios.xml``: its name, the scenarios in order, where it came from."""

    path: Path
    repository: Path
    name: str
    framework_version: str
    scenarios: tuple[Scenario, ...]


@functools.lru_cache(maxsize=1)
def _scenarios_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCENARIOS_XSD), parser))


def resolve_location(location: str, repository: Path, *, source: str, line: int | None) -> Path:
    """The file a resource ``location`` names, relative to ``repository`` and inside it."""
    loc = location.strip()
    if not loc or "://" in loc or loc.startswith(("/", "\\", "file:")) or ":" in loc[:3]:
        raise KositConfigError(
            f"resource location {loc!r} must be a path relative to the repository {repository}",
            path=source,
            line=line,
        )
    path = (repository / loc).resolve()
    if not path.is_relative_to(repository):
        raise KositConfigError(
            f"resource location {loc!r} leaves the repository {repository}", path=source, line=line
        )
    if not path.is_file():
        raise KositConfigError(
            f"resource {loc!r} not found in the repository {repository} "
            "(give the folder the locations are relative to as the repository)",
            path=source,
            line=line,
        )
    return path


def _text(element: etree._Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def _xpath(
    element: etree._Element, namespaces: dict[str, str], source: str, what: str
) -> tuple[etree.XPath, str]:
    """Compiled as ``boolean(…)``: the effective boolean value, computed by libxml2 (which, unlike
    lxml's result conversion, also sees the document node, so ``/`` matches)."""
    text = _text(element)
    try:
        etree.XPath(text, namespaces=namespaces)  # the expression's own syntax errors
        compiled = etree.XPath(f"boolean({text})", namespaces=namespaces)
        compiled(_PROBE)  # undefined prefixes and unknown functions show on evaluation
        return compiled, text
    except etree.XPathError as exc:
        raise KositConfigError(
            f"{what} {text!r} is not an XPath 1.0 expression lxml can evaluate: {exc}",
            path=source,
            line=element.sourceline,
        ) from exc


def _resources(parent: etree._Element, repository: Path, source: str) -> tuple[Resource, ...]:
    found = []
    for res in parent.iter(f"{_S}resource"):
        loc_el = res.find(f"{_S}location")
        location = _text(loc_el)
        line = loc_el.sourceline if loc_el is not None else res.sourceline
        path = resolve_location(location, repository, source=source, line=line)
        found.append(Resource(_text(res.find(f"{_S}name")), location, path, line))
    return tuple(found)


def _scenario(element: etree._Element, repository: Path, source: str) -> Scenario:
    namespaces: dict[str, str] = {}
    for ns in element.findall(f"{_S}namespace"):
        namespaces[ns.get("prefix", "").strip()] = _text(ns)
    match_el = element.find(f"{_S}match")
    assert match_el is not None  # required by the scenario schema
    match, match_text = _xpath(match_el, namespaces, source, "match")
    accept_el = element.find(f"{_S}acceptMatch")
    accept, accept_text = (None, None)
    if accept_el is not None:
        accept, accept_text = _xpath(accept_el, namespaces, source, "acceptMatch")
    schemas = _resources(element.find(f"{_S}validateWithXmlSchema"), repository, source)
    schematrons: tuple[Resource, ...] = ()
    for step in element.findall(f"{_S}validateWithSchematron"):
        schematrons += _resources(step, repository, source)
    custom: dict[str, Severity] = {}
    for level_el in element.iterfind(f"{_S}createReport/{_S}customLevel"):
        for rule_id in _text(level_el).split():
            custom[rule_id] = _LEVELS[level_el.get("level", "error").strip()]
    return Scenario(
        name=_text(element.find(f"{_S}name")),
        namespaces=namespaces,
        match=match,
        match_text=match_text,
        schemas=schemas,
        schematrons=schematrons,
        accept_match=accept,
        accept_match_text=accept_text,
        custom_levels=custom,
        line=element.sourceline,
    )


def read_scenarios(path: Path, *, repository: Path) -> ScenarioFile:
    """Parse and check ``path`` (a ``scenarios.xml``); resources resolve inside ``repository``."""
    source = str(path)
    try:
        tree = parse_xml(read_input(path, config=_CONFIG_PARSER), source=source)
    except UnusableInputError as exc:
        raise KositConfigError(
            f"not a readable scenarios file: {exc.reason}", path=source, line=exc.line
        ) from exc
    schema = _scenarios_schema()
    if not schema.validate(tree):
        error = schema.error_log[0]
        raise KositConfigError(
            f"not valid against the KoSIT scenario schema: {error.message}",
            path=source,
            line=error.line,
        )
    root = tree.getroot()
    if not repository.is_dir():
        raise KositConfigError(f"repository {repository} is not a directory", path=source)
    scenarios = tuple(
        _scenario(el, repository.resolve(), source) for el in root.findall(f"{_S}scenario")
    )
    return ScenarioFile(
        path=path,
        repository=repository.resolve(),
        name=_text(root.find(f"{_S}name")),
        framework_version=root.get("frameworkVersion", ""),
        scenarios=scenarios,
    )
