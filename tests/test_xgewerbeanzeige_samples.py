"""Our fictitious Paderborn sample messages (package data xoev/xgewerbeanzeige/samples/)."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from xoev.xgewerbeanzeige import SAMPLES_DIR, samples
from xoev.xgewerbeanzeige.exceptions import BuildError
from xoev.xgewerbeanzeige.rules_v2_2 import check_rules, freizuegige_codes
from xoev.xgewerbeanzeige.v2_2 import (
    Abmeldung,
    Anmeldung,
    Ummeldung,
    build,
    parse,
    project,
    schema_findings,
)


def by_name(prefix: str) -> bytes:
    return next(s for s in samples() if s.name.startswith(prefix)).read_bytes()


def test_samples_lists_the_messages_with_descriptions() -> None:
    found = samples()
    assert [s.name for s in found] == [
        "abmeldung-fahrradwerkstatt-sta-0100",
        "anmeldung-restaurant-abh-0500",
        "invalid-ummeldung-ihk-0200",
        "notification-abmeldung-kiosk",
        "notification-anmeldung-restaurant",
        "notification-ummeldung-friseur",
        "ummeldung-verlegung-lue-0290",
    ]
    assert [s.valid for s in found] == [True, True, False, True, True, True, True]
    assert [s.root for s in found] == [
        "sta.gewerbemeldung.0100",
        "abh.gewerbemeldung.0500",
        "ihk.gewerbemeldung.0200",
        *["gwa.gewerbemeldung.0010"] * 3,
        "lue.gewerbemeldung.0290",
    ]
    assert [s.is_notification for s in found] == [False] * 3 + [True] * 3 + [False]
    assert all(s.description.startswith("Fiktives Beispiel (amtsbote)") for s in found)
    assert all(s.path.parent == SAMPLES_DIR for s in found)


def test_valid_samples_validate_and_pass_rules() -> None:
    for sample in samples():
        if not sample.valid:
            continue
        assert schema_findings(sample.read_bytes()) == [], sample.name
        assert check_rules(etree.parse(str(sample.path))) == [], sample.name


def test_anmeldung_restaurant_non_eu_with_aufenthaltstitel() -> None:
    msg = parse(by_name("anmeldung"))
    assert str(msg.nachrichtenkopf.autor) == "MELDID:05774032"
    assert msg.nachrichtenkopf.autor.behoerdenname == "Stadt Paderborn, Gewerbeamt"
    meldung = msg.saetze[0].meldung
    assert isinstance(meldung, Anmeldung)
    assert meldung.gemeinde_schluessel.code == "05774032"
    assert meldung.gewerbe.anschrift.ort == "Paderborn"
    assert meldung.taetigkeiten_gesamt.schwerpunkt.taetigkeit_schluessel == "56101"
    (person,) = meldung.gewerbe.beteiligte_personen
    assert person.staatsangehoerigkeiten is not None
    assert not set(person.staatsangehoerigkeiten.codes) & freizuegige_codes()
    assert person.aufenthaltstitel is not None
    assert person.aufenthaltstitel.gueltig_bis == date(2027, 5, 19)


def test_ummeldung_moves_within_paderborn() -> None:
    meldung = parse(by_name("ummeldung")).saetze[0].meldung
    assert isinstance(meldung, Ummeldung)
    assert meldung.anschrift_alt is not None
    assert meldung.anschrift_alt.ort == meldung.gewerbe.anschrift.ort == "Paderborn"
    assert meldung.anschrift_alt.strasse != meldung.gewerbe.anschrift.strasse
    anmeldung = parse(by_name("anmeldung")).saetze[0].meldung
    assert meldung.gewerbebetrieb_id == anmeldung.gewerbebetrieb_id  # the same restaurant


def test_ummeldung_sample_is_the_lue_projection_of_the_restaurant_data() -> None:
    """The lue message carries exactly what the table gives that type (no birth data, …)."""
    lue = parse(by_name("ummeldung"))
    person = lue.saetze[0].meldung.gewerbe.beteiligte_personen[0]
    assert person.geburtsdatum is None and person.staatsangehoerigkeiten is None
    assert project(lue, "lue") == lue


def test_abmeldung_statistics_without_person_names() -> None:
    msg = parse(by_name("abmeldung"))
    meldung = msg.saetze[0].meldung
    assert isinstance(meldung, Abmeldung)
    assert meldung.grund_abmeldung_schluessel is not None
    (person,) = meldung.gewerbe.beteiligte_personen
    assert person.familienname is None and person.vorname is None
    assert person.geschlecht is not None
    assert project(msg, "sta") == msg


def test_invalid_sample_has_exactly_its_two_documented_defects() -> None:
    data = by_name("invalid")
    (xsd,) = schema_findings(data)
    assert "familienname" in xsd.message
    (rule,) = check_rules(etree.ElementTree(etree.fromstring(data)))
    assert rule.rule == "XGWA-R04"
    msg = parse(data)  # the model can hold it: familienname is optional (statistics profile)
    with pytest.raises(BuildError) as info:
        build(msg)  # … but build refuses to write it, naming both defects
    assert [f.rule for f in info.value.findings] == [xsd.rule, "XGWA-R04"]


def test_samples_are_written_back_unchanged() -> None:
    for sample in samples():
        if sample.valid:
            data = sample.read_bytes()
            out = build(parse(data))
            canon = [
                etree.canonicalize(d.decode(), with_comments=False, strip_text=True)
                for d in (data, out)
            ]
            assert canon[0] == canon[1], sample.name
