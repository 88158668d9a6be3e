"""XGewerbeanzeige 2.2: the KoSIT yardstick messages (read in place), the model, parse and build."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from xoev.code import Code
from xoev.exceptions import NotXMLError, UnusableInputError
from xoev.findings import Severity
from xoev.xgewerbeanzeige import rules_v2_2, samples
from xoev.xgewerbeanzeige.exceptions import (
    BuildError,
    NotXGewerbeanzeigeError,
    StructureError,
    UnknownMessageTypeError,
    UnknownTableEntryError,
)
from xoev.xgewerbeanzeige.v2_2 import (
    NAMESPACE,
    Anmeldung,
    Geburtsdatum,
    Gewerbemeldung,
    Ummeldung,
    build,
    parse,
    schema_findings,
    to_element,
)

NS = {"xga": NAMESPACE}


def c14n(data: bytes) -> str:
    return etree.canonicalize(data.decode("utf-8"), with_comments=False, strip_text=True)


def tree_of(data: bytes) -> etree._ElementTree:
    return etree.ElementTree(etree.fromstring(data))


def edit(data: bytes, xpath: str, action: str, new: str | None = None) -> bytes:
    """Change the first element at ``xpath``: ``remove`` it, set its ``text``, or insert ``new``
    (an XML fragment in the xga namespace) ``after`` it."""
    root = etree.fromstring(data)
    el = root.xpath(xpath, namespaces=NS)[0]
    if action == "remove":
        el.getparent().remove(el)
    elif action == "text":
        el.text = new
    elif action == "after":
        assert new is not None
        el.addnext(etree.fromstring(f'<r xmlns:xga="{NAMESPACE}">{new}</r>')[0])
    else:
        raise AssertionError(action)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def valid(xgwa_samples: Path) -> bytes:
    return (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()


@pytest.fixture(scope="module")
def invalid(xgwa_samples: Path) -> bytes:
    return (xgwa_samples / "xgwa2.2-invalid.xml").read_bytes()


# --------------------------------------------------------------------------- KoSIT yardsticks


def test_kosit_valid_message_validates_and_passes_rules(valid: bytes) -> None:
    assert schema_findings(valid) == []
    assert rules_v2_2.check_rules(tree_of(valid)) == []


def test_kosit_valid_message_round_trips_exactly(valid: bytes) -> None:
    msg = parse(valid, source="xgwa2.2-valid.xml")
    out = build(msg)
    assert c14n(out) == c14n(valid)
    assert parse(out) == msg


def test_kosit_valid_message_reads_into_the_model(valid: bytes) -> None:
    msg = parse(valid)
    assert msg.root == "abh.gewerbemeldung.0500"
    assert msg.message_type.praefix == "abh" and msg.nachrichtentyp == "0500"
    assert (msg.produkt, msg.produkthersteller, msg.produktversion, msg.test) == (
        "XGA-Testsuite",
        "KoSIT",
        "2019",
        "100",
    )
    assert msg.nachrichten_uuid == "00000000-0000-0000-0000-000000000001"
    assert len(msg.saetze) == 1
    meldung = msg.saetze[0].meldung
    assert isinstance(meldung, Anmeldung)
    assert meldung.satz_erstellung == datetime(2016, 7, 4, 17, 54, 42, tzinfo=UTC)
    assert meldung.ist_korrektur == Code("0")
    assert meldung.gemeinde_schluessel == Code("12052000", list_version_id="2019-05-31")
    assert meldung.uuid == "5687CF4A-5C7B-43F1-933E-E5A7F69F7967"
    assert (meldung.gueltig_ab, meldung.datum_meldung) == (date(2016, 8, 1), date(2016, 7, 2))
    assert meldung.grund_anmeldung_schluessel.code == "01"
    assert meldung.autor is not None and str(meldung.autor) == "MELDID:12052000"

    gewerbe = meldung.gewerbe
    assert gewerbe.betrieb.eingetragener_name == "Tibor Pick e.K."
    assert gewerbe.betrieb.rechtsform_schluessel.code == "170"
    assert (gewerbe.anzahl_vollzeit_beschaeftigte, gewerbe.anzahl_teilzeit_beschaeftigte) == (0, 2)
    assert gewerbe.betrieb_art.ist_handwerk
    assert gewerbe.handwerkskarte is not None
    assert gewerbe.handwerkskarte.ausgestellt_am == date(2012, 3, 1)
    assert gewerbe.anschrift.hausnummer_von == "90"
    assert gewerbe.anschrift.nation_schluessel == Code("276", list_version_id="2")

    (person,) = gewerbe.beteiligte_personen
    assert (person.familienname, person.vorname, person.geburtsname) == (
        "Pick",
        "Tibor",
        "Rodríguez",
    )
    assert person.geburtsdatum == Geburtsdatum(jahr=1965, monat=10, tag=12)
    assert person.geburtsdatum.datum == date(1965, 10, 12)
    assert person.staatsangehoerigkeiten is not None
    assert person.staatsangehoerigkeiten.codes == ("332",)
    assert person.staatsangehoerigkeiten.schluessel[0].list_version_id == "2019-04-01"
    assert person.aufenthaltstitel is not None
    assert person.aufenthaltstitel.ausgestellt_von_name == "Stadt Cottbus"

    taet = meldung.taetigkeiten_gesamt
    assert taet.schwerpunkt.taetigkeit_schluessel == "96021"
    assert taet.weitere_taetigkeiten is not None
    assert taet.weitere_taetigkeiten.taetigkeiten_zusammengefasst == (
        "Verkauf von Haarpflegeprodukten|Make-up-Beratung"
    )


def test_kosit_invalid_message_has_exactly_the_two_known_defects(invalid: bytes) -> None:
    findings = schema_findings(invalid)
    assert len(findings) == 2
    assert all(f.severity is Severity.ERROR and f.rule.startswith("xsd:") for f in findings)
    betrieb_art, familienname = findings  # document order
    assert "betriebArt" in betrieb_art.message
    assert betrieb_art.xpath == "/xga:abh.gewerbemeldung.0500/xga:satz/xga:anmeldung/xga:gewerbe"
    assert "familienname" in familienname.message
    assert familienname.xpath is not None and familienname.xpath.endswith("/xga:beteiligtePerson")
    assert betrieb_art.line is not None and familienname.line is not None
    assert betrieb_art.line < familienname.line


def test_kosit_invalid_message_is_refused_by_strict_parse(invalid: bytes) -> None:
    with pytest.raises(StructureError) as info:
        parse(invalid, source="xgwa2.2-invalid.xml")
    err = info.value
    assert err.line == 137 and err.element == "niederlassungArt"
    assert "required element betriebArt belongs" in str(err)
    assert str(err).startswith("xgwa2.2-invalid.xml:137 /xga:abh.gewerbemeldung.0500/")


def test_unknown_document_is_not_xgewerbeanzeige(xgwa_samples: Path) -> None:
    with pytest.raises(NotXGewerbeanzeigeError) as info:
        parse((xgwa_samples / "xy-unknown.xml").read_bytes(), source="xy-unknown.xml")
    err = info.value
    assert (err.root, err.namespace) == ("xy", None)
    assert "root element <xy> has no namespace" in str(err)
    assert NAMESPACE in str(err)
    assert isinstance(err, UnusableInputError)


def test_other_xgewerbeanzeige_version_is_not_2_2(valid: bytes) -> None:
    older = valid.replace(b"spezifikation/2.2", b"spezifikation/2.1")
    with pytest.raises(NotXGewerbeanzeigeError, match=r"spezifikation/2\.1"):
        parse(older)


def test_unknown_root_in_the_namespace(valid: bytes) -> None:
    renamed = valid.replace(b"abh.gewerbemeldung.0500", b"xyz.gewerbemeldung.0999")
    with pytest.raises(UnknownMessageTypeError) as info:
        parse(renamed)
    assert info.value.root == "xyz.gewerbemeldung.0999"
    assert "abh.gewerbemeldung.0500" in info.value.known


def test_not_xml_is_unusable_input() -> None:
    with pytest.raises(NotXMLError):
        parse(b"<xga:abh.gewerbemeldung.0500")


# --------------------------------------------------------------------------- strictness


def test_strict_parse_rejects_unknown_element(valid: bytes) -> None:
    data = edit(
        valid,
        "//xga:gewerbe/xga:istNebenerwerb",
        "after",
        "<xga:lieblingsfarbe>blau</xga:lieblingsfarbe>",
    )
    with pytest.raises(StructureError) as info:
        parse(data)
    err = info.value
    assert err.element == "lieblingsfarbe"
    assert err.xpath == (
        "/xga:abh.gewerbemeldung.0500/xga:satz/xga:anmeldung/xga:gewerbe/xga:lieblingsfarbe"
    )
    assert err.line is not None


def test_lenient_parse_skips_unknown_element_and_lists_it(valid: bytes) -> None:
    data = edit(
        valid,
        "//xga:gewerbe/xga:istNebenerwerb",
        "after",
        "<xga:lieblingsfarbe>blau</xga:lieblingsfarbe>",
    )
    msg = parse(data, strict=False)
    assert msg.skipped == (
        "/xga:abh.gewerbemeldung.0500/xga:satz/xga:anmeldung/xga:gewerbe/xga:lieblingsfarbe",
    )
    assert msg == parse(valid)  # skipped takes no part in equality
    assert b"lieblingsfarbe" not in build(msg)


def test_lenient_parse_accepts_other_order_build_restores_schema_order(valid: bytes) -> None:
    root = etree.fromstring(valid)
    gewerbe = root.xpath("//xga:gewerbe", namespaces=NS)[0]
    art = gewerbe.find("xga:betriebArt", NS)
    gewerbe.remove(art)
    gewerbe.append(art)
    data = etree.tostring(root)
    with pytest.raises(StructureError, match="unexpected element niederlassungArt"):
        parse(data)
    assert c14n(build(parse(data, strict=False))) == c14n(valid)


def test_strict_parse_rejects_unexpected_attributes(valid: bytes) -> None:
    root = etree.fromstring(valid)
    root.xpath("//xga:gewerbe", namespaces=NS)[0].set("farbe", "rot")
    with pytest.raises(StructureError, match="unexpected attribute farbe on gewerbe"):
        parse(etree.tostring(root))
    with pytest.raises(StructureError, match=r"attribute version must be '2\.2'"):
        parse(valid.replace(b'version="2.2"', b'version="2.1"'))
    with pytest.raises(StructureError, match="required attribute produkt missing"):
        parse(valid.replace(b'produkt="XGA-Testsuite"', b""))


def test_invalid_value_error_names_element_but_not_value(valid: bytes) -> None:
    data = edit(valid, "//xga:geburtsdatum", "text", "3x101965")
    with pytest.raises(StructureError) as info:
        parse(data)
    assert info.value.element == "geburtsdatum"
    assert "not a valid Geburtsdatum" in str(info.value)
    assert "3x101965" not in str(info.value)


def test_missing_required_choice(valid: bytes) -> None:
    data = edit(valid, "//xga:anmeldung", "remove")
    with pytest.raises(StructureError, match="one of anmeldung, ummeldung, abmeldung required"):
        parse(data)


def test_parse_accepts_tree_and_element(valid: bytes) -> None:
    tree = tree_of(valid)
    assert parse(tree) == parse(tree.getroot()) == parse(valid)


# --------------------------------------------------------------------------- build


def test_build_writes_utf8_with_declaration_and_prefix(valid: bytes) -> None:
    out = build(parse(valid))
    assert out.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b"<xga:abh.gewerbemeldung.0500" in out
    assert "Rodríguez".encode() in out


def test_build_refuses_schema_invalid_model(valid: bytes) -> None:
    msg = parse(valid)
    meldung = msg.saetze[0].meldung
    person = replace(meldung.gewerbe.beteiligte_personen[0], familienname=None)
    broken = replace(
        msg,
        saetze=(
            replace(
                msg.saetze[0],
                meldung=replace(
                    meldung, gewerbe=replace(meldung.gewerbe, beteiligte_personen=(person,))
                ),
            ),
        ),
    )
    with pytest.raises(BuildError) as info:
        build(broken)
    err = info.value
    assert [f.rule.startswith("xsd:") for f in err.findings] == [True]
    assert "familienname" in err.findings[0].message
    assert "abh.gewerbemeldung.0500" in str(err) and msg.nachrichten_uuid in str(err)
    data = build(broken, validate=False)  # the explicit opt-out
    assert len(schema_findings(data)) == 1


def test_build_refuses_business_rule_errors(valid: bytes) -> None:
    msg = parse(valid)
    meldung = msg.saetze[0].meldung
    later = replace(meldung, datum_meldung=date(2016, 7, 30))  # after satzErstellung
    with pytest.raises(BuildError) as info:
        build(replace(msg, saetze=(replace(msg.saetze[0], meldung=later),)))
    assert [f.rule for f in info.value.findings] == ["XGWA-R06"]


def test_to_element_is_unvalidated_tree(valid: bytes) -> None:
    root = to_element(parse(valid))
    assert etree.QName(root).localname == "abh.gewerbemeldung.0500"
    assert root.get("standard") == "XGewerbeanzeige" and root.get("version") == "2.2"


def test_every_sample_model_round_trips() -> None:
    for sample in samples():
        if not sample.valid:
            continue
        msg = parse(sample.read_bytes(), source=sample.name)
        assert parse(build(msg)) == msg, sample.name
        assert c14n(build(msg)) == c14n(sample.read_bytes()), sample.name


def test_message_type_must_be_known(valid: bytes) -> None:
    msg = parse(valid)
    with pytest.raises(UnknownTableEntryError, match="unknown message type '0999'"):
        replace(msg, nachrichtentyp="0999")


def test_ummeldung_model_fields() -> None:
    sample = next(s for s in samples() if s.name.startswith("ummeldung"))
    meldung = parse(sample.read_bytes()).saetze[0].meldung
    assert isinstance(meldung, Ummeldung)
    assert meldung.anschrift_alt is not None and meldung.anschrift_alt.hausnummer_von == "17"
    assert meldung.gruende_ummeldung is not None
    assert [c.code for c in meldung.gruende_ummeldung.schluessel] == ["01"]


def test_person_repr_hides_personal_data(valid: bytes) -> None:
    person = parse(valid).saetze[0].meldung.gewerbe.beteiligte_personen[0]
    text = repr(person)
    assert "Pick" not in text and "1965" not in text and "Ewald" not in text


# --------------------------------------------------------------------------- Geburtsdatum


@given(st.integers(0, 31), st.integers(0, 12), st.integers(1000, 9999))
def test_geburtsdatum_text_round_trips(tag: int, monat: int, jahr: int) -> None:
    text = f"{tag:02d}{monat:02d}{jahr:04d}"
    value = Geburtsdatum.from_text(text)
    assert str(value) == text
    assert (value.tag, value.monat) == (tag or None, monat or None)


def test_geburtsdatum_rejects_bad_text_and_knows_real_dates() -> None:
    for bad in ("1210196", "12131965", "32101965", "ab101965"):
        with pytest.raises(ValueError):
            Geburtsdatum.from_text(bad)
    assert Geburtsdatum.from_text("31022000").datum is None  # no such day
    assert Geburtsdatum.from_text("00001965").datum is None
    assert Geburtsdatum.from_date(date(1984, 3, 14)) == Geburtsdatum.from_text("14031984")


def test_datetime_is_written_with_its_offset() -> None:
    sample = next(s for s in samples() if s.name.startswith("anmeldung"))
    msg = parse(sample.read_bytes())
    meldung = msg.saetze[0].meldung
    assert meldung.satz_erstellung.utcoffset() == timedelta(hours=1)
    assert b"<xga:satzErstellung>2025-03-10T09:15:00+01:00<" in build(msg)
    assert isinstance(msg, Gewerbemeldung)
