"""The XÖV Nachrichtenkopf model (xoev/nachrichtenkopf.py), read from the KoSIT XGewerbeanzeige
message in place."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from xoev.code import Code
from xoev.exceptions import UnusableInputError
from xoev.nachrichtenkopf import (
    Anschrift,
    Behoerde,
    Behoerdenkennung,
    Erreichbarkeit,
    Nachrichtenkopf,
    NachrichtenkopfError,
    element_path,
)

XGA = "http://www.xgewerbeanzeige.de/spezifikation/2.2"
OTHER = "urn:example:anderer-standard:1.0"


def c14n(element: etree._Element) -> str:
    return etree.canonicalize(
        etree.tostring(element).decode(), with_comments=False, strip_text=True
    )


@pytest.fixture()
def kopf_el(xgwa_samples: Path) -> etree._Element:
    tree = etree.parse(str(xgwa_samples / "xgwa2.2-valid.xml"))
    el = tree.getroot().find(f"{{{XGA}}}nachrichtenkopf")
    assert el is not None
    return el


def test_reads_every_field_of_the_kosit_header(kopf_el: etree._Element) -> None:
    kopf = Nachrichtenkopf.from_element(kopf_el)
    assert kopf.nachrichten_uuid == "00000000-0000-0000-0000-000000000001"
    assert kopf.nachrichtentyp == "0500"
    assert kopf.identifikation.nachrichtentyp == Code("0500")
    assert kopf.erstellungszeitpunkt == datetime(2019, 10, 24, tzinfo=timezone(timedelta(hours=2)))
    assert kopf.erstellungszeitpunkt.utcoffset() == timedelta(hours=2)

    leser = kopf.leser
    assert str(leser.behoerdenkennung) == "azr:000100"
    assert leser.behoerdenkennung.kennzeichen == "azr:000100"
    assert leser.behoerdenkennung.praefix == Code("azr", list_version_id="7")
    assert leser.behoerdenkennung.kennung == Code(
        "000100", list_uri="urn:de:xauslaender:codelist:abhkennung", list_version_id="14"
    )
    assert [(e.kanal.code, e.kennung) for e in leser.erreichbarkeit] == [
        ("01", "gewerbe@verteilplattform.cottbus.de"),
        ("09", "https://verteilplattform.cottbus.de"),
    ]
    assert leser.anschrift == Anschrift(
        strasse="Testallee", hausnummer="42", ort="Cottbus", plz="03046"
    )
    assert leser.behoerdenname == "Phantasie-Verteilplattform"

    autor = kopf.autor
    assert str(autor) == "MELDID:12052000"
    assert autor.behoerdenkennung.kennung.list_version_id == "2018-01-31"
    assert autor.erreichbarkeit[1] == Erreichbarkeit(Code("02"), "0355 - 6122840")
    assert autor.behoerdenname == "Gewerbeamt Cottbus"


def test_round_trip_is_exact(kopf_el: etree._Element) -> None:
    kopf = Nachrichtenkopf.from_element(kopf_el)
    written = kopf.to_element(XGA, nsmap={"xga": XGA})
    assert c14n(written) == c14n(kopf_el)
    assert Nachrichtenkopf.from_element(written) == kopf


def test_code_children_stay_unqualified(kopf_el: etree._Element) -> None:
    written = Nachrichtenkopf.from_element(kopf_el).to_element(XGA)
    codes = written.findall(".//code")
    assert len(codes) == 9  # nachrichtentyp, 2x (praefix, kennung), 4x kanal
    assert written.findall(f".//{{{XGA}}}code") == []


def _renamespace(element: etree._Element, ns: str) -> etree._Element:
    el = copy.deepcopy(element)
    for node in el.iter():
        if isinstance(node.tag, str) and node.tag.startswith(f"{{{XGA}}}"):
            node.tag = f"{{{ns}}}{etree.QName(node).localname}"
    return el


def test_namespace_is_taken_from_the_element(kopf_el: etree._Element) -> None:
    other = _renamespace(kopf_el, OTHER)
    kopf = Nachrichtenkopf.from_element(other)
    assert kopf == Nachrichtenkopf.from_element(kopf_el)
    written = kopf.to_element(OTHER, nsmap={"o": OTHER})
    assert etree.QName(written).namespace == OTHER
    assert {etree.QName(n).namespace for n in written.iter() if n.tag != "code"} == {OTHER}

    def shape(el: etree._Element) -> list[tuple[str, str, dict[str, str]]]:
        return [(n.tag, (n.text or "").strip(), dict(n.attrib)) for n in el.iter()]

    assert shape(written) == shape(other)


def test_to_element_appends_to_parent(kopf_el: etree._Element) -> None:
    kopf = Nachrichtenkopf.from_element(kopf_el)
    parent = etree.Element(f"{{{XGA}}}abh.gewerbemeldung.0500", nsmap={"xga": XGA})
    child = kopf.to_element(XGA, parent=parent)
    assert child.getparent() is parent
    assert etree.tostring(parent).decode().startswith("<xga:abh.gewerbemeldung.0500")


def test_unknown_element_is_an_error_naming_element_line_and_xpath(
    kopf_el: etree._Element,
) -> None:
    leser = kopf_el.find(f"{{{XGA}}}leser")
    assert leser is not None
    extra = etree.SubElement(leser, f"{{{XGA}}}lieblingsfarbe")
    extra.text = "blau"
    with pytest.raises(NachrichtenkopfError) as info:
        Nachrichtenkopf.from_element(kopf_el)
    err = info.value
    assert err.element == "lieblingsfarbe"
    assert (
        err.xpath == "/xga:abh.gewerbemeldung.0500/xga:nachrichtenkopf/xga:leser/xga:lieblingsfarbe"
    )
    assert "unexpected element lieblingsfarbe in leser" in str(err)
    assert isinstance(err, UnusableInputError)


def test_missing_required_element_names_it(kopf_el: etree._Element) -> None:
    ident = kopf_el.find(f"{{{XGA}}}identifikation.nachricht")
    assert ident is not None
    typ = ident.find(f"{{{XGA}}}nachrichtentyp")
    assert typ is not None
    ident.remove(typ)
    with pytest.raises(NachrichtenkopfError) as info:
        Nachrichtenkopf.from_element(kopf_el)
    assert "where required element nachrichtentyp belongs" in str(info.value)
    assert info.value.line == 13  # where erstellungszeitpunkt stands instead


def test_invalid_values_are_errors_without_the_value(kopf_el: etree._Element) -> None:
    uuid_el = kopf_el.find(f".//{{{XGA}}}nachrichtenUUID")
    assert uuid_el is not None
    uuid_el.text = "GEHEIM-keine-uuid"
    with pytest.raises(NachrichtenkopfError) as info:
        Nachrichtenkopf.from_element(kopf_el)
    assert "nachrichtenUUID is not a valid UUID" in str(info.value)
    assert "GEHEIM" not in str(info.value)


def test_a_time_without_zone_is_read_as_written(kopf_el: etree._Element) -> None:
    """xs:dateTime allows a value without time zone: it is read (strict too) and written back
    without one; a new header needs a zone (Nachrichtenkopf.neu)."""
    zeit = kopf_el.find(f".//{{{XGA}}}erstellungszeitpunkt")
    assert zeit is not None
    zeit.text = "2019-10-24T00:00:00"
    kopf = Nachrichtenkopf.from_element(kopf_el)
    assert kopf.erstellungszeitpunkt == datetime(2019, 10, 24)
    written = kopf.to_element(XGA).find(f".//{{{XGA}}}erstellungszeitpunkt")
    assert written is not None and written.text == "2019-10-24T00:00:00"
    zeit.text = "2019-10-24 00:00"
    with pytest.raises(NachrichtenkopfError, match="erstellungszeitpunkt"):
        Nachrichtenkopf.from_element(kopf_el)


def test_lenient_mode_skips_unknown_elements_and_reports_them(kopf_el: etree._Element) -> None:
    autor = kopf_el.find(f"{{{XGA}}}autor")
    assert autor is not None
    autor.insert(0, etree.Element(f"{{{OTHER}}}fremd"))
    skipped: list[str] = []
    kopf = Nachrichtenkopf.from_element(kopf_el, strict=False, skipped=skipped)
    assert str(kopf.autor) == "MELDID:12052000"
    assert len(skipped) == 1 and skipped[0].endswith("/xga:autor/ns0:fremd")
    with pytest.raises(
        NachrichtenkopfError, match=r"unknown element fremd \(namespace urn:example"
    ):
        Nachrichtenkopf.from_element(kopf_el)


def test_code_with_foreign_attribute_is_rejected(kopf_el: etree._Element) -> None:
    typ = kopf_el.find(f".//{{{XGA}}}nachrichtentyp")
    assert typ is not None
    typ.set("farbe", "rot")
    with pytest.raises(NachrichtenkopfError, match="unexpected attribute farbe"):
        Nachrichtenkopf.from_element(kopf_el)


def test_behoerdenkennung_from_string() -> None:
    kennung = Behoerdenkennung.from_string(
        "MELDID:05774032",
        kennung_list_uri="urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags",
    )
    assert str(kennung) == "MELDID:05774032"
    assert kennung.kennung.list_uri is not None
    for bad in ("MELDID", ":05774032", "MELDID:"):
        with pytest.raises(ValueError, match="praefix:kennung"):
            Behoerdenkennung.from_string(bad)


def test_neu_gives_uuid_and_utc_time_and_round_trips() -> None:
    leser = Behoerde(behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774000"))
    autor = Behoerde(
        behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774032"),
        behoerdenname="Stadt Paderborn, Gewerbeamt",
    )
    a = Nachrichtenkopf.neu(nachrichtentyp="0290", leser=leser, autor=autor)
    b = Nachrichtenkopf.neu(nachrichtentyp="0290", leser=leser, autor=autor)
    assert a.nachrichten_uuid != b.nachrichten_uuid
    assert a.erstellungszeitpunkt.tzinfo is UTC and a.erstellungszeitpunkt.microsecond == 0
    assert Nachrichtenkopf.from_element(a.to_element(OTHER)) == a
    with pytest.raises(ValueError, match="time zone"):
        Nachrichtenkopf.neu(
            nachrichtentyp="0290",
            leser=leser,
            autor=autor,
            erstellungszeitpunkt=datetime(2025, 1, 1),
        )


def test_element_path_positions_only_for_repeated_siblings(kopf_el: etree._Element) -> None:
    kanal = kopf_el.findall(f".//{{{XGA}}}autor/{{{XGA}}}erreichbarkeit")[1][0]
    assert element_path(kanal) == (
        "/xga:abh.gewerbemeldung.0500/xga:nachrichtenkopf/xga:autor/xga:erreichbarkeit[2]/xga:kanal"
    )
