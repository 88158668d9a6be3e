"""build(validate=True) on the hot path: libxml2 decides validity; the complete findings of an
invalid message come from xmlschema (schema_findings), which a valid build never loads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from xoev.findings import Severity
from xoev.xgewerbeanzeige import notifications
from xoev.xgewerbeanzeige.exceptions import BuildError
from xoev.xgewerbeanzeige.v2_2 import (
    Anmeldung,
    Gewerbe,
    Gewerbemeldung,
    Satz,
    build,
    parse,
    schema_findings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def restaurant() -> Gewerbemeldung:
    sample = next(s for s in notifications() if s.name == "notification-anmeldung-restaurant")
    return parse(sample.read_bytes())


def _meldung(msg: Gewerbemeldung) -> Anmeldung:
    meldung = msg.saetze[0].meldung
    assert isinstance(meldung, Anmeldung)
    return meldung


def _with(msg: Gewerbemeldung, meldung: Anmeldung) -> Gewerbemeldung:
    return replace(msg, saetze=(Satz(meldung=meldung),))


def _gewerbe(msg: Gewerbemeldung, **changes: Any) -> Gewerbemeldung:
    meldung = _meldung(msg)
    return _with(msg, replace(meldung, gewerbe=replace(meldung.gewerbe, **changes)))


def _person(msg: Gewerbemeldung, **changes: Any) -> Gewerbemeldung:
    gewerbe: Gewerbe = _meldung(msg).gewerbe
    return _gewerbe(msg, beteiligte_personen=(replace(gewerbe.beteiligte_personen[0], **changes),))


def _no_name(m: Gewerbemeldung) -> Gewerbemeldung:
    return _person(m, familienname=None)


def _empty_text(m: Gewerbemeldung) -> Gewerbemeldung:
    return _gewerbe(m, betrieb=replace(_meldung(m).gewerbe.betrieb, geschaeftsbezeichnung=""))


def _long_plz(m: Gewerbemeldung) -> Gewerbemeldung:
    return _gewerbe(m, anschrift=replace(_meldung(m).gewerbe.anschrift, plz="33098-33098-1"))


def _negative_count(m: Gewerbemeldung) -> Gewerbemeldung:
    return _gewerbe(m, anzahl_vollzeit_beschaeftigte=-1)


def _bad_uuid(m: Gewerbemeldung) -> Gewerbemeldung:
    return _with(m, replace(_meldung(m), uuid="keine-uuid"))


def _short_wz(m: Gewerbemeldung) -> Gewerbemeldung:
    t = _meldung(m).taetigkeiten_gesamt
    return _with(
        m,
        replace(
            _meldung(m),
            taetigkeiten_gesamt=replace(
                t, schwerpunkt=replace(t.schwerpunkt, taetigkeit_schluessel="5610")
            ),
        ),
    )


def _two_defects(m: Gewerbemeldung) -> Gewerbemeldung:
    return _bad_uuid(_no_name(m))


DEFECTS: dict[str, Callable[[Gewerbemeldung], Gewerbemeldung]] = {
    "familienname fehlt": _no_name,
    "leerer Text": _empty_text,
    "plz zu lang": _long_plz,
    "negative Anzahl": _negative_count,
    "uuid kein UUID": _bad_uuid,
    "WZ-Schlüssel vierstellig": _short_wz,
    "zwei Fehler": _two_defects,
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_build_refuses_schema_defects_with_the_complete_findings(
    defect: str, restaurant: Gewerbemeldung
) -> None:
    broken = DEFECTS[defect](restaurant)
    unchecked = build(broken, validate=False)
    expected = schema_findings(unchecked)
    assert expected, defect  # the defect is one the XSD forbids
    with pytest.raises(BuildError) as info:
        build(broken)
    found = info.value.findings
    assert [f for f in found if f.rule.startswith("xsd:")] == expected
    assert all(f.severity is Severity.ERROR and f.line is not None for f in found)
    if defect == "zwei Fehler":  # both, not only the first libxml2 stops at
        assert len(expected) == 2


def test_valid_builds_never_load_xmlschema_invalid_ones_do() -> None:
    """The hot path (valid messages) runs libxml2 only; xmlschema is imported for the findings of
    an invalid message."""
    script = """
import sys
from xoev.xgewerbeanzeige import samples
from xoev.xgewerbeanzeige.exceptions import BuildError
from xoev.xgewerbeanzeige.v2_2 import build, parse
built = [build(parse(s.read_bytes())) for s in samples() if s.valid]
print(len(built), "xmlschema" in sys.modules)
invalid = next(s for s in samples() if not s.valid)
try:
    build(parse(invalid.read_bytes()))
except BuildError as err:
    print(len(err.findings), "xmlschema" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["6", "False", "2", "True"]
