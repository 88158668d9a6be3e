"""Findings: what a check found wrong with a message, and where.

A :class:`Finding` names severity, line, XPath, the rule or schema code and a message that keeps
the XÖV element names as they are ("Pflichtelement betriebArt fehlt in gewerbe"). A
:class:`Report` is the outcome for one input; both render as text and as JSON-ready dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "Report", "Severity", "reports_to_json", "reports_to_text"]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One defect. ``rule`` is a schema code (``xsd:…``), a codelist check (``codelist``) or a
    business-rule id (``XGWA-…``)."""

    severity: Severity
    message: str
    rule: str
    line: int | None = None
    xpath: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "line ?"
        if self.xpath:
            where += f" {self.xpath}"
        return f"{self.severity.value}: {where}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


@dataclass(slots=True)
class Report:
    """The outcome of checking one input (a file name, or ``<bytes>``)."""

    source: str
    standard: str | None = None
    version: str | None = None
    message_type: str | None = None
    nachrichten_uuid: str | None = None
    findings: list[Finding] = field(default_factory=list)
    scenario: str | None = None
    """KoSIT configurations (:mod:`xoev.kosit`): the scenario that matched (None: none did)."""
    accepted: bool | None = None
    """KoSIT configurations: the acceptance recommendation; when set, it is :attr:`ok`."""

    @property
    def ok(self) -> bool:
        if self.accepted is not None:
            return self.accepted
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "valid": self.ok,
            "standard": self.standard,
            "version": self.version,
            "message_type": self.message_type,
            "nachrichtenUUID": self.nachrichten_uuid,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.accepted is not None:  # KoSIT reports only: other reports keep their shape
            data["scenario"] = self.scenario
            data["accepted"] = self.accepted
        return data

    def to_text(self) -> str:
        head = f"{self.source}: {'valid' if self.ok else 'INVALID'}"
        if self.standard:
            head += f" ({self.standard} {self.version}, {self.message_type})"
        if self.accepted is not None:
            verdict = "accepted" if self.accepted else "rejected"
            head += f" (KoSIT scenario {self.scenario or '-'}: {verdict})"
        lines = [head]
        lines.extend(f"  {f}" for f in self.findings)
        return "\n".join(lines)


def reports_to_text(reports: Iterable[Report]) -> str:
    return "\n".join(r.to_text() for r in reports)


def reports_to_json(reports: Sequence[Report]) -> str:
    return json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2)
