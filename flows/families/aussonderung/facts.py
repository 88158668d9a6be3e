"""What Aussonderung routing sees: the kind of procedure and the xdomea version — no record data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ...routing import ConditionSpec, one_of
from ..base import Facts

__all__ = ["VERFAHREN", "VERSIONS", "AussonderungFacts"]

VERFAHREN = ("vierstufig", "zweistufig")
VERSIONS = ("3.0.0", "3.1.0")


@dataclass(frozen=True, slots=True)
class AussonderungFacts(Facts):
    """Non-personal facts of an Aussonderung: which procedure, which version, how many records."""

    CONDITIONS: ClassVar[Mapping[str, ConditionSpec]] = {
        "verfahren": one_of("verfahren", VERFAHREN, label="Verfahren"),
        "version": one_of("version", VERSIONS, label="xdomea version"),
    }

    verfahren: str
    version: str
    process_id: str
    records: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "verfahren": self.verfahren,
            "version": self.version,
            "process_id": self.process_id,
            "records": self.records,
        }
