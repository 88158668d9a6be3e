"""XML Schema validation with findings a clerk can read.

:class:`CompiledSchema` wraps an ``lxml.etree.XMLSchema`` (compiled once by the registry) and turns
libxml2's error log into :class:`SchemaFinding` objects: severity, line, XPath of the element
concerned, ``rule='xsd:<libxml2 error type>'`` and a message in XÖV wording that keeps the element
names as they are, e.g. ``Pflichtelement betriebArt fehlt in gewerbe``. The raw libxml2 message
stays available as :attr:`SchemaFinding.raw` (it may quote instance values, so it is left out of
``to_dict()``; the rewritten message never quotes instance values, only schema values).

libxml2 stops checking the rest of an element's content after the first "This element is not
expected" error, so a second defect further down (e.g. ``familienname`` missing in a later
``beteiligtePerson``) would go unreported. For invalid documents only, :func:`schema_findings`
therefore recovers on a copy of the tree: it inserts an empty placeholder for the element libxml2
expected (or, if that does not help, removes the unexpected element), validates again, and repeats,
up to :data:`MAX_RECOVERY_STEPS` times (fewer for large documents: the re-validated elements stay
below :data:`MAX_RECOVERY_ELEMENTS`, so a huge message full of errors cannot tie the validator up).
Errors inside placeholders are ignored; every finding points at the original document (line,
XPath). What recovery could not work through is reported as libxml2 put it.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .findings import Finding, Severity
from .namespaces import local_name

__all__ = [
    "MAX_FINDINGS",
    "MAX_RECOVERY_ELEMENTS",
    "MAX_RECOVERY_ERRORS",
    "MAX_RECOVERY_STEPS",
    "CompiledSchema",
    "SchemaFinding",
    "rewrite_message",
]

MAX_RECOVERY_STEPS = 64
"""Upper bound of recovery steps (each one re-validation) per document."""
MAX_RECOVERY_ELEMENTS = 2_000_000
"""Upper bound of elements re-validated during recovery per document (steps × elements)."""
MAX_RECOVERY_ERRORS = 200
"""Recovery runs only when the first validation reported at most this many errors."""
MAX_FINDINGS = 1000
"""Schema findings listed per document; the rest is counted in one more finding."""
_MAX_INSERTED = 8  # placeholders tried for one unexpected element

_MAX_LISTED = 12  # expected elements / enumeration values named in one message


@dataclass(frozen=True, slots=True)
class SchemaFinding(Finding):
    """A finding from XML Schema validation; ``raw`` is libxml2's own message."""

    raw: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = Finding.to_dict(self)
        data.pop("raw", None)
        return data


class CompiledSchema:
    """A compiled XSD bundle. ``validate`` is thread-safe: lxml keeps the error log on the schema
    object, so validation and reading the log happen under one lock."""

    def __init__(self, schema: etree.XMLSchema, *, path: str, origin: str) -> None:
        self.schema = schema
        self.path = path
        self.origin = origin
        self._lock = threading.Lock()

    def validate(self, tree: etree._ElementTree) -> tuple[bool, list[Any]]:
        """``(valid, error log entries)``; the entries list is empty when valid."""
        with self._lock:
            if self.schema.validate(tree):
                return True, []
            return False, list(self.schema.error_log)

    def findings(self, tree: etree._ElementTree) -> list[Finding]:
        ok, entries = self.validate(tree)
        return [] if ok else schema_findings(self, tree, entries)


# --------------------------------------------------------------------------------------------
# message rewriting

_ELEMENT_PREFIX = re.compile(r"^Element '(?P<el>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: ")
_CLARK = re.compile(r"\{[^}]*\}")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( (?P<list>.*) \)\.?$")


def _names(text: str) -> str:
    return _CLARK.sub("", text)


def _expected_list(rest: str) -> list[str]:
    """Clark names from "Expected is ( a, b )" (wildcards like ``##other{ns}*`` kept as is)."""
    match = _EXPECTED.search(rest)
    if not match:
        return []
    return [item.strip() for item in match.group("list").split(",") if item.strip()]


def _listing(items: Sequence[str]) -> str:
    shown = [_names(i) for i in items[:_MAX_LISTED]]
    more = len(items) - len(shown)
    return ", ".join(shown) + (f" … (+{more})" if more > 0 else "")


def _missing_message(parent: str, expected: Sequence[str]) -> str:
    if len(expected) == 1:
        return f"Pflichtelement {_names(expected[0])} fehlt in {parent}"
    return f"In {parent} fehlt ein Pflichtelement, eines von: {_listing(expected)}"


def _not_allowed_message(element: str, parent: str | None, expected: Sequence[str]) -> str:
    where = f" in {parent}" if parent else ""
    if expected:
        return (
            f"Element {element} ist{where} an dieser Stelle nicht erlaubt "
            f"(erwartet: {_listing(expected)})"
        )
    return f"Element {element} ist{where} nicht erlaubt"


_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\[facet 'pattern'\] The value '.*' is not accepted by the pattern "
            r"'(?P<p>.*)'\.$"
        ),
        "Wert in {what} entspricht nicht dem Muster '{p}'",
    ),
    (
        re.compile(
            r"\[facet 'enumeration'\] The value '.*' is not an element of the set "
            r"\{(?P<s>.*)\}\.$"
        ),
        "Wert in {what} ist nicht zulässig (erlaubt: {s})",
    ),
    (
        re.compile(
            r"\[facet 'maxLength'\] The value has a length of '(?P<n>\d+)'; this exceeds the "
            r"allowed maximum length of '(?P<m>\d+)'\.$"
        ),
        "Wert in {what} ist {n} Zeichen lang, erlaubt sind höchstens {m}",
    ),
    (
        re.compile(
            r"\[facet 'minLength'\] The value has a length of '(?P<n>\d+)'; this underruns the "
            r"allowed minimum length of '(?P<m>\d+)'\.$"
        ),
        "Wert in {what} ist {n} Zeichen lang, nötig sind mindestens {m}",
    ),
    (
        re.compile(
            r"\[facet 'length'\] The value has a length of '(?P<n>\d+)'; this differs from the "
            r"allowed length of '(?P<m>\d+)'\.$"
        ),
        "Wert in {what} ist {n} Zeichen lang, nötig sind genau {m}",
    ),
    (
        re.compile(
            r"\[facet '(?:max|min)(?:In|Ex)clusive'\] The value '.*' is greater than "
            r"(?:or equal to )?the maximum value allowed \('(?P<m>.*)'\)\.$"
        ),
        "Wert in {what} ist größer als erlaubt (Höchstwert {m})",
    ),
    (
        re.compile(
            r"\[facet '(?:max|min)(?:In|Ex)clusive'\] The value '.*' is less than "
            r"(?:or equal to )?the minimum value allowed \('(?P<m>.*)'\)\.$"
        ),
        "Wert in {what} ist kleiner als erlaubt (Mindestwert {m})",
    ),
    (
        re.compile(r"\[facet 'maxExclusive'\] The value '.*' must be less than '(?P<m>.*)'\.$"),
        "Wert in {what} muss kleiner sein als {m}",
    ),
    (
        re.compile(r"\[facet 'minExclusive'\] The value '.*' must be greater than '(?P<m>.*)'\.$"),
        "Wert in {what} muss größer sein als {m}",
    ),
    (
        re.compile(r"\[facet 'totalDigits'\].*\('(?P<m>\d+)'\)\.$"),
        "Wert in {what} hat mehr als {m} Ziffern",
    ),
    (
        re.compile(r"\[facet 'fractionDigits'\].*\('(?P<m>\d+)'\)\.$"),
        "Wert in {what} hat mehr als {m} Nachkommastellen",
    ),
    (
        re.compile(
            r"'.*' is not a valid value of the (?:local )?(?:atomic|union|list) type"
            r"(?: '(?P<t>[^']*)')?\.$"
        ),
        "Wert in {what} ist kein gültiger Wert des Typs {t}",
    ),
    (
        re.compile(
            r"The actual value '.*' does not match the fixed value constraint '(?P<f>.*)'\.$"
        ),
        "Wert in {what} entspricht nicht dem festen Wert '{f}'",
    ),
    (
        re.compile(r"The attribute '(?P<a>[^']+)' is not allowed\.$"),
        "Attribut {a} ist in {el} nicht erlaubt",
    ),
    (
        re.compile(r"The attribute '(?P<a>[^']+)' is required but missing\.$"),
        "Pflichtattribut {a} fehlt in {el}",
    ),
    (
        re.compile(
            r"Character content other than whitespace is not allowed because the content "
            r"type is 'element-only'\.$"
        ),
        "{el} darf keinen Text enthalten, nur Kindelemente",
    ),
    (
        re.compile(r"Character content is not allowed, because the content type is empty\.$"),
        "{el} muss leer sein",
    ),
    (
        re.compile(
            r"Element content is not allowed, because the content type is a simple type "
            r"definition\.$"
        ),
        "{el} darf keine Kindelemente enthalten",
    ),
    (
        re.compile(r"No matching global declaration available for the validation root\.$"),
        "Wurzelelement {el} ist im Schema nicht deklariert",
    ),
)


def rewrite_message(raw: str, parent: str | None = None) -> str:
    """libxml2's English schema message → XÖV wording, element names as they are.

    ``parent`` is the local name of the parent element, needed for "This element is not
    expected" (the missing element is missing *in the parent*). Instance values are not quoted.
    """
    raw = raw.strip()
    match = _ELEMENT_PREFIX.match(raw)
    if not match:
        return _names(raw)
    element = local_name(match.group("el"))
    attr = match.group("attr")
    rest = raw[match.end() :]
    if rest.startswith("Missing child element(s)."):
        return _missing_message(element, _expected_list(rest))
    if rest.startswith("This element is not expected."):
        expected = _expected_list(rest)
        if expected and parent:
            return _missing_message(parent, expected)
        return _not_allowed_message(element, parent, expected)
    what = f"{element}/@{attr}" if attr else element
    for pattern, template in _REWRITES:
        m = pattern.search(rest)
        if m:
            values = {k: (v if v is not None else "?") for k, v in m.groupdict().items()}
            if values.get("t") == "?":
                values["t"] = "(lokal definiert)"
            if "s" in values:
                values["s"] = _listing([v.strip().strip("'") for v in values["s"].split(",")])
            return template.format(what=what, el=element, **values)
    # anything else: libxml2's words, without the instance values it quotes
    return f"{what}: {_scrub(_names(rest))}"


_QUOTED_VALUE = re.compile(r"(?i)(value(?: of)?(?: has)?\s*)'[^']*'")
_LEADING_VALUE = re.compile(r"^'[^']*'(?= is not)")
_KEY_SEQUENCE = re.compile(r"\[('[^']*'(?:, )?)+\]")


def _scrub(text: str) -> str:
    text = _QUOTED_VALUE.sub(r"\1'…'", text)
    text = _LEADING_VALUE.sub("Der Wert", text)
    return _KEY_SEQUENCE.sub("[…]", text)


# --------------------------------------------------------------------------------------------
# log entries → findings


def _is_truncating(entry: Any) -> bool:
    return "This element is not expected." in entry.message


def _entry_xpath(entry: Any) -> str | None:
    path: str | None = entry.path
    if path and ", attribute '" in entry.message:
        m = _ELEMENT_PREFIX.match(entry.message)
        if m and m.group("attr"):
            path += f"/@{m.group('attr')}"
    return path or None


def _parent_of_path(path: str | None) -> str | None:
    if not path or path.count("/") < 2:
        return None
    return path.rsplit("/", 1)[0]


_STEP_INDEX = re.compile(r"\[\d+\]$")


def _parent_name(entry: Any, tree: etree._ElementTree | None = None) -> str | None:
    """Local name of the parent of the element an entry is about, read from its path when the
    step is named (``xga:gewerbe``), else looked up in the tree (``*[3]``, default namespace)."""
    parent_path = _parent_of_path(entry.path)
    if parent_path is None:
        return None
    step = _STEP_INDEX.sub("", parent_path.rsplit("/", 1)[1])
    if step and not step.startswith("*"):
        return step.rpartition(":")[2]
    node = _locate(tree, parent_path, {}) if tree is not None else None
    return local_name(node.tag) if node is not None else None


def _simple_finding(entry: Any, tree: etree._ElementTree) -> SchemaFinding:
    truncating = _is_truncating(entry)
    parent = _parent_name(entry, tree) if truncating else None
    xpath = _entry_xpath(entry)
    if truncating and parent and _expected_list(entry.message):
        xpath = _parent_of_path(xpath) or xpath
    return SchemaFinding(
        severity=Severity.ERROR,
        message=rewrite_message(entry.message, parent),
        rule=f"xsd:{entry.type_name}",
        line=entry.line or None,
        xpath=xpath,
        raw=entry.message,
    )


def _nsmap(root: etree._Element) -> dict[str, str]:
    namespaces: dict[str, str] = {}
    for el in root.iter(tag=etree.Element):
        for prefix, uri in el.nsmap.items():
            if prefix and prefix not in namespaces:
                namespaces[prefix] = uri
    return namespaces


def _locate(
    tree: etree._ElementTree | None, path: str | None, namespaces: dict[str, str] | None
) -> etree._Element | None:
    if tree is None or not path:
        return None
    if namespaces is None:
        namespaces = _nsmap(tree.getroot())
    try:
        result = tree.xpath(path, namespaces=namespaces)
    except etree.XPathError:
        return None
    if isinstance(result, list) and result and isinstance(result[0], etree._Element):
        return result[0]
    return None


@dataclass(slots=True)
class _Event:
    """One "not expected" element being recovered from."""

    element: etree._Element
    parent: etree._Element
    entry: Any
    expected: list[str]
    inserted: list[etree._Element] = field(default_factory=list)


def schema_findings(
    compiled: CompiledSchema, tree: etree._ElementTree, entries: Sequence[Any]
) -> list[Finding]:
    """Findings for an invalid document, given the error log of its first validation.

    At most :data:`MAX_FINDINGS` are listed (then one finding counts the rest); recovery runs
    only for up to :data:`MAX_RECOVERY_ERRORS` first-pass errors."""
    if len(entries) <= MAX_RECOVERY_ERRORS and any(_is_truncating(e) for e in entries):
        findings = _Recovery(compiled, tree).run(entries)
    else:
        findings = [_simple_finding(e, tree) for e in entries[:MAX_FINDINGS]]
    if len(entries) > MAX_FINDINGS or len(findings) > MAX_FINDINGS:
        rest = max(len(entries), len(findings)) - MAX_FINDINGS
        findings = findings[:MAX_FINDINGS]
        findings.append(
            SchemaFinding(
                severity=Severity.ERROR,
                message=f"weitere {rest} Schemafehler sind nicht einzeln aufgeführt",
                rule="xsd:TOO_MANY_ERRORS",
            )
        )
    return findings


class _Recovery:
    def __init__(self, compiled: CompiledSchema, tree: etree._ElementTree) -> None:
        self.compiled = compiled
        self.orig_tree = tree
        orig_root = tree.getroot()
        copy_root = copy.deepcopy(orig_root)
        self.tree: etree._ElementTree = copy_root.getroottree()
        self.back: dict[etree._Element, etree._Element] = dict(
            zip(copy_root.iter(), orig_root.iter(), strict=True)
        )
        self.namespaces = _nsmap(copy_root)
        self.placeholders: set[etree._Element] = set()
        self.findings: list[Finding] = []
        self.seen: set[tuple[str | None, str, str]] = set()

    # -- helpers ------------------------------------------------------------------------------

    def _node(self, entry: Any) -> etree._Element | None:
        return _locate(self.tree, entry.path, self.namespaces)

    def _in_placeholder(self, node: etree._Element | None) -> bool:
        while node is not None:
            if node in self.placeholders:
                return True
            node = node.getparent()
        return False

    def _orig(self, node: etree._Element) -> etree._Element | None:
        return self.back.get(node)

    def _xpath(self, node: etree._Element | None) -> str | None:
        orig = self._orig(node) if node is not None else None
        return self.orig_tree.getpath(orig) if orig is not None else None

    def _line(self, node: etree._Element | None) -> int | None:
        orig = self._orig(node) if node is not None else None
        return orig.sourceline if orig is not None else None

    def _add(self, finding: SchemaFinding) -> None:
        key = (finding.xpath, finding.rule, finding.message)
        if key not in self.seen:
            self.seen.add(key)
            self.findings.append(finding)

    def _record(self, entry: Any, node: etree._Element | None) -> None:
        if node is None:
            self._add(_simple_finding(entry, self.orig_tree))
            return
        xpath = self._xpath(node)
        if xpath and ", attribute '" in entry.message:
            m = _ELEMENT_PREFIX.match(entry.message)
            if m and m.group("attr"):
                xpath += f"/@{m.group('attr')}"
        self._add(
            SchemaFinding(
                severity=Severity.ERROR,
                message=rewrite_message(entry.message),
                rule=f"xsd:{entry.type_name}",
                line=self._line(node) or entry.line or None,
                xpath=xpath,
                raw=entry.message,
            )
        )

    def _validate(self) -> list[Any]:
        return self.compiled.validate(self.tree)[1]

    def _insert(self, event: _Event, clark_name: str) -> None:
        placeholder = etree.Element(clark_name)
        event.parent.insert(event.parent.index(event.element), placeholder)
        self.placeholders.add(placeholder)
        event.inserted.append(placeholder)

    def _remove(self, node: etree._Element) -> None:
        parent = node.getparent()
        if parent is not None:
            parent.remove(node)
        self.placeholders.discard(node)

    @staticmethod
    def _pick(expected: Sequence[str], event: _Event | None) -> str | None:
        if event is not None and len(event.inserted) >= _MAX_INSERTED:
            return None
        tried = {p.tag for p in event.inserted} if event else set()
        for name in reversed(expected):
            if name.startswith("##") or name.endswith("*") or name in tried:
                continue
            return name
        return None

    def _blocked(self, entries: Iterable[Any], event: _Event) -> bool:
        """Is the event's element (or one of its placeholders) still "not expected"?"""
        for entry in entries:
            if _is_truncating(entry):
                node = self._node(entry)
                if node is event.element or node in event.inserted:
                    return True
        return False

    def _minimise(self, event: _Event) -> bool:
        """Drop placeholders that were not needed for the element to be accepted; True when the
        tree changed."""
        changed = False
        if len(event.inserted) < 2:
            return changed
        for placeholder in list(event.inserted):
            index = event.parent.index(placeholder)
            position = event.inserted.index(placeholder)
            event.parent.remove(placeholder)
            event.inserted.remove(placeholder)
            if self._blocked(self._validate(), event):
                event.parent.insert(index, placeholder)
                event.inserted.insert(position, placeholder)
            else:
                self.placeholders.discard(placeholder)
                changed = True
        return changed

    def _missing(self, event: _Event) -> None:
        parent_name = local_name(event.parent.tag)
        for placeholder in event.inserted:
            self._add(
                SchemaFinding(
                    severity=Severity.ERROR,
                    message=_missing_message(parent_name, [placeholder.tag]),
                    rule=f"xsd:{event.entry.type_name}",
                    line=self._line(event.element) or event.entry.line or None,
                    xpath=self._xpath(event.parent),
                    raw=event.entry.message,
                )
            )

    def _not_allowed(self, event: _Event) -> None:
        self._add(
            SchemaFinding(
                severity=Severity.ERROR,
                message=_not_allowed_message(
                    local_name(event.element.tag), local_name(event.parent.tag), event.expected
                ),
                rule=f"xsd:{event.entry.type_name}",
                line=self._line(event.element) or event.entry.line or None,
                xpath=self._xpath(event.element),
                raw=event.entry.message,
            )
        )
        for placeholder in event.inserted:
            self._remove(placeholder)
        event.inserted.clear()
        self._remove(event.element)

    # -- the loop -----------------------------------------------------------------------------

    def _record_truncation(self, entry: Any, node: etree._Element | None) -> None:
        """A "not expected" error that recovery could not work through: reported as libxml2
        put it (the missing element is then a guess from the expected list)."""
        parent = node.getparent() if node is not None else None
        expected = _expected_list(entry.message)
        target = parent if parent is not None and expected else node
        self._add(
            SchemaFinding(
                severity=Severity.ERROR,
                message=rewrite_message(
                    entry.message, local_name(parent.tag) if parent is not None else None
                ),
                rule=f"xsd:{entry.type_name}",
                line=self._line(node) or entry.line or None,
                xpath=self._xpath(target) or entry.path,
                raw=entry.message,
            )
        )

    def _first_truncation(
        self, entries: Sequence[Any], event: _Event | None
    ) -> tuple[Any, etree._Element | None] | None:
        for entry in entries:
            if not _is_truncating(entry):
                continue
            node = self._node(entry)
            if node is None or not self._in_placeholder(node):
                return entry, node
            if event is not None and node in event.inserted:
                return entry, node
        return None

    def run(self, entries: Sequence[Any]) -> list[Finding]:
        event: _Event | None = None
        elements = int(self.tree.xpath("count(//*)"))
        steps = min(MAX_RECOVERY_STEPS, max(2, MAX_RECOVERY_ELEMENTS // max(elements, 1)))
        for _ in range(steps):
            trunc = self._first_truncation(entries, event)
            if event is not None:
                if trunc is not None and (trunc[1] is event.element or trunc[1] in event.inserted):
                    # still not accepted: insert the next expected element, or give up
                    name = self._pick(_expected_list(trunc[0].message), event)
                    if name is not None and trunc[1] is event.element:
                        self._insert(event, name)
                    else:
                        self._not_allowed(event)
                        event = None
                    entries = self._validate()
                    continue
                changed = self._minimise(event)
                self._missing(event)
                event = None
                if changed:
                    entries = self._validate()
                    continue

            for entry in entries:
                if _is_truncating(entry):
                    continue
                node = self._node(entry)
                if node is not None and self._in_placeholder(node):
                    continue
                self._record(entry, node)

            if trunc is None:
                break
            entry, node = trunc
            parent = node.getparent() if node is not None else None
            if node is None or parent is None:
                self._record_truncation(entry, node)
                break
            event = _Event(
                element=node,
                parent=parent,
                entry=entry,
                expected=_expected_list(entry.message),
            )
            name = self._pick(event.expected, None)
            if name is not None:
                self._insert(event, name)
            else:
                self._not_allowed(event)
                event = None
            entries = self._validate()
        else:
            # out of steps: report what is left as libxml2 sees it
            if event is not None:
                self._record_truncation(event.entry, event.element)
            for entry in entries:
                node = self._node(entry)
                if node is not None and self._in_placeholder(node):
                    continue
                if _is_truncating(entry):
                    self._record_truncation(entry, node)
                else:
                    self._record(entry, node)
        self.findings.sort(key=lambda f: (f.line if f.line is not None else 0, f.xpath or ""))
        return self.findings
