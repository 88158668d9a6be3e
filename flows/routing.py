"""Routing as data: who receives which message type under which conditions — for every family.

Each procedure family (:mod:`flows.families`) has its routing file (Gewerbe:
``deployments/owl/routing.yaml``; override with the family's environment variable, e.g.
``AMTSBOTE_ROUTING``). It is read into a :class:`Routing`; every problem — unknown key, unknown
agency, unknown message type, a condition the family's facts do not offer — is reported with file,
line and field, all at once.

The conditions a rule may use are declared by the family's facts model
(:attr:`flows.families.base.Facts.CONDITIONS`): condition key → :class:`ConditionSpec`, one of

=================  =====================================  ===================================
kind               YAML                                   holds when
=================  =====================================  ===================================
``one_of``         list of allowed values                 the fact's value is in the list
``flag``           ``true`` / ``false``                   the fact equals it
``prefixes``       list of prefixes (``pattern``)         some value of the fact starts so
``contains``       one value                              the fact (a set) contains it
=================  =====================================  ===================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from connectors import yamlfile
from connectors.directory import Directory
from connectors.settings import data_file, parse_duration

from .exceptions import RoutingError, RoutingProblem

if TYPE_CHECKING:
    from .families.base import Facts, Family

__all__ = [
    "DEFAULT_ROUTING_PATH",
    "ROUTING_ENV",
    "ConditionSpec",
    "Conditions",
    "Route",
    "Routing",
    "contains",
    "data_file",
    "flag",
    "one_of",
    "parse_duration",
    "prefixes",
]

ROUTING_ENV = "AMTSBOTE_ROUTING"


DEFAULT_ROUTING_PATH = data_file("routing.yaml")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """One condition key a family's facts offer to routing (see the module docstring)."""

    kind: Literal["one_of", "flag", "prefixes", "contains"]
    attr: str
    """Attribute of the facts object the condition looks at."""
    values: tuple[str, ...] | None = None
    """Allowed values (``one_of``, ``contains``)."""
    pattern: str | None = None
    """Regular expression every listed item must match fully (``one_of``, ``prefixes``)."""
    label: str = "value"
    """How an error names an item, e.g. ``Meldungsart``, ``WZ prefix``."""
    pattern_hint: str = ""
    """How an error describes the pattern, e.g. ``digits``."""

    def holds(self, facts: Any, expected: Any) -> bool:
        value = getattr(facts, self.attr)
        if self.kind == "one_of":
            return value in expected
        if self.kind == "flag":
            return bool(value) == expected
        if self.kind == "prefixes":
            return any(str(v).startswith(p) for v in value for p in expected)
        return expected in value  # contains


def one_of(
    attr: str,
    values: tuple[str, ...] | None = None,
    *,
    label: str = "value",
    pattern: str | None = None,
    pattern_hint: str = "",
) -> ConditionSpec:
    return ConditionSpec("one_of", attr, values, pattern, label, pattern_hint)


def flag(attr: str) -> ConditionSpec:
    return ConditionSpec("flag", attr)


def prefixes(attr: str, *, pattern: str, label: str, pattern_hint: str) -> ConditionSpec:
    return ConditionSpec("prefixes", attr, None, pattern, label, pattern_hint)


def contains(attr: str, values: tuple[str, ...], *, label: str = "value") -> ConditionSpec:
    return ConditionSpec("contains", attr, values, None, label)


@dataclass(frozen=True, slots=True)
class Conditions:
    """The ``when`` of a rule: every listed condition must hold (none = always)."""

    tests: tuple[tuple[str, ConditionSpec, Any], ...] = ()

    def holds(self, facts: Any) -> bool:
        return all(spec.holds(facts, expected) for _, spec, expected in self.tests)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, _, expected in self.tests:
            out[key] = (
                sorted(expected)
                if isinstance(expected, frozenset)
                else (list(expected) if isinstance(expected, tuple) else expected)
            )
        return out


@dataclass(frozen=True, slots=True)
class Route:
    """One message to one recipient: the outcome of a matching rule."""

    rule: str
    recipient: str
    message_type: str
    """Root element name, e.g. ``abh.gewerbemeldung.0500``."""
    consult: bool = False
    reply_within: timedelta = timedelta(days=10)
    when: Conditions = field(default_factory=Conditions)
    reply_workdays: int | None = None
    """Reply deadline in NRW working days (``reply_within: 20 working days``), else None."""


@dataclass(frozen=True, slots=True)
class Routing:
    sender: str
    rules: tuple[Route, ...]
    approval: Conditions | None = None
    approval_deadline: timedelta = timedelta(days=10)
    source: str = "<routing>"
    family: str = "gewerbe"

    # ------------------------------------------------------------------ use

    def route(self, facts: Facts) -> list[Route]:
        """Every route whose conditions hold, in file order."""
        return [r for r in self.rules if r.when.holds(facts)]

    def consultations(self, facts: Facts) -> list[Route]:
        return [r for r in self.route(facts) if r.consult]

    def distribution(self, facts: Facts) -> list[Route]:
        return [r for r in self.route(facts) if not r.consult]

    def needs_approval(self, facts: Facts) -> bool:
        return self.approval is not None and self.approval.holds(facts)

    def recipients(self) -> list[str]:
        return sorted({r.recipient for r in self.rules})

    # ------------------------------------------------------------------ load

    @classmethod
    def default(cls, *, directory: Directory | None = None, family: str = "gewerbe") -> Routing:
        """The family's routing: its environment variable, else its packaged default file."""
        from .families import get_family

        return cls.load(get_family(family).routing_path(), directory=directory, family=family)

    @classmethod
    def load(
        cls, path: str | Path, *, directory: Directory | None = None, family: str = "gewerbe"
    ) -> Routing:
        path = Path(path)
        try:
            text = yamlfile.read_text(path)
        except yamlfile.YamlReadError as exc:
            message = (
                f"cannot read: {exc.cause}"
                if isinstance(exc.cause, OSError)
                else exc.problem.message
            )
            raise RoutingError([RoutingProblem(str(path), None, "-", message)]) from exc.cause
        return cls.loads(
            text, source=str(path), directory=directory or Directory.default(), family=family
        )

    @classmethod
    def loads(
        cls, text: str, *, source: str = "<routing>", directory: Directory, family: str = "gewerbe"
    ) -> Routing:
        from .families import get_family

        return _Loader(source, directory, get_family(family)).load(text)


# --------------------------------------------------------------------------- loader


_TOP_KEYS = {"version", "family", "sender", "approval", "rules"}
_RULE_KEYS = {"id", "recipient", "message_type", "when", "consult", "reply_within"}
_WORKDAYS = re.compile(r"(\d+)\s+working\s+days?")


class _Loader:
    def __init__(self, source: str, directory: Directory, family: Family) -> None:
        self.source = source
        self.directory = directory
        self.family = family
        self.specs: Mapping[str, ConditionSpec] = family.facts_model.CONDITIONS
        self.problems: list[RoutingProblem] = []

    def problem(self, node: yaml.Node | None, field_name: str, message: str) -> None:
        line = yamlfile.position(node)[0]
        self.problems.append(RoutingProblem(self.source, line, field_name, message))

    def mapping(self, node: yaml.Node, label: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, label, "expected a mapping")
            return {}
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            name = f"{label}.{key}" if label else key
            if key not in allowed:
                self.problem(key_node, name, f"unknown key (allowed: {', '.join(sorted(allowed))})")
            elif key in out:
                self.problem(key_node, name, "given twice")
            else:
                out[key] = value_node
        return out

    def scalar(self, node: yaml.Node, label: str, kind: type) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, label, f"expected a {kind.__name__}")
            return None
        value = yamlfile.value(node)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(node.value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(node, label, f"expected a {kind.__name__}, got {value!r}")
            return None
        return value

    def strings(self, node: yaml.Node, label: str) -> list[str] | None:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, label, "expected a non-empty list")
            return None
        items = [self.scalar(item, f"{label}[{i}]", str) for i, item in enumerate(node.value)]
        return None if any(i is None for i in items) else [str(i) for i in items]

    def conditions(self, node: yaml.Node, label: str) -> Conditions:
        m = self.mapping(node, label, set(self.specs))
        tests: list[tuple[str, ConditionSpec, Any]] = []
        for key, value_node in m.items():
            spec, where = self.specs[key], f"{label}.{key}"
            expected: Any
            if spec.kind == "flag":
                expected = self.scalar(value_node, where, bool)
                if expected is None:
                    continue
            elif spec.kind == "contains":
                expected = self.scalar(value_node, where, str)
                if expected is None:
                    continue
                self._check_values(value_node, where, spec, [expected])
            else:
                items = self.strings(value_node, where)
                if items is None:
                    continue
                self._check_values(value_node, where, spec, items)
                expected = frozenset(items) if spec.kind == "one_of" else tuple(items)
            tests.append((key, spec, expected))
        return Conditions(tuple(tests))

    def _check_values(
        self, node: yaml.Node, where: str, spec: ConditionSpec, items: list[str]
    ) -> None:
        for item in items:
            if spec.values is not None and item not in spec.values:
                self.problem(
                    node, where, f"unknown {spec.label} {item!r} (one of {', '.join(spec.values)})"
                )
            elif spec.pattern is not None and not re.fullmatch(spec.pattern, item):
                self.problem(node, where, f"{spec.label} must be {spec.pattern_hint}: {item!r}")

    def duration(self, node: yaml.Node, label: str) -> timedelta | None:
        text = self.scalar(node, label, str)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.problem(node, label, str(exc))
            return None

    def agency(self, node: yaml.Node, label: str) -> str | None:
        agency_id = self.scalar(node, label, str)
        if agency_id is not None and agency_id not in self.directory:
            known = ", ".join(a.id for a in self.directory)
            self.problem(node, label, f"unknown agency {agency_id!r} (known: {known})")
            return None
        return agency_id

    def load(self, text: str) -> Routing:
        try:
            root = yamlfile.compose(text, file=self.source)
        except yamlfile.YamlSyntaxError as exc:
            mark = getattr(exc.cause, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise RoutingError(
                [RoutingProblem(self.source, line, "-", f"not YAML: {exc.cause}")]
            ) from exc.cause
        if root is None:
            raise RoutingError([RoutingProblem(self.source, 1, "-", "empty file")])
        top = self.mapping(root, "", _TOP_KEYS)
        for required in ("version", "sender", "rules"):
            if required not in top:
                self.problem(root, required, "missing")
        if "version" in top and self.scalar(top["version"], "version", int) not in (1, None):
            self.problem(top["version"], "version", "only version 1 is known")
        if "family" in top:
            name = self.scalar(top["family"], "family", str)
            if name is not None and name != self.family.name:
                self.problem(
                    top["family"],
                    "family",
                    f"this file is for family {name!r}, read as {self.family.name!r}",
                )
        sender = self.agency(top["sender"], "sender") if "sender" in top else None
        approval: Conditions | None = None
        deadline = timedelta(days=10)
        if "approval" in top:
            a = self.mapping(top["approval"], "approval", {"when", "deadline"})
            approval = self.conditions(a["when"], "approval.when") if "when" in a else Conditions()
            if "deadline" in a:
                deadline = self.duration(a["deadline"], "approval.deadline") or deadline
        routes = self.rules(top["rules"]) if "rules" in top else []
        if self.problems:
            raise RoutingError(self.problems)
        assert sender is not None
        return Routing(
            sender=sender,
            rules=tuple(routes),
            approval=approval,
            approval_deadline=deadline,
            source=self.source,
            family=self.family.name,
        )

    def message_type(self, node: yaml.Node, label: str) -> str | None:
        key = self.scalar(node, label, str)
        if key is None:
            return None
        try:
            return self.family.message_type_root(key)
        except (KeyError, LookupError, ValueError) as exc:
            self.problem(node, label, f"unknown message type {key!r}: {exc}")
            return None

    def reply_within(self, node: yaml.Node, label: str) -> tuple[timedelta | None, int | None]:
        text = self.scalar(node, label, str)
        if text is None:
            return None, None
        m = _WORKDAYS.fullmatch(text.strip())
        if m:
            days = int(m.group(1))
            if days < 1:
                self.problem(node, label, "at least 1 working day")
            return timedelta(days=days * 7 // 5 + 4), days
        return self.duration(node, label), None

    def rules(self, node: yaml.Node) -> list[Route]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "rules", "expected a list of rules")
            return []
        routes: list[Route] = []
        seen: set[str] = set()
        for i, item in enumerate(node.value):
            label = f"rules[{i}]"
            m = self.mapping(item, label, _RULE_KEYS)
            for required in ("id", "recipient", "message_type"):
                if required not in m and isinstance(item, yaml.MappingNode):
                    self.problem(item, f"{label}.{required}", "missing")
            rule_id = self.scalar(m["id"], f"{label}.id", str) if "id" in m else None
            if rule_id is not None:
                label = f"rules[{rule_id}]"
                if not _SLUG.fullmatch(rule_id):
                    self.problem(m["id"], f"{label}.id", "must be a slug (a-z, 0-9, hyphens)")
                if rule_id in seen:
                    self.problem(m["id"], f"{label}.id", "duplicate rule id")
                seen.add(rule_id)
            recipient = (
                self.agency(m["recipient"], f"{label}.recipient") if "recipient" in m else None
            )
            root = (
                self.message_type(m["message_type"], f"{label}.message_type")
                if "message_type" in m
                else None
            )
            when = self.conditions(m["when"], f"{label}.when") if "when" in m else Conditions()
            consult = (
                bool(self.scalar(m["consult"], f"{label}.consult", bool))
                if "consult" in m
                else False
            )
            reply_within, workdays = timedelta(days=10), None
            if "reply_within" in m:
                if not consult:
                    self.problem(
                        m["reply_within"], f"{label}.reply_within", "only with consult: true"
                    )
                within, workdays = self.reply_within(m["reply_within"], f"{label}.reply_within")
                reply_within = within or reply_within
            if rule_id and recipient and root:
                routes.append(
                    Route(
                        rule=rule_id,
                        recipient=recipient,
                        message_type=root,
                        consult=consult,
                        reply_within=reply_within,
                        when=when,
                        reply_workdays=workdays,
                    )
                )
        return routes


def describe(routing: Routing) -> list[dict[str, Any]]:
    """Rows for ``amtsbote routing``."""
    return [
        {
            "rule": r.rule,
            "recipient": r.recipient,
            "message_type": r.message_type,
            "consult": r.consult,
            "when": r.when.as_dict(),
        }
        for r in routing.rules
    ]
