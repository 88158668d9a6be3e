"""XGewerbeanzeige 2.2: the message-type table agrees with the XSD, the codelists and the
StandardVersion; the generated files are up to date; the codelists check the KoSIT message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lxml import etree

from xoev.codelists import CodelistRegistry, load_genericode
from xoev.findings import Finding
from xoev.validation import validate
from xoev.xgewerbeanzeige import V2_2, VERSIONS, generate, samples
from xoev.xgewerbeanzeige._binding import specs
from xoev.xgewerbeanzeige.codelisten import (
    code_bindings,
    codelist_paths,
    codelisten,
    externe_elemente,
)
from xoev.xgewerbeanzeige.exceptions import UnknownTableEntryError
from xoev.xgewerbeanzeige.message_types import (
    BELEGE,
    NAMESPACE,
    datengruppen,
    for_role,
    nachrichtentyp,
    nachrichtentypen,
)
from xoev.xgewerbeanzeige.rules_v2_2 import check_rules
from xoev.xgewerbeanzeige.v2_2 import SCHEMA_PATH, Abmeldung, Anmeldung, Ummeldung

XS = "http://www.w3.org/2001/XMLSchema"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def xsd() -> etree._Element:
    return etree.parse(str(SCHEMA_PATH)).getroot()


def test_generated_files_are_up_to_date() -> None:
    assert generate.stale_files() == []  # else: .venv/bin/python -m xoev.xgewerbeanzeige.generate
    assert generate.main(["--check"]) == 0


def test_xsd_root_elements_are_the_table(xsd: etree._Element) -> None:
    declared = {(e.get("name"), e.get("type")) for e in xsd.findall(f"{{{XS}}}element")}
    assert declared == {(t.root, f"xga:{t.xsd_type}") for t in nachrichtentypen()}


def test_required_types_and_prefixes_are_in_the_table() -> None:
    by_root = {t.root: t for t in nachrichtentypen()}
    for root in (
        "sta.gewerbemeldung.0100",
        "dgu.gewerbemeldung.0230",
        "lue.gewerbemeldung.0290",
        "alg.gewerbemeldung.0300",
        "abh.gewerbemeldung.0500",
    ):
        assert root in by_root
    assert by_root["sta.gewerbemeldung.0100"].profil == "statistik"
    assert {t.beleg for t in nachrichtentypen()} <= set(BELEGE)
    eigene = {t.root for t in nachrichtentypen() if t.beleg == "amtsbote"}
    assert eigene == {"gwa.gewerbemeldung.0010"}
    assert {t.praefix for t in nachrichtentypen() if t.beleg == "angenommen"} == {
        "ihk",
        "hwk",
        "fa",
        "gaa",
    }


def test_table_roles_exist_in_the_agency_directory() -> None:
    directory = yaml.safe_load((ROOT / "deployments" / "owl" / "agencies.yaml").read_text())
    roles = set(directory["roles"])
    for t in nachrichtentypen():
        assert set(t.rollen) <= roles, t.root
    for role in (
        "IHK",
        "HWK",
        "Finanzamt",
        "Arbeitsschutz",
        "Statistik",
        "Lebensmittelüberwachung",
        "Ausländerbehörde",
        "Unfallversicherung",
    ):
        assert for_role(role), role


def test_lookup_by_code_root_and_prefix() -> None:
    lue = nachrichtentyp("0290")
    assert nachrichtentyp("lue") is lue and nachrichtentyp("lue.gewerbemeldung.0290") is lue
    assert for_role("Lebensmittelüberwachung") == (lue,)
    assert lue.carries("person_name") and not lue.carries("person_geburt")
    with pytest.raises(UnknownTableEntryError, match="unknown message type 'xyz'"):
        nachrichtentyp("xyz")
    with pytest.raises(UnknownTableEntryError, match="unknown data group 'farbe'"):
        lue.carries("farbe")


def test_data_group_paths_lead_to_optional_model_fields() -> None:
    kinds = (Anmeldung, Ummeldung, Abmeldung)
    for name, gruppe in datengruppen().items():
        for pfad in gruppe.pfade:
            hits = 0
            for kind in kinds:
                cls: object = kind
                spec = None
                for step in pfad:
                    spec = next((s for s in specs(cls) if s.xml == step), None)
                    if spec is None:
                        break
                    cls = spec.typ
                if spec is not None:
                    hits += 1
                    assert not spec.required, f"{name}: {'/'.join(pfad)} is required"
            assert hits, f"{name}: {'/'.join(pfad)} exists in no Meldung"


def test_every_code_element_of_the_xsd_is_bound_or_declared_external(
    xsd: etree._Element,
) -> None:
    code_elements = {
        e.get("name") for e in xsd.iter(f"{{{XS}}}element") if e.get("type") == "xga:Code"
    }
    bound, extern = set(code_bindings()), set(externe_elemente())
    assert not bound & extern
    assert code_elements == bound | extern


def test_codelist_files_load_with_the_core_and_match_the_source() -> None:
    assert tuple(V2_2.codelists) == codelist_paths()
    for liste in codelisten():
        loaded = load_genericode(liste.path)
        assert (loaded.canonical_uri, loaded.version) == (liste.uri, liste.version)
        assert loaded.canonical_version_uri == liste.canonical_version_uri
        assert loaded.short_name == liste.kurzname
        assert loaded.codes == frozenset(c for c, _ in liste.codes)
        for code, beschreibung in liste.codes:
            assert loaded.description(code) == beschreibung


def test_nachrichtentyp_codelist_is_the_table() -> None:
    liste = next(cl for cl in codelisten() if cl.kurzname == "nachrichtentyp")
    assert [c for c, _ in liste.codes] == [t.code for t in nachrichtentypen()]
    assert code_bindings()["nachrichtentyp"] == liste.uri


def test_standard_version() -> None:
    assert VERSIONS == (V2_2,)
    assert (V2_2.standard, V2_2.version, V2_2.namespace) == ("XGewerbeanzeige", "2.2", NAMESPACE)
    assert V2_2.schema == SCHEMA_PATH and SCHEMA_PATH.is_file()
    assert [m.root for m in V2_2.message_types] == [t.root for t in nachrichtentypen()]
    mt = V2_2.message_type_for_root("abh.gewerbemeldung.0500")
    assert mt is not None and mt.code == "0500"
    assert V2_2.rules is check_rules
    assert dict(V2_2.code_bindings) == dict(code_bindings())
    assert all(p.is_file() for p in V2_2.codelists)


def _codelist_findings(data: bytes) -> list[Finding]:
    registry = CodelistRegistry()
    for path in V2_2.codelists:
        registry.load_file(path)
    return registry.check(
        etree.ElementTree(etree.fromstring(data)), code_bindings=V2_2.code_bindings
    )


def test_kosit_valid_message_has_no_codelist_findings(xgwa_samples: Path) -> None:
    data = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    assert _codelist_findings(data) == []


def test_codelist_check_of_the_kosit_message_is_not_vacuous(xgwa_samples: Path) -> None:
    data = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    # geschlecht carries listVersionID 3 = our version: checked through the binding
    bad = data.replace(
        b'<xga:geschlecht listVersionID="3">\n                  <code>1</code>',
        b'<xga:geschlecht listVersionID="3">\n                  <code>7</code>',
    )
    assert bad != data
    (finding,) = _codelist_findings(bad)
    assert "geschlecht" in finding.message
    # nachrichtentyp has no list attributes: the binding finds our list
    bad = data.replace(b"<code>0500</code>", b"<code>0999</code>")
    assert [f.rule for f in _codelist_findings(bad)] == ["codelist"]


def test_core_validation_accepts_kosit_message_and_our_samples(xgwa_samples: Path) -> None:
    report = validate((xgwa_samples / "xgwa2.2-valid.xml").read_bytes(), source="kosit")
    assert report.ok and report.findings == [], report.to_text()
    assert (report.standard, report.version, report.message_type) == (
        "XGewerbeanzeige",
        "2.2",
        "0500",
    )
    for sample in samples():
        report = validate(sample.read_bytes(), source=sample.name)
        assert report.ok is sample.valid, report.to_text()
        if sample.valid:
            assert report.findings == [], report.to_text()
