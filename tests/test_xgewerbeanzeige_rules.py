"""Business rules XGWA-R01…R11 of XGewerbeanzeige 2.2 (rules_v2_2.py): each rule fires on a
message that breaks it and stays silent on the KoSIT message and our valid samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from xoev.findings import Finding, Severity
from xoev.xgewerbeanzeige import V2_2, samples
from xoev.xgewerbeanzeige.message_types import NAMESPACE
from xoev.xgewerbeanzeige.rules_v2_2 import RULES, RuleConfig, check_rules, freizuegige_codes

NS = {"xga": NAMESPACE}


def sample_bytes(prefix: str) -> bytes:
    return next(s for s in samples() if s.name.startswith(prefix)).read_bytes()


@pytest.fixture()
def kosit(xgwa_samples: Path) -> etree._Element:
    return etree.fromstring((xgwa_samples / "xgwa2.2-valid.xml").read_bytes())


def first(root: etree._Element, xpath: str) -> etree._Element:
    found = root.xpath(xpath, namespaces=NS)
    assert found, xpath
    return found[0]


def remove(root: etree._Element, xpath: str) -> etree._Element:
    el = first(root, xpath)
    el.getparent().remove(el)
    return root


def set_text(root: etree._Element, xpath: str, text: str) -> etree._Element:
    first(root, xpath).text = text
    return root


def rename_root(root: etree._Element, local: str, code: str) -> etree._Element:
    root.tag = f"{{{NAMESPACE}}}{local}"
    set_text(root, "//xga:nachrichtentyp/code", code)
    return root


def run(root: etree._Element, config: RuleConfig | None = None) -> list[Finding]:
    return check_rules(etree.ElementTree(etree.fromstring(etree.tostring(root))), config=config)


def rules(root: etree._Element, config: RuleConfig | None = None) -> list[str]:
    return [f.rule for f in run(root, config)]


def test_rule_table_lists_eleven_rules() -> None:
    assert list(RULES) == [f"XGWA-R{i:02d}" for i in range(1, 12)]
    assert V2_2.rules is check_rules


def test_kosit_message_and_our_valid_samples_pass_all_rules(kosit: etree._Element) -> None:
    assert run(kosit) == []
    for sample in samples():
        if sample.valid:
            assert check_rules(etree.parse(str(sample.path))) == [], sample.name


def test_foreign_documents_are_not_judged() -> None:
    assert check_rules(etree.ElementTree(etree.fromstring(b"<xy/>"))) == []


def test_r01_nachrichtentyp_must_match_root(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:nachrichtentyp/code", "0100")
    (finding,) = check_rules(kosit.getroottree())  # the file as read: lines as in the file
    assert finding.rule == "XGWA-R01" and finding.severity is Severity.ERROR
    assert "nachrichtentyp 0100 passt nicht zum Wurzelelement abh.gewerbemeldung.0500" in (
        finding.message
    )
    assert finding.xpath == (
        "/xga:abh.gewerbemeldung.0500/xga:nachrichtenkopf/"
        "xga:identifikation.nachricht/xga:nachrichtentyp"
    )
    assert finding.line == 10


def test_r01_unknown_root_in_namespace(kosit: etree._Element) -> None:
    kosit.tag = f"{{{NAMESPACE}}}xyz.gewerbemeldung.0999"
    assert "XGWA-R01" in rules(kosit)


def test_r02_handwerk_needs_handwerkskarte(kosit: etree._Element) -> None:
    remove(kosit, "//xga:handwerkskarte")
    (finding,) = run(kosit)
    assert finding.rule == "XGWA-R02"
    assert finding.xpath is not None and finding.xpath.endswith("/xga:betriebArt/xga:handwerk")
    set_text(kosit, "//xga:betriebArt/xga:handwerk/code", "0")
    set_text(kosit, "//xga:betriebArt/xga:sonstiges/code", "1")
    assert rules(kosit) == []


def test_r02_only_for_types_carrying_the_handwerkskarte(kosit: etree._Element) -> None:
    remove(kosit, "//xga:handwerkskarte")
    rename_root(kosit, "lue.gewerbemeldung.0290", "0290")  # lue carries no handwerkskarte
    assert "XGWA-R02" not in rules(kosit)


def test_r03_non_eu_nationality_needs_aufenthaltstitel(kosit: etree._Element) -> None:
    remove(kosit, "//xga:aufenthaltstitel")
    (finding,) = run(kosit)
    assert finding.rule == "XGWA-R03"
    assert finding.xpath is not None and finding.xpath.endswith("/xga:beteiligtePerson")
    assert "332" not in finding.message and "Pick" not in finding.message


@pytest.mark.parametrize("code", ["000", "129", "149", "158"])  # DE, France, Norway, Switzerland
def test_r03_free_movement_needs_no_title(kosit: etree._Element, code: str) -> None:
    remove(kosit, "//xga:aufenthaltstitel")
    set_text(kosit, "//xga:staatsangehoerigkeitSchluessel/code", code)
    assert rules(kosit) == []


def test_r03_one_eu_nationality_among_several_suffices(kosit: etree._Element) -> None:
    remove(kosit, "//xga:aufenthaltstitel")
    schluessel = first(kosit, "//xga:staatsangehoerigkeitSchluessel")
    second = etree.fromstring(etree.tostring(schluessel))
    second.find("code").text = "137"  # Italien
    schluessel.addnext(second)
    assert rules(kosit) == []
    second.find("code").text = "368"  # USA: still no free movement
    assert rules(kosit) == ["XGWA-R03"]


def test_r03_only_for_types_carrying_aufenthaltstitel(kosit: etree._Element) -> None:
    remove(kosit, "//xga:aufenthaltstitel")
    rename_root(kosit, "hwk.gewerbemeldung.0210", "0210")
    assert "XGWA-R03" not in rules(kosit)


def test_freizuegigkeit_table() -> None:
    codes = freizuegige_codes()
    assert len(codes) == 1 + 26 + 3 + 1  # DE, other EU states, EEA, CH
    assert {"000", "129", "136", "141", "149", "158"} <= codes
    assert not {"168", "163", "332", "368"} & codes  # UK, Türkei, Chile, USA


def test_r04_ummeldung_needs_gruende() -> None:
    root = etree.fromstring(sample_bytes("ummeldung"))
    assert rules(root) == []
    remove(root, "//xga:gruendeUmmeldung")
    (finding,) = run(root)
    assert finding.rule == "XGWA-R04"
    assert finding.xpath == "/xga:lue.gewerbemeldung.0290/xga:satz/xga:ummeldung"


def test_r05_abmeldung_needs_grund() -> None:
    root = etree.fromstring(sample_bytes("abmeldung"))
    assert rules(root) == []
    remove(root, "//xga:grundAbmeldungSchluessel")
    assert rules(root) == ["XGWA-R05"]


def test_r06_datum_meldung_not_after_satz_erstellung(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:datumMeldung", "2016-07-04")  # same day as satzErstellung: fine
    assert rules(kosit) == []
    set_text(kosit, "//xga:datumMeldung", "2016-07-05")
    (finding,) = run(kosit)
    assert finding.rule == "XGWA-R06" and finding.xpath is not None
    assert finding.xpath.endswith("/xga:datumMeldung")


def test_r07_gueltig_ab_at_most_a_year_ahead(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:gueltigAb", "2017-07-03")  # 366 days after datumMeldung 2016-07-02
    assert rules(kosit) == []
    set_text(kosit, "//xga:gueltigAb", "2017-07-04")
    (finding,) = run(kosit)
    assert finding.rule == "XGWA-R07" and "366 Tage nach datumMeldung" in finding.message
    assert rules(kosit, RuleConfig(gueltig_ab_max_vorlauf_tage=400)) == []


def test_r07_gueltig_ab_at_most_ten_years_back(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:gueltigAb", "2006-07-02")
    assert rules(kosit) == []
    set_text(kosit, "//xga:gueltigAb", "2006-07-01")
    assert rules(kosit) == ["XGWA-R07"]
    assert rules(kosit, RuleConfig(gueltig_ab_max_nachmeldung_jahre=20)) == []


def _two_saetze(kosit: etree._Element, abmeldung_ab: str) -> etree._Element:
    satz = first(kosit, "xga:satz")
    zweiter = etree.fromstring(etree.tostring(satz))
    meldung = zweiter[0]
    meldung.tag = f"{{{NAMESPACE}}}abmeldung"
    grund = meldung.find("xga:grundAnmeldungSchluessel", NS)
    grund.tag = f"{{{NAMESPACE}}}grundAbmeldungSchluessel"
    meldung.find("xga:gueltigAb", NS).text = abmeldung_ab
    satz.addnext(zweiter)
    return kosit


def test_r08_abmeldung_not_before_anmeldung_of_same_betrieb(kosit: etree._Element) -> None:
    assert rules(_two_saetze(kosit, "2016-08-01")) == []  # same day: fine


def test_r08_fires_for_abmeldung_before_anmeldung(kosit: etree._Element) -> None:
    root = _two_saetze(kosit, "2016-07-15")
    (finding,) = run(root)
    assert finding.rule == "XGWA-R08"
    assert finding.xpath == "/xga:abh.gewerbemeldung.0500/xga:satz[2]/xga:abmeldung/xga:gueltigAb"
    set_text(root, "xga:satz[2]/xga:abmeldung/xga:gewerbebetriebID", "anderer-betrieb")
    assert rules(root) == []


def test_r09_data_groups_the_type_does_not_carry_are_warnings(kosit: etree._Element) -> None:
    rename_root(kosit, "gaa.gewerbemeldung.0250", "0250")  # Arbeitsschutz: names and contact only
    findings = run(kosit)
    assert {f.rule for f in findings} == {"XGWA-R09"}
    assert all(f.severity is Severity.WARNING for f in findings)
    flagged = sorted(f.xpath.rsplit("/", 1)[1] for f in findings if f.xpath)
    assert flagged == sorted(
        [
            "xga:handwerkskarte",
            "xga:geschlecht",
            "xga:geburtsname",
            "xga:geburtsdatum",
            "xga:geburtsort",
            "xga:geburtsland",
            "xga:staatangehoerigkeiten",
            "xga:anschrift",
            "xga:aufenthaltstitel",
        ]
    )
    person_anschrift = next(f for f in findings if f.xpath and f.xpath.endswith("xga:anschrift"))
    assert "/xga:beteiligtePerson/" in (person_anschrift.xpath or "")
    assert "Datengruppe person_anschrift" in person_anschrift.message


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("00001965", True),
        ("00101965", True),
        ("29022000", True),
        ("31022000", False),
        ("29021999", False),
        ("15001965", False),
    ],
)
def test_r10_geburtsdatum_is_a_calendar_date(kosit: etree._Element, value: str, ok: bool) -> None:
    set_text(kosit, "//xga:geburtsdatum", value)
    findings = run(kosit)
    assert [f.rule for f in findings] == ([] if ok else ["XGWA-R10"])
    assert all(value not in f.message for f in findings)


def test_r10_geburtsdatum_not_after_datum_meldung(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:geburtsdatum", "03072016")  # one day after datumMeldung
    assert rules(kosit) == ["XGWA-R10"]
    set_text(kosit, "//xga:geburtsdatum", "00002016")  # unknown day/month in that year: plausible
    assert rules(kosit) == []


def test_r11_betrieb_art_needs_one_kind(kosit: etree._Element) -> None:
    set_text(kosit, "//xga:betriebArt/xga:handwerk/code", "0")
    (finding,) = run(kosit)
    assert finding.rule == "XGWA-R11" and finding.xpath is not None
    assert finding.xpath.endswith("/xga:betriebArt")


def test_rules_stay_silent_on_missing_elements(kosit: etree._Element) -> None:
    for xpath in (
        "//xga:betriebArt",
        "//xga:datumMeldung",
        "//xga:gueltigAb",
        "//xga:staatangehoerigkeiten",
        "//xga:satzErstellung",
    ):
        remove(kosit, xpath)
    set_text(kosit, "//xga:geburtsdatum", "kaputt")
    assert run(kosit) == []  # the schema check reports these


def test_invalid_sample_breaks_r04() -> None:
    root = etree.fromstring(sample_bytes("invalid"))
    assert rules(root) == ["XGWA-R04"]
