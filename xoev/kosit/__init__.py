"""KoSIT validator configurations (``scenarios.xml``), honoured as KoSIT's Prüftool does.

:class:`KositConfiguration` loads a configuration once and checks documents with it: scenario
selection (:mod:`.selection`), XML Schema (:mod:`.schemas`), compiled Schematron run with a hardened
Saxon HE (:mod:`.xslt`, :mod:`.svrl`) and acceptance (:mod:`.acceptance`). See docs/xoev.md,
"KoSIT validator configurations".
"""

from __future__ import annotations

from .configuration import SCENARIOS_FILE, UNUSABLE_RULES, KositConfiguration
from .scenarios import Resource, Scenario, ScenarioFile
from .xslt import HARDENING, CompiledStylesheet

__all__ = [
    "HARDENING",
    "SCENARIOS_FILE",
    "UNUSABLE_RULES",
    "CompiledStylesheet",
    "KositConfiguration",
    "Resource",
    "Scenario",
    "ScenarioFile",
]
