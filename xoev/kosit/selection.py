"""Scenario selection as KoSIT's Prüftool does it (``ScenarioRepository.selectScenario``): every
scenario's ``match`` XPath (with the scenario's namespace prefixes) is evaluated on the document;
exactly one must match. None, or more than one, is "no scenario" — the document is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from .scenarios import Scenario

__all__ = ["Selection", "select_scenario"]


@dataclass(frozen=True, slots=True)
class Selection:
    """The matching scenarios; :attr:`scenario` is set when exactly one matched."""

    matching: tuple[Scenario, ...]

    @property
    def scenario(self) -> Scenario | None:
        return self.matching[0] if len(self.matching) == 1 else None


def _matches(scenario: Scenario, tree: etree._ElementTree) -> bool:
    try:  # compiled as boolean(match)
        return bool(scenario.match(tree))
    except etree.XPathEvalError:  # KoSIT logs and treats the scenario as not matching
        return False


def select_scenario(scenarios: Sequence[Scenario], tree: etree._ElementTree) -> Selection:
    return Selection(tuple(s for s in scenarios if _matches(s, tree)))
