"""Working days for the 10-Werktage rule of § 3 Abs. 5 GewAnzV, vectorised with numpy.

A working day is Monday–Friday (``weekmask``) that is not a public holiday of the Land
(``holidays.Germany(subdiv="NW")`` for Nordrhein-Westfalen — Fronleichnam and Allerheiligen are
holidays there, not everywhere). Saturdays count as *Werktage* in general German usage; the
default here follows the administration's working week, and ``weekmask="1111110"`` counts
Saturdays should the competent authority read the rule that way.

Counting follows § 187 Abs. 1 BGB: the day of intake does not count, the period ends at the end
of the 10th working day after it. A case received on a Saturday is treated like one received on
the Friday before (its period starts on the Monday).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import numpy as np

__all__ = ["WorkCalendar"]


@lru_cache(maxsize=16)
def _holidays(subdiv: str, first_year: int, last_year: int) -> tuple[date, ...]:
    import holidays

    return tuple(sorted(holidays.Germany(subdiv=subdiv, years=range(first_year, last_year + 1))))


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """Working days of one German Land."""

    subdiv: str = "NW"
    """Land code of the ``holidays`` library (``NW`` = Nordrhein-Westfalen)."""
    weekmask: str = "1111100"
    """Mon…Sun, ``1`` = working day."""
    _cache: dict[tuple[int, int], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    def holidays(self, first_year: int, last_year: int) -> np.ndarray:
        """Public holidays of the Land in the years given, as ``datetime64[D]``."""
        key = (first_year, last_year)
        found = self._cache.get(key)
        if found is None:
            found = np.array(_holidays(self.subdiv, first_year, last_year), dtype="datetime64[D]")
            self._cache[key] = found
        return found

    def _calendar(self, *days: np.ndarray) -> np.busdaycalendar:
        years = [d.astype("datetime64[Y]").astype(int) + 1970 for d in days if d.size]
        if years:
            first = int(min(y.min() for y in years)) - 1
            last = int(max(y.max() for y in years)) + 2
        else:
            first = last = date.today().year
        return np.busdaycalendar(weekmask=self.weekmask, holidays=self.holidays(first, last))

    def deadline(self, received: np.ndarray, working_days: int = 10) -> np.ndarray:
        """The last day of the period for each intake date (``datetime64[D]``)."""
        received = np.asarray(received, dtype="datetime64[D]")
        cal = self._calendar(received)
        return np.busday_offset(received, working_days, roll="backward", busdaycal=cal)

    def elapsed(self, received: np.ndarray, as_of: np.ndarray | np.datetime64) -> np.ndarray:
        """Working days after the intake day up to and including ``as_of`` (0 on the intake
        day itself)."""
        received = np.asarray(received, dtype="datetime64[D]")
        as_of = np.broadcast_to(np.asarray(as_of, dtype="datetime64[D]"), received.shape)
        cal = self._calendar(received, as_of)
        one = np.timedelta64(1, "D")
        counts = np.busday_count(received + one, as_of + one, busdaycal=cal)
        return np.maximum(counts, 0)

    def is_working_day(self, days: np.ndarray) -> np.ndarray:
        days = np.asarray(days, dtype="datetime64[D]")
        return np.is_busday(days, busdaycal=self._calendar(days))
