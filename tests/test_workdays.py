"""NRW working days: weekends and public holidays do not count towards a deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from flows.workdays import add_workdays, holidays_nrw, is_workday, workdays_deadline


def test_holidays_of_2026_in_nrw() -> None:
    h = holidays_nrw(2026)
    # Easter 2026 is 5 April: Karfreitag 3.4., Ostermontag 6.4., Himmelfahrt 14.5.,
    # Pfingstmontag 25.5., Fronleichnam 4.6.
    for d in (
        "2026-01-01",
        "2026-04-03",
        "2026-04-06",
        "2026-05-01",
        "2026-05-14",
        "2026-05-25",
        "2026-06-04",
        "2026-10-03",
        "2026-11-01",
        "2026-12-25",
        "2026-12-26",
    ):
        assert date.fromisoformat(d) in h, d
    assert len(h) == 11
    assert date(2026, 10, 31) not in h  # Reformationstag is no holiday in NRW


def test_easter_dates() -> None:
    assert date(2027, 3, 26) in holidays_nrw(2027)  # Karfreitag 2027 (Easter 28 March)
    assert date(2024, 5, 30) in holidays_nrw(2024)  # Fronleichnam 2024


def test_add_workdays_skips_weekends_and_holidays() -> None:
    assert not is_workday(date(2026, 12, 5))  # Saturday
    # Thursday 24.12.2026 + 1 working day: 25./26. holidays, 27. Sunday → Monday 28.12.
    assert add_workdays(date(2026, 12, 24), 1) == date(2026, 12, 28)
    # 10 working days from Wednesday 2.12.2026 → 16.12.2026
    assert add_workdays(date(2026, 12, 2), 10) == date(2026, 12, 16)
    with pytest.raises(ValueError, match="at least 1"):
        add_workdays(date(2026, 12, 2), 0)


def test_deadline_is_the_end_of_the_working_day_in_berlin() -> None:
    start = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin, still 2.12.
    assert workdays_deadline(start, 1) == datetime(2026, 12, 3, 23, 0, tzinfo=UTC)
