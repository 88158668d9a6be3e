"""The intake notifications (xoev/xgewerbeanzeige/samples/notification-*.xml): complete records
(gwa.gewerbemeldung.0010) that the Wirtschafts-Service-Portal.NRW sends to the Gewerbeamt of the
Stadt Paderborn, and from which every recipient type is projected with build_for()."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

import xoev
from connectors.directory import Directory
from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
from xoev.parsing import parse_xml
from xoev.xgewerbeanzeige import notifications, samples
from xoev.xgewerbeanzeige.exceptions import BuildError
from xoev.xgewerbeanzeige.message_types import (
    NAMESPACE,
    datengruppen,
    nachrichtentyp,
    nachrichtentypen,
)
from xoev.xgewerbeanzeige.rules_v2_2 import check_rules, freizuegige_codes
from xoev.xgewerbeanzeige.v2_2 import (
    Abmeldung,
    Anmeldung,
    Gewerbemeldung,
    Produktangaben,
    Ummeldung,
    build,
    build_for,
    parse,
    project,
    schema_findings,
)

ROOT = Path(__file__).resolve().parents[1]
AGENCIES = ROOT / "deployments" / "owl" / "agencies.yaml"
NS = {"xga": NAMESPACE}
NAMES = [s.name for s in notifications()]
RECIPIENT_TYPES = [t.code for t in nachrichtentypen() if t.code != "0010"]


def data_of(name: str) -> bytes:
    return next(s for s in notifications() if s.name == name).read_bytes()


def record(name: str) -> Gewerbemeldung:
    return parse(data_of(name), source=name)


def only_meldung(msg: Gewerbemeldung) -> Anmeldung | Ummeldung | Abmeldung:
    (meldung,) = msg.meldungen
    return meldung


def with_meldung(msg: Gewerbemeldung, meldung: Anmeldung | Ummeldung | Abmeldung) -> Gewerbemeldung:
    return replace(msg, saetze=(replace(msg.saetze[0], meldung=meldung),))


def groups_present(root: etree._Element) -> set[str]:
    """The data groups (types_v2_2.yaml) of which the document holds at least one element."""
    found: set[str] = set()
    for name, gruppe in datengruppen().items():
        for pfad in gruppe.pfade:
            xp = "xga:satz/*/" + "/".join(f"xga:{step}" for step in pfad)
            if root.xpath(xp, namespaces=NS):
                found.add(name)
    return found


def rule_ids(info: pytest.ExceptionInfo[BuildError]) -> list[str]:
    return [f.rule for f in info.value.findings]


# --------------------------------------------------------------------------- the samples


def test_three_notifications_of_the_intake_type() -> None:
    assert NAMES == [
        "notification-abmeldung-kiosk",
        "notification-anmeldung-restaurant",
        "notification-ummeldung-friseur",
    ]
    found = notifications()
    assert all(s.valid and s.root == "gwa.gewerbemeldung.0010" for s in found)
    assert all(s.description.startswith("Fiktives Beispiel (amtsbote)") for s in found)
    assert set(found) <= set(samples())
    typ = nachrichtentyp("0010")
    assert (typ.beleg, typ.profil, typ.rollen) == ("amtsbote", "voll", ("Gewerbeamt",))


@pytest.mark.parametrize("name", NAMES)
def test_notification_is_valid_without_any_finding(name: str) -> None:
    data = data_of(name)
    report = xoev.validate(data, source=name)  # XSD, shipped codelists, rules incl. warnings
    assert report.findings == []
    assert (report.standard, report.version, report.message_type) == (
        "XGewerbeanzeige",
        "2.2",
        "0010",
    )
    assert schema_findings(data) == []
    assert check_rules(parse_xml(data)) == []


@pytest.mark.parametrize("name", NAMES)
def test_notification_goes_from_the_portal_to_the_gewerbeamt_paderborn(name: str) -> None:
    msg = record(name)
    directory = Directory.load(AGENCIES)
    portal, amt = directory.get("wsp-nrw"), directory.get("stadt-paderborn")
    kopf = msg.nachrichtenkopf
    assert kopf.nachrichtentyp == "0010" and msg.test == "1"
    assert str(kopf.autor) == portal.behoerdenkennung == "PORTAL:05-wsp"
    assert kopf.autor.behoerdenname == portal.name == "Wirtschafts-Service-Portal.NRW"
    assert str(kopf.leser) == amt.behoerdenkennung == "MELDID:05774032"
    assert kopf.leser.behoerdenname == amt.name == "Stadt Paderborn, Gewerbeamt"
    assert "Gewerbeamt" in amt.roles and "Portal" in portal.roles
    meldung = only_meldung(msg)
    assert meldung.gemeinde_schluessel.code == "05774032"
    assert meldung.gewerbe.anschrift.ort == "Paderborn"
    assert (meldung.gewerbe.anschrift.plz or "").startswith("33")
    (person,) = meldung.gewerbe.beteiligte_personen
    assert person.anschrift is not None and person.anschrift.ort == "Paderborn"
    assert meldung.datum_meldung <= meldung.satz_erstellung.date()
    assert meldung.satz_erstellung <= kopf.erstellungszeitpunkt


def test_restaurant_anmeldung_non_eu_national_with_residence_title() -> None:
    msg = record("notification-anmeldung-restaurant")
    meldung = only_meldung(msg)
    assert isinstance(meldung, Anmeldung)
    assert meldung.grund_anmeldung_schluessel.code == "01"
    schwerpunkt = meldung.taetigkeiten_gesamt.schwerpunkt
    assert schwerpunkt.taetigkeit_schluessel == "56101"
    assert schwerpunkt.stichwort == "Restaurant mit Ausschank alkoholischer Getränke"
    gewerbe = meldung.gewerbe
    assert gewerbe.betrieb_art.handwerk.code == "0" and gewerbe.handwerkskarte is None
    assert (gewerbe.anzahl_vollzeit_beschaeftigte or 0) + (
        gewerbe.anzahl_teilzeit_beschaeftigte or 0
    ) > 0
    (person,) = gewerbe.beteiligte_personen
    assert person.staatsangehoerigkeiten is not None
    assert person.staatsangehoerigkeiten.codes == ("163",)
    assert not set(person.staatsangehoerigkeiten.codes) & freizuegige_codes()
    titel = person.aufenthaltstitel
    assert titel is not None and titel.status.code == "1"
    assert titel.gueltig_bis is not None and titel.gueltig_bis > meldung.gueltig_ab
    # without the residence title the record is refused (XGWA-R03)
    ohne = replace(person, aufenthaltstitel=None)
    broken = with_meldung(
        msg, replace(meldung, gewerbe=replace(gewerbe, beteiligte_personen=(ohne,)))
    )
    with pytest.raises(BuildError) as info:
        build(broken)
    assert rule_ids(info) == ["XGWA-R03"]


def test_friseur_ummeldung_moves_within_paderborn() -> None:
    msg = record("notification-ummeldung-friseur")
    meldung = only_meldung(msg)
    assert isinstance(meldung, Ummeldung)
    assert meldung.taetigkeiten_gesamt.schwerpunkt.taetigkeit_schluessel == "96021"
    gewerbe = meldung.gewerbe
    assert gewerbe.betrieb_art.ist_handwerk
    assert gewerbe.handwerkskarte is not None and gewerbe.handwerkskarte.status.code == "1"
    (person,) = gewerbe.beteiligte_personen
    assert person.staatsangehoerigkeiten is not None
    assert person.staatsangehoerigkeiten.codes == ("000",)
    assert person.aufenthaltstitel is None
    assert meldung.gruende_ummeldung is not None
    assert [c.code for c in meldung.gruende_ummeldung.schluessel] == ["01"]  # Verlegung
    alt, neu = meldung.anschrift_alt, gewerbe.anschrift
    assert alt is not None and alt.ort == neu.ort == "Paderborn"
    assert (alt.strasse, alt.hausnummer_von) != (neu.strasse, neu.hausnummer_von)
    assert meldung.bisherige_unfallversicherung is not None
    # a Handwerk without Handwerkskarte is refused (XGWA-R02)
    broken = with_meldung(msg, replace(meldung, gewerbe=replace(gewerbe, handwerkskarte=None)))
    with pytest.raises(BuildError) as info:
        build(broken)
    assert rule_ids(info) == ["XGWA-R02"]


def test_kiosk_abmeldung_eu_national_sold_business() -> None:
    msg = record("notification-abmeldung-kiosk")
    meldung = only_meldung(msg)
    assert isinstance(meldung, Abmeldung)
    assert meldung.grund_abmeldung_schluessel is not None
    assert meldung.grund_abmeldung_schluessel.code == "07"  # Verkauf
    assert meldung.kuenftiges_gewerbe is not None
    assert meldung.taetigkeiten_gesamt.schwerpunkt.taetigkeit_schluessel == "47260"
    assert meldung.gewerbe.betrieb_art.handel.code == "1"
    (person,) = meldung.gewerbe.beteiligte_personen
    assert person.staatsangehoerigkeiten is not None
    assert person.staatsangehoerigkeiten.codes == ("152",)
    assert set(person.staatsangehoerigkeiten.codes) <= freizuegige_codes()
    assert person.aufenthaltstitel is None  # EU: none needed, and XGWA-R03 agrees
    # an Abmeldung without its reason is refused (XGWA-R05)
    broken = with_meldung(msg, replace(meldung, grund_abmeldung_schluessel=None))
    with pytest.raises(BuildError) as info:
        build(broken)
    assert rule_ids(info) == ["XGWA-R05"]


def test_nationality_codes_resolve_in_the_destatis_country_list(schemata_dir: Path) -> None:
    """The Staatsangehörigkeitsschlüssel are Destatis codes: each resolves in the KoSIT country
    list (column DESTATIS-Code-Staat) to the person's geburtsland."""
    country_list = schemata_dir / "xdomea-3.0.0" / "code_lists" / "Country Codes_7.xml"
    names: dict[str, str] = {}
    for row in etree.parse(str(country_list)).iter("Row"):
        values = {v.get("ColumnRef"): v.findtext("SimpleValue") for v in row.iter("Value")}
        if values.get("DESTATIS-Code-Staat"):
            names[values["DESTATIS-Code-Staat"] or ""] = values.get("ShortName") or ""
    seen: dict[str, str] = {}
    for name in NAMES:
        (person,) = only_meldung(record(name)).gewerbe.beteiligte_personen
        assert person.staatsangehoerigkeiten is not None
        for code in person.staatsangehoerigkeiten.codes:
            assert names.get(code) == person.geburtsland, (name, code)
            seen[code] = names[code]
    assert seen == {"000": "Deutschland", "152": "Polen", "163": "Türkei"}


def test_notifications_carry_every_data_group_that_fits_them() -> None:
    present = {name: groups_present(etree.fromstring(data_of(name))) for name in NAMES}
    everything = set(datengruppen())
    assert present["notification-anmeldung-restaurant"] == everything - {
        "handwerkskarte",
        "unfallversicherung",
        "kuenftiges_gewerbe",
    }
    assert present["notification-ummeldung-friseur"] == everything - {
        "aufenthaltstitel",
        "kuenftiges_gewerbe",
    }
    assert present["notification-abmeldung-kiosk"] == everything - {
        "handwerkskarte",
        "aufenthaltstitel",
        "unfallversicherung",
    }
    assert set().union(*present.values()) == everything


@pytest.mark.parametrize("name", NAMES)
def test_notification_round_trips(name: str) -> None:
    data = data_of(name)
    msg = record(name)
    out = build(msg)
    canon = [
        etree.canonicalize(d.decode(), with_comments=False, strip_text=True) for d in (data, out)
    ]
    assert canon[0] == canon[1]
    assert parse(out) == msg
    assert project(msg, "gwa") == msg  # the full record: the intake type carries every group


# --------------------------------------------------------------------------- projection


@pytest.mark.parametrize("code", RECIPIENT_TYPES)
@pytest.mark.parametrize("name", NAMES)
def test_every_recipient_message_is_projected_from_the_record(name: str, code: str) -> None:
    full = record(name)
    typ = nachrichtentyp(code)
    kopf = Nachrichtenkopf.neu(
        nachrichtentyp="0010",  # build_for sets the type's code
        leser=Behoerde(behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774000")),
        autor=Behoerde(
            behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774032"),
            behoerdenname="Stadt Paderborn, Gewerbeamt",
        ),
    )
    msg = build_for(full, typ, kopf=kopf, produkt=Produktangaben(produktversion="0.1.0", test="1"))
    data = build(msg)  # validates: XSD and business-rule errors
    assert xoev.validate(data, source=f"{name}→{typ.root}").findings == []  # no R09 either
    root = etree.fromstring(data)
    assert etree.QName(root).localname == typ.root
    assert msg.nachrichtenkopf.nachrichtentyp == code
    assert msg.nachrichten_uuid == kopf.nachrichten_uuid
    assert parse(data) == msg
    full_groups = groups_present(etree.fromstring(build(full)))
    assert groups_present(root) == full_groups & set(typ.datengruppen)
    # core data is never dropped
    meldung, source = only_meldung(msg), only_meldung(full)
    assert type(meldung) is type(source)
    assert meldung.uuid == source.uuid and meldung.gueltig_ab == source.gueltig_ab
    assert meldung.gewerbe.anschrift == source.gewerbe.anschrift
    assert meldung.taetigkeiten_gesamt == source.taetigkeiten_gesamt
