"""The facts Gewerbe routing looks at: keys and flags of a notification, nothing personal."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from xoev.xgewerbeanzeige.rules_v2_2 import freizuegige_codes

from ...routing import ConditionSpec, contains, flag, one_of, prefixes
from ..base import Facts

__all__ = ["MELDUNGSARTEN", "NATIONALITIES", "CaseFacts"]

MELDUNGSARTEN = ("anmeldung", "ummeldung", "abmeldung")
NATIONALITIES = ("german", "eu", "non-eu")


@dataclass(frozen=True, slots=True)
class CaseFacts(Facts):
    """What routing looks at; nothing here identifies a person (keys and flags only)."""

    CONDITIONS: ClassVar[Mapping[str, ConditionSpec]] = {
        "meldungsart": one_of("meldungsart", MELDUNGSARTEN, label="Meldungsart"),
        "handwerk": flag("handwerk"),
        "reisegewerbe": flag("reisegewerbe"),
        "wz": prefixes("wz", pattern=r"\d+", label="WZ prefix", pattern_hint="digits"),
        "nationality": contains("nationality_groups", NATIONALITIES),
        "land": one_of("land", pattern=r"\d\d", label="Land key", pattern_hint="two digits"),
    }

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
