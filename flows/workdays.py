"""Working days in Nordrhein-Westfalen: deadlines of weeks (``reply_within: 20 working days``).

A working day is Monday to Friday and no public holiday of NRW: Neujahr, Karfreitag, Ostermontag,
Tag der Arbeit, Christi Himmelfahrt, Pfingstmontag, Fronleichnam, Tag der Deutschen Einheit,
Allerheiligen, 1. and 2. Weihnachtstag. A deadline of *n* working days from a moment ends at the
end (24:00, Europe/Berlin) of the *n*-th working day after the day of that moment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["BERLIN", "add_workdays", "holidays_nrw", "is_workday", "workdays_deadline"]

BERLIN = ZoneInfo("Europe/Berlin")


def _easter(year: int) -> date:
    """Easter Sunday (Gregorian; anonymous algorithm of Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def holidays_nrw(year: int) -> frozenset[date]:
    """The public holidays of Nordrhein-Westfalen in ``year``."""
    easter = _easter(year)
    # Karfreitag, Ostermontag, Himmelfahrt, Pfingstmontag, Fronleichnam
    moving = (-2, 1, 39, 50, 60)
    fixed = ((1, 1), (5, 1), (10, 3), (11, 1), (12, 25), (12, 26))
    return frozenset(
        {easter + timedelta(days=n) for n in moving} | {date(year, m, d) for m, d in fixed}
    )


def is_workday(day: date) -> bool:
    return day.weekday() < 5 and day not in holidays_nrw(day.year)


def add_workdays(day: date, n: int) -> date:
    """The ``n``-th working day after ``day`` (``n`` ≥ 1)."""
    if n < 1:
        raise ValueError(f"at least 1 working day, not {n}")
    current = day
    while n:
        current += timedelta(days=1)
        if is_workday(current):
            n -= 1
    return current


def workdays_deadline(start: datetime, n: int) -> datetime:
    """End (24:00 Berlin time, as UTC) of the ``n``-th working day after ``start``'s day."""
    local = start.astimezone(BERLIN) if start.tzinfo else start.replace(tzinfo=BERLIN)
    last = add_workdays(local.date(), n)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=BERLIN)
    return end.astimezone(UTC)
