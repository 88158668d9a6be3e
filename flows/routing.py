"""Routing as data: who receives which message type under which conditions.

``deployments/owl/routing.yaml`` (or ``AMTSBOTE_ROUTING``) is read into a :class:`Routing`; every
problem — unknown key, unknown agency, unknown message type, bad condition — is reported with file,
line and field, all at once. :class:`CaseFacts` are the few non-personal facts of a notification
that rules look at; :meth:`Routing.route` turns facts into :class:`Route` entries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from connectors.directory import Directory
from xoev.xgewerbeanzeige.message_types import nachrichtentyp
from xoev.xgewerbeanzeige.rules_v2_2 import freizuegige_codes

from .exceptions import RoutingError, RoutingProblem

__all__ = [
    "DEFAULT_ROUTING_PATH",
    "ROUTING_ENV",
    "CaseFacts",
    "Conditions",
    "Route",
    "Routing",
    "parse_duration",
]

ROUTING_ENV = "AMTSBOTE_ROUTING"
DEFAULT_ROUTING_PATH = Path(__file__).resolve().parents[1] / "deployments" / "owl" / "routing.yaml"

MELDUNGSARTEN = ("anmeldung", "ummeldung", "abmeldung")
NATIONALITIES = ("german", "eu", "non-eu")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations of days, hours, minutes, seconds (``P10D``, ``PT30S``)."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"not an ISO 8601 duration like P10D or PT30M: {text!r}")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What routing looks at; nothing here identifies a person (keys and flags only)."""

    meldungsart: str
    handwerk: bool = False
    reisegewerbe: bool = False
    wz: tuple[str, ...] = ()
    nationality_groups: frozenset[str] = frozenset()
    """Subset of {german, eu, non-eu} over all participating persons."""
    land: str | None = None

    @classmethod
    def from_message(cls, msg: Any) -> CaseFacts:
        """Facts of the first Satz of an XGewerbeanzeige :class:`Gewerbemeldung`."""
        meldung = msg.saetze[0].meldung
        kind = type(meldung).__name__.lower()
        gewerbe = meldung.gewerbe
        art = gewerbe.betrieb_art
        keys: list[str] = []
        taet = meldung.taetigkeiten_gesamt
        if taet.schwerpunkt.taetigkeit_schluessel:
            keys.append(taet.schwerpunkt.taetigkeit_schluessel)
        if taet.weitere_taetigkeiten is not None:
            keys.extend(t.taetigkeit_schluessel for t in taet.weitere_taetigkeiten.taetigkeiten)
        free = freizuegige_codes()
        groups: set[str] = set()
        for person in gewerbe.beteiligte_personen:
            if person.staatsangehoerigkeiten is None:
                continue
            for code in person.staatsangehoerigkeiten.schluessel:
                if code.code == "000":
                    groups.update({"german", "eu"})
                elif code.code in free:
                    groups.add("eu")
                else:
                    groups.add("non-eu")
        return cls(
            meldungsart=kind,
            handwerk=art.handwerk.code == "1",
            reisegewerbe=gewerbe.ist_reisegewerbe.code == "1",
            wz=tuple(re.sub(r"\D", "", k) for k in keys),
            nationality_groups=frozenset(groups),
            land=meldung.gemeinde_schluessel.code[:2] or None,
        )

    def summary(self) -> dict[str, Any]:
        """Pseudonymised summary fit for Prefect (parameters, artifacts, logs)."""
        return {
            "meldungsart": self.meldungsart,
            "handwerk": self.handwerk,
            "reisegewerbe": self.reisegewerbe,
            "wz": list(self.wz),
            "nationality": sorted(self.nationality_groups),
            "land": self.land,
        }


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Conditions:
    meldungsart: frozenset[str] | None = None
    handwerk: bool | None = None
    reisegewerbe: bool | None = None
    wz: tuple[str, ...] | None = None
    nationality: str | None = None
    land: frozenset[str] | None = None

    def holds(self, facts: CaseFacts) -> bool:
        if self.meldungsart is not None and facts.meldungsart not in self.meldungsart:
            return False
        if self.handwerk is not None and facts.handwerk != self.handwerk:
            return False
        if self.reisegewerbe is not None and facts.reisegewerbe != self.reisegewerbe:
            return False
        if self.wz is not None and not any(
            key.startswith(prefix) for key in facts.wz for prefix in self.wz
        ):
            return False
        if self.nationality is not None and self.nationality not in facts.nationality_groups:
            return False
        return self.land is None or facts.land in self.land


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


@dataclass(frozen=True, slots=True)
class Routing:
    sender: str
    rules: tuple[Route, ...]
    approval: Conditions | None = None
    approval_deadline: timedelta = timedelta(days=10)
    source: str = "<routing>"

    # ------------------------------------------------------------------ use

    def route(self, facts: CaseFacts) -> list[Route]:
        """Every route whose conditions hold, in file order."""
        return [r for r in self.rules if r.when.holds(facts)]

    def consultations(self, facts: CaseFacts) -> list[Route]:
        return [r for r in self.route(facts) if r.consult]

    def distribution(self, facts: CaseFacts) -> list[Route]:
        return [r for r in self.route(facts) if not r.consult]

    def needs_approval(self, facts: CaseFacts) -> bool:
        return self.approval is not None and self.approval.holds(facts)

    def recipients(self) -> list[str]:
        return sorted({r.recipient for r in self.rules})

    # ------------------------------------------------------------------ load

    @classmethod
    def default(cls, *, directory: Directory | None = None) -> Routing:
        path = os.environ.get(ROUTING_ENV) or str(DEFAULT_ROUTING_PATH)
        return cls.load(path, directory=directory)

    @classmethod
    def load(cls, path: str | Path, *, directory: Directory | None = None) -> Routing:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RoutingError(
                [RoutingProblem(str(path), None, "-", f"cannot read: {exc}")]
            ) from exc
        return cls.loads(text, source=str(path), directory=directory or Directory.default())

    @classmethod
    def loads(cls, text: str, *, source: str = "<routing>", directory: Directory) -> Routing:
        return _Loader(source, directory).load(text)


# --------------------------------------------------------------------------- loader


_TOP_KEYS = {"version", "sender", "approval", "rules"}
_RULE_KEYS = {"id", "recipient", "message_type", "when", "consult", "reply_within"}
_WHEN_KEYS = {"meldungsart", "handwerk", "reisegewerbe", "wz", "nationality", "land"}


class _Loader:
    def __init__(self, source: str, directory: Directory) -> None:
        self.source = source
        self.directory = directory
        self.problems: list[RoutingProblem] = []

    def problem(self, node: yaml.Node | None, field_name: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
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
        value = yaml.safe_load(yaml.serialize(node))
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
        m = self.mapping(node, label, _WHEN_KEYS)
        kw: dict[str, Any] = {}
        if "meldungsart" in m:
            arten = self.strings(m["meldungsart"], f"{label}.meldungsart")
            for a in arten or []:
                if a not in MELDUNGSARTEN:
                    self.problem(
                        m["meldungsart"],
                        f"{label}.meldungsart",
                        f"unknown Meldungsart {a!r} (one of {', '.join(MELDUNGSARTEN)})",
                    )
            kw["meldungsart"] = frozenset(arten or ())
        for flag in ("handwerk", "reisegewerbe"):
            if flag in m:
                kw[flag] = self.scalar(m[flag], f"{label}.{flag}", bool)
        if "wz" in m:
            keys = self.strings(m["wz"], f"{label}.wz") or []
            for k in keys:
                if not k.isdigit():
                    self.problem(m["wz"], f"{label}.wz", f"WZ prefix must be digits: {k!r}")
            kw["wz"] = tuple(keys)
        if "nationality" in m:
            nat = self.scalar(m["nationality"], f"{label}.nationality", str)
            if nat is not None and nat not in NATIONALITIES:
                self.problem(
                    m["nationality"],
                    f"{label}.nationality",
                    f"unknown value {nat!r} (one of {', '.join(NATIONALITIES)})",
                )
            kw["nationality"] = nat
        if "land" in m:
            laender = self.strings(m["land"], f"{label}.land") or []
            for land in laender:
                if not re.fullmatch(r"\d\d", land):
                    self.problem(
                        m["land"], f"{label}.land", f"Land key must be two digits: {land!r}"
                    )
            kw["land"] = frozenset(laender)
        return Conditions(**kw)

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
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise RoutingError(
                [RoutingProblem(self.source, line, "-", f"not YAML: {exc}")]
            ) from exc
        if root is None:
            raise RoutingError([RoutingProblem(self.source, 1, "-", "empty file")])
        top = self.mapping(root, "", _TOP_KEYS)
        for required in ("version", "sender", "rules"):
            if required not in top:
                self.problem(root, required, "missing")
        if "version" in top and self.scalar(top["version"], "version", int) not in (1, None):
            self.problem(top["version"], "version", "only version 1 is known")
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
        )

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
            root = None
            if "message_type" in m:
                key = self.scalar(m["message_type"], f"{label}.message_type", str)
                if key is not None:
                    try:
                        root = nachrichtentyp(key).root
                    except (KeyError, LookupError, ValueError) as exc:
                        self.problem(
                            m["message_type"],
                            f"{label}.message_type",
                            f"unknown message type {key!r}: {exc}",
                        )
            when = self.conditions(m["when"], f"{label}.when") if "when" in m else Conditions()
            consult = (
                bool(self.scalar(m["consult"], f"{label}.consult", bool))
                if "consult" in m
                else False
            )
            reply_within = timedelta(days=10)
            if "reply_within" in m:
                if not consult:
                    self.problem(
                        m["reply_within"], f"{label}.reply_within", "only with consult: true"
                    )
                reply_within = (
                    self.duration(m["reply_within"], f"{label}.reply_within") or reply_within
                )
            if rule_id and recipient and root:
                routes.append(
                    Route(
                        rule=rule_id,
                        recipient=recipient,
                        message_type=root,
                        consult=consult,
                        reply_within=reply_within,
                        when=when,
                    )
                )
        return routes


def describe(routing: Routing) -> list[dict[str, Any]]:
    """Rows for ``amtsbote routing``."""
    rows = []
    for r in routing.rules:
        cond = {k: v for k, v in _conditions_dict(r.when).items() if v is not None}
        rows.append(
            {
                "rule": r.rule,
                "recipient": r.recipient,
                "message_type": r.message_type,
                "consult": r.consult,
                "when": cond,
            }
        )
    return rows


def _conditions_dict(c: Conditions) -> Mapping[str, Any]:
    def norm(v: Iterable[str] | None) -> Sequence[str] | None:
        return sorted(v) if v is not None else None

    return {
        "meldungsart": norm(c.meldungsart),
        "handwerk": c.handwerk,
        "reisegewerbe": c.reisegewerbe,
        "wz": list(c.wz) if c.wz is not None else None,
        "nationality": c.nationality,
        "land": norm(c.land),
    }
