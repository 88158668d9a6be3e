"""xdomea 3.0.0 via the schema path: the official bundle read in place from ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from xoev import SchemaRegistry, inspect_message, parse_xml, validate
from xoev.namespaces import XDOMEA_3_0_0
from xoev.registry import SCHEMA_PATH_ENV
from xoev.xdomea import SAMPLES, V3_0_0, VERSIONS

MINIMAL = SAMPLES / "empfangbestaetigen-0102.xml"
INFORMATION = SAMPLES / "information-0101.xml"


@pytest.fixture(scope="module")
def registry(schemata_dir: Path) -> SchemaRegistry:
    return SchemaRegistry([schemata_dir], use_env=False)


def test_namespace_is_the_target_namespace_of_the_official_bundle(schemata_dir: Path) -> None:
    tree = parse_xml((schemata_dir / "xdomea-3.0.0" / "xdomea.xsd").read_bytes())
    assert tree.getroot().get("targetNamespace") == XDOMEA_3_0_0 == V3_0_0.namespace
    assert tree.getroot().get("version") == V3_0_0.version
    assert VERSIONS == (V3_0_0,)


def test_message_types_match_the_bundle(schemata_dir: Path) -> None:
    xs = "{http://www.w3.org/2001/XMLSchema}element"
    roots = set()
    for xsd in (schemata_dir / "xdomea-3.0.0").glob("xdomea-Nachrichten-*.xsd"):
        roots |= {el.get("name") for el in parse_xml(xsd.read_bytes()).getroot().iterchildren(xs)}
    assert {mt.root for mt in V3_0_0.message_types} == roots
    mt = V3_0_0.message_type_for_root("Aussonderung.Anbieteverzeichnis.0501")
    assert mt is not None and mt.code == "0501"


@pytest.mark.parametrize(("sample", "type_code"), [(MINIMAL, "0102"), (INFORMATION, "0101")])
def test_valid_samples(registry: SchemaRegistry, sample: Path, type_code: str) -> None:
    report = validate(sample.read_bytes(), source=sample.name, registry=registry)
    assert report.findings == []
    assert report.ok
    assert (report.standard, report.version, report.message_type) == ("xdomea", "3.0.0", type_code)
    assert report.nachrichten_uuid == "6f2d9f0e-3c41-4a8e-9b1a-0d5c7e2f4a11"


def test_missing_mandatory_element(registry: SchemaRegistry) -> None:
    data = MINIMAL.read_bytes()
    broken = data.replace(
        b"<xdomea:Erstellungszeitpunkt>2024-05-02T11:00:00+02:00</xdomea:Erstellungszeitpunkt>", b""
    )
    assert broken != data
    report = validate(broken, source="broken.xml", registry=registry)
    assert not report.ok
    assert [(f.message, f.xpath, f.rule) for f in report.findings] == [
        (
            "Pflichtelement Erstellungszeitpunkt fehlt in Kopf",
            "/xdomea:Information.EmpfangBestaetigen.0102/xdomea:Kopf",
            "xsd:SCHEMAV_ELEMENT_CONTENT",
        )
    ]
    assert report.findings[0].line == 11  # the Absender that came instead
    assert "Pflichtelement Erstellungszeitpunkt fehlt in Kopf" in report.to_text()


def test_defect_behind_a_content_model_error_is_still_found(registry: SchemaRegistry) -> None:
    """libxml2 stops checking Kopf after the first content-model error; the Praefix without
    code further down in Absender must be reported all the same."""
    data = MINIMAL.read_bytes()
    broken = data.replace(
        b"<xdomea:Erstellungszeitpunkt>2024-05-02T11:00:00+02:00</xdomea:Erstellungszeitpunkt>", b""
    ).replace(
        b"<xdomea:Praefix>\n               <code>MELDID</code>\n            </xdomea:Praefix>",
        b"<xdomea:Praefix/>",
        1,
    )
    report = validate(broken, registry=registry)
    messages = [f.message for f in report.findings]
    assert messages == [
        "Pflichtelement Erstellungszeitpunkt fehlt in Kopf",
        "Pflichtelement code fehlt in Praefix",
    ]
    praefix = report.findings[1]
    assert praefix.xpath == (
        "/xdomea:Information.EmpfangBestaetigen.0102/xdomea:Kopf/xdomea:Absender"
        "/xdomea:Behoerdenkennung/xdomea:Praefix"
    )


def test_wrong_values(registry: SchemaRegistry) -> None:
    data = INFORMATION.read_bytes()
    broken = (
        data.replace(b"<xdomea:ProzessID>6f2d9f0e", b"<xdomea:ProzessID>nope-6f2d9f0e")
        .replace(b"<code>0101</code>", b"<code>9999</code>")
        .replace(b"<xdomea:Empfangsbestaetigung>true", b"<xdomea:Empfangsbestaetigung>vielleicht")
    )
    report = validate(broken, registry=registry)
    by_rule = {(f.rule, f.message) for f in report.findings}
    assert (
        "xsd:SCHEMAV_CVC_PATTERN_VALID",
        "Wert in ProzessID entspricht nicht dem Muster '[0-9|A-F|a-f]{8}-[0-9|A-F|a-f]{4}-"
        "[0-9|A-F|a-f]{4}-[0-9|A-F|a-f]{4}-[0-9|A-F|a-f]{12}'",
    ) in by_rule
    assert (
        "xsd:SCHEMAV_CVC_DATATYPE_VALID_1_2_1",
        "Wert in Empfangsbestaetigung ist kein gültiger Wert des Typs xs:boolean",
    ) in by_rule
    assert any(
        r == "xsd:SCHEMAV_CVC_ENUMERATION_VALID"
        and m.startswith("Wert in code ist nicht zulässig (erlaubt: 0101, 0102")
        for r, m in by_rule
    )
    assert any(r == "codelist" and "'9999'" in m and "nachrichtentyp" in m for r, m in by_rule)
    # instance values are not quoted in XSD messages (they may be personal data)
    assert not any("vielleicht" in f.message or "nope" in f.message for f in report.findings)


def test_inspect_xdomea_header(registry: SchemaRegistry) -> None:
    info = inspect_message(INFORMATION.read_bytes(), registry=registry)
    assert info.standard == "xdomea" and info.version == "3.0.0"
    assert info.root == "Information.Information.0101" and info.message_type == "0101"
    assert info.erstellungszeitpunkt == "2024-05-02T10:15:00+02:00"
    assert info.author == "MELDID:12052000" and info.reader == "MELDID:12071000"


def test_env_schema_path(schemata_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(schemata_dir))
    report = validate(MINIMAL.read_bytes(), registry=SchemaRegistry())
    assert report.ok and report.standard == "xdomea"
