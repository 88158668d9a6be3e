"""Data minimisation: project()/build_for() give each recipient type only the data groups the
message-type table assigns to it, and the result is a valid message of that type."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from xoev.code import Code
from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
from xoev.xgewerbeanzeige import samples
from xoev.xgewerbeanzeige.message_types import NAMESPACE, datengruppen, nachrichtentypen
from xoev.xgewerbeanzeige.rules_v2_2 import check_rules
from xoev.xgewerbeanzeige.v2_2 import (
    Gewerbemeldung,
    Produktangaben,
    Satz,
    build,
    build_for,
    parse,
    project,
    project_meldung,
)

NS = {"xga": NAMESPACE}
TYPES = [t.root for t in nachrichtentypen()]


@pytest.fixture(scope="module")
def kosit(xgwa_samples: Path) -> Gewerbemeldung:
    return parse((xgwa_samples / "xgwa2.2-valid.xml").read_bytes())


@pytest.fixture(scope="module")
def restaurant() -> Gewerbemeldung:
    return parse(next(s for s in samples() if s.name.startswith("anmeldung")).read_bytes())


def _has(root: etree._Element, pfad: tuple[str, ...]) -> bool:
    xp = "xga:satz/*/" + "/".join(f"xga:{step}" for step in pfad)
    return bool(root.xpath(xp, namespaces=NS))


def test_statistics_message_carries_no_personal_data_of_persons(kosit: Gewerbemeldung) -> None:
    data = build(project(kosit, "sta"))
    root = etree.fromstring(data)
    assert etree.QName(root).localname == "sta.gewerbemeldung.0100"
    assert root.xpath("string(//xga:nachrichtentyp/code)", namespaces=NS) == "0100"
    person = root.xpath("//xga:beteiligtePerson", namespaces=NS)[0]
    assert [etree.QName(c).localname for c in person] == [
        "personFunktion",
        "geschlecht",
        "staatangehoerigkeiten",
    ]
    for value in (
        b"Tibor",
        b"Rodr",
        b"12101965",
        b"Santiago",
        b"Chile",
        b"Ewald-Hase",
        b"0355 141455",
        b"Stadt Cottbus",
    ):
        assert value not in data, value
    # data the statistics needs stays: business, its address, employees, activity
    assert b"Spremberger Str." in data and b"96021" in data
    assert root.xpath("string(//xga:anzahlTeilzeitBeschaeftigte)", namespaces=NS) == "2"


@pytest.mark.parametrize("root_name", TYPES)
@pytest.mark.parametrize("source", ["kosit", "restaurant"])
def test_every_type_gets_exactly_its_data_groups_and_validates(
    root_name: str, source: str, request: pytest.FixtureRequest
) -> None:
    full: Gewerbemeldung = request.getfixturevalue(source)
    typ = next(t for t in nachrichtentypen() if t.root == root_name)
    data = build(project(full, typ))  # validates: the XSD profile agrees with the table
    root = etree.fromstring(data)
    assert etree.QName(root).localname == root_name
    assert check_rules(etree.ElementTree(root)) == []  # no XGWA-R09 warning either
    full_root = etree.fromstring(build(full))
    for name, gruppe in datengruppen().items():
        for pfad in gruppe.pfade:
            if _has(full_root, pfad):
                assert _has(root, pfad) == (name in typ.datengruppen), (name, pfad)


def test_project_keeps_core_data_and_header(kosit: Gewerbemeldung) -> None:
    lue = project(kosit, "0290")
    assert lue.nachrichtentyp == "0290" and lue.root == "lue.gewerbemeldung.0290"
    assert lue.nachrichtenkopf.nachrichtentyp == "0290"
    assert lue.nachrichtenkopf.leser == kosit.nachrichtenkopf.leser
    meldung = lue.saetze[0].meldung
    source = kosit.saetze[0].meldung
    assert meldung.gewerbe.betrieb == source.gewerbe.betrieb
    assert meldung.gewerbe.anzahl_teilzeit_beschaeftigte is None  # lue: no beschaeftigte
    assert meldung.gewerbe.handwerkskarte is None
    person = meldung.gewerbe.beteiligte_personen[0]
    assert person.familienname == "Pick" and person.anschrift is not None
    assert person.geburtsdatum is None and person.aufenthaltstitel is None
    assert person.staatsangehoerigkeiten is None
    assert kosit.saetze[0].meldung.gewerbe.handwerkskarte is not None  # source untouched


def test_project_keeps_list_attributes_of_nachrichtentyp(restaurant: Gewerbemeldung) -> None:
    typ = project(restaurant, "ihk").nachrichtenkopf.identifikation.nachrichtentyp
    assert typ == Code(
        "0200",
        list_uri="urn:xoev-de:xgewerbeanzeige:codeliste:nachrichtentyp",
        list_version_id="2.2",
    )


def test_project_to_own_type_is_identity(kosit: Gewerbemeldung) -> None:
    assert project(kosit, "abh") == kosit


def _kopf(leser: str, typ: str = "0000") -> Nachrichtenkopf:
    return Nachrichtenkopf.neu(
        nachrichtentyp=typ,
        leser=Behoerde(behoerdenkennung=Behoerdenkennung.from_string(leser)),
        autor=Behoerde(
            behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774032"),
            behoerdenname="Stadt Paderborn, Gewerbeamt",
        ),
    )


def test_build_for_a_recipient_from_a_record(restaurant: Gewerbemeldung) -> None:
    meldung = restaurant.saetze[0].meldung
    kopf = _kopf("MELDID:05774000")
    msg = build_for(
        meldung, "lue", kopf=kopf, produkt=Produktangaben(produktversion="9.9", test="1")
    )
    assert msg.root == "lue.gewerbemeldung.0290"
    assert msg.nachrichtenkopf.nachrichtentyp == "0290"
    assert msg.nachrichtenkopf.nachrichten_uuid == kopf.nachrichten_uuid
    assert (msg.produkt, msg.produktversion, msg.test) == ("amtsbote", "9.9", "1")
    assert msg.saetze == (Satz(meldung=project_meldung(meldung, "lue")),)
    data = build(msg)
    assert parse(data) == msg
    assert b"14031984" not in data and b"aufenthaltstitel" not in data


def test_build_for_accepts_satz_list_and_message(restaurant: Gewerbemeldung) -> None:
    kopf = _kopf("STLA:05")
    satz = restaurant.saetze[0]
    by_satz = build_for(satz, "sta", kopf=kopf)
    assert build_for([satz, satz.meldung], "sta", kopf=kopf).saetze == by_satz.saetze * 2
    assert build_for(restaurant, "sta", kopf=kopf).saetze == by_satz.saetze
    assert b"Rojas" not in build(by_satz)
    with pytest.raises(ValueError, match="at least one Satz"):
        build_for([], "sta", kopf=kopf)


def test_default_produktangaben_name_amtsbote(restaurant: Gewerbemeldung) -> None:
    msg = build_for(restaurant, "alg", kopf=_kopf("MELDID:05774000"))
    assert (msg.produkt, msg.produkthersteller) == ("amtsbote", "amtsbote")
    assert msg.standard == "XGewerbeanzeige" and msg.version == "2.2"


def test_projection_refuses_nothing_required(kosit: Gewerbemeldung) -> None:
    # a voll type built from a record without names cannot be valid: the XSD says so
    sta = project(kosit, "sta")
    with pytest.raises(Exception, match="familienname"):
        build(project(replace(sta, nachrichtentyp="0500"), "abh"))
