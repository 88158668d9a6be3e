"""xdomea 3.0.0 and 3.1.0: the vendored official bundles, and the shared copy on the schema path."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from xoev import SchemaRegistry, inspect_message, parse_xml, validate
from xoev.message import XDOMEA_KEY_NAMESPACE, XDOMEA_REPLY_TO, xdomea_message_key
from xoev.namespaces import XDOMEA_3_0_0, XDOMEA_3_1_0
from xoev.registry import SCHEMA_PATH_ENV
from xoev.standards import StandardVersion
from xoev.xdomea import SAMPLES, V3_0_0, V3_1_0, VERSIONS, version_for_namespace

MINIMAL = SAMPLES / "empfangbestaetigen-0102.xml"
INFORMATION = SAMPLES / "information-0101.xml"


@pytest.fixture(scope="module")
def registry(schemata_dir: Path) -> SchemaRegistry:
    return SchemaRegistry([schemata_dir], use_env=False)


XS = "{http://www.w3.org/2001/XMLSchema}"
VENDORED = Path(V3_0_0.schema).parent.parent  # type: ignore[arg-type]


@pytest.mark.parametrize(("sv", "namespace"), [(V3_0_0, XDOMEA_3_0_0), (V3_1_0, XDOMEA_3_1_0)])
def test_namespace_is_the_target_namespace_of_the_vendored_bundle(
    sv: StandardVersion, namespace: str
) -> None:
    assert sv.schema is not None and sv.schema.is_file() and sv.origin == "built-in"
    tree = parse_xml(sv.schema.read_bytes())
    assert tree.getroot().get("targetNamespace") == namespace == sv.namespace
    assert tree.getroot().get("version") == sv.version
    assert version_for_namespace(namespace) is sv
    assert VERSIONS == (V3_0_0, V3_1_0)
    assert version_for_namespace("urn:xoev-de:xdomea:schema:2.4.0") is None


@pytest.mark.parametrize(
    ("folder", "shared"),
    [
        ("3.0.0", "xdomea-3.0.0"),
        ("3.1.0", "xdomea-3.1.0"),
        ("xoev", "xoev"),
    ],
)
def test_vendored_files_are_the_official_ones_unchanged(
    schemata_dir: Path, folder: str, shared: str
) -> None:
    ours = {p.relative_to(VENDORED / folder): p for p in (VENDORED / folder).rglob("*.*")}
    theirs = {p.relative_to(schemata_dir / shared): p for p in (schemata_dir / shared).rglob("*.*")}
    assert set(ours) == set(theirs)
    assert all(ours[k].read_bytes() == theirs[k].read_bytes() for k in ours)


def _roots(bundle: Path) -> set[str]:
    roots: set[str] = set()
    for xsd in bundle.glob("xdomea-Nachrichten-*.xsd"):
        roots |= {
            el.get("name")
            for el in parse_xml(xsd.read_bytes()).getroot().iterchildren(f"{XS}element")
        }
    return roots


def _code_types(bundle: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for xsd in bundle.glob("*.xsd"):
        for ct in parse_xml(xsd.read_bytes()).getroot().iterchildren(f"{XS}complexType"):
            if (ct.get("name") or "").endswith("CodeType"):
                found[ct.get("name")] = (
                    sorted(
                        (a.get("name"), a.get("fixed"), a.get("use"))
                        for a in ct.iter(f"{XS}attribute")
                    ),
                    [e.get("value") for e in ct.iter(f"{XS}enumeration")],
                )
    return found


@pytest.mark.parametrize("sv", [V3_0_0, V3_1_0])
def test_message_types_match_the_bundle(sv: StandardVersion) -> None:
    assert sv.schema is not None
    assert {mt.root for mt in sv.message_types} == _roots(sv.schema.parent)
    mt = sv.message_type_for_root("Aussonderung.Anbieteverzeichnis.0501")
    assert mt is not None and mt.code == "0501"


def test_3_1_0_shares_the_code_types_and_codelists_of_3_0_0() -> None:
    """Why 3.1.0 registers no codelists of its own: every CodeType is the same as in 3.0.0."""
    assert V3_0_0.schema is not None and V3_1_0.schema is not None
    old, new = _code_types(V3_0_0.schema.parent), _code_types(V3_1_0.schema.parent)
    assert len(old) == 49 and old == new
    assert len(V3_0_0.codelists) == 48 and V3_1_0.codelists == ()


@pytest.mark.parametrize("sv", [V3_0_0, V3_1_0])
def test_vendored_bundle_validates_without_schema_path(sv: StandardVersion) -> None:
    registry = SchemaRegistry(use_env=False)
    data = MINIMAL.read_bytes().replace(XDOMEA_3_0_0.encode(), sv.namespace.encode())
    report = validate(data, registry=registry)
    assert report.ok, report.findings
    assert (report.standard, report.version) == ("xdomea", sv.version)
    assert registry.schema(registry.get(sv.namespace)).origin == "built-in"  # type: ignore[arg-type]
    broken = data.replace(b"<code>0102</code>", b"<code>9999</code>")
    # outside the enumeration that is also the code list: one defect, one finding (the schema's)
    rules = [f.rule for f in validate(broken, registry=registry).findings]
    assert rules == ["xsd:SCHEMAV_CVC_ENUMERATION_VALID"]


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
    # the code list would say the same about 9999: reported once, by the schema
    assert not any(r == "codelist" for r, m in by_rule)
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


# -- message keys: xdomea has no nachrichtenUUID -------------------------------------------------

PROZESS = "6f2d9f0e-3c41-4a8e-9b1a-0d5c7e2f4a11"
ROOTS = {
    "0504": "Aussonderung.AnbietungEmpfangBestaetigen.0504",
    "0505": "Aussonderung.BewertungEmpfangBestaetigen.0505",
    "0507": "Aussonderung.AussonderungEmpfangBestaetigen.0507",
}


def _header_only(type_code: str, *, prozess: str = PROZESS, namespace: str = XDOMEA_3_0_0) -> bytes:
    """A valid header-only Aussonderung message (0504/0505/0507 are just a Kopf)."""
    root = ROOTS[type_code]
    return (
        MINIMAL.read_bytes()
        .replace(b"Information.EmpfangBestaetigen.0102", root.encode())
        .replace(b"<code>0102</code>", f"<code>{type_code}</code>".encode())
        .replace(PROZESS.encode(), prozess.encode())
        .replace(XDOMEA_3_0_0.encode(), namespace.encode())
    )


def test_key_namespace_is_pinned() -> None:
    assert str(XDOMEA_KEY_NAMESPACE) == "15dc65e3-c2e7-57a3-8d4a-97e660317df7"
    assert xdomea_message_key(PROZESS, "0501") == str(
        uuid.uuid5(XDOMEA_KEY_NAMESPACE, f"{PROZESS}/0501")
    )
    # the ProzessID's spelling does not change the key
    assert xdomea_message_key(f" {PROZESS.upper()} ", "0501") == xdomea_message_key(PROZESS, "0501")
    keys = {xdomea_message_key(PROZESS, t) for t in ("0501", "0502", "0503", "0504", "0505")}
    assert len(keys) == 5
    assert xdomea_message_key(str(uuid.uuid4()), "0501") != xdomea_message_key(PROZESS, "0501")


@pytest.mark.parametrize(
    ("type_code", "answers"), [("0504", "0501"), ("0505", "0502"), ("0507", "0503")]
)
@pytest.mark.parametrize("namespace", [XDOMEA_3_0_0, XDOMEA_3_1_0])
def test_replies_name_the_key_of_what_they_answer(
    type_code: str, answers: str, namespace: str
) -> None:
    registry = SchemaRegistry(use_env=False)
    data = _header_only(type_code, namespace=namespace)
    assert validate(data, registry=registry).ok
    info = inspect_message(data, registry=registry)
    assert info.version == namespace.rpartition(":")[2]
    assert info.message_type == type_code and info.process_id == PROZESS
    assert info.nachrichten_uuid == xdomea_message_key(PROZESS, type_code)
    assert info.in_reply_to == xdomea_message_key(PROZESS, answers)
    assert XDOMEA_REPLY_TO[type_code] == answers


def test_reply_table_is_the_aussonderung_process() -> None:
    assert dict(XDOMEA_REPLY_TO) == {
        "0502": "0501",
        "0504": "0501",
        "0505": "0502",
        "0506": "0503",
        "0507": "0503",
    }


def test_first_messages_and_other_types_answer_nothing(registry: SchemaRegistry) -> None:
    info = inspect_message(INFORMATION.read_bytes(), registry=registry)
    assert info.process_id == PROZESS and info.in_reply_to is None
    assert info.nachrichten_uuid == xdomea_message_key(PROZESS, "0101")
    # a Kopf without ProzessID gives no key (nothing here validates)
    data = MINIMAL.read_bytes().replace(
        f"<xdomea:ProzessID>{PROZESS}</xdomea:ProzessID>".encode(), b""
    )
    bare = inspect_message(data, registry=registry)
    assert bare.process_id is None and bare.nachrichten_uuid is None and bare.in_reply_to is None


def test_journal_keeps_the_xoev_keys() -> None:
    """The journal takes ``prozess_id`` from MessageInfo and then keeps its key and in_reply_to."""
    from connectors.journal.records import MessageMeta

    info = inspect_message(_header_only("0505"), registry=SchemaRegistry(use_env=False))
    assert info.prozess_id == PROZESS
    meta = MessageMeta.from_info(info)
    assert meta.nachrichten_uuid == xdomea_message_key(PROZESS, "0505")
    assert meta.in_reply_to == xdomea_message_key(PROZESS, "0502")
    assert meta.standard == "xdomea" and meta.version == "3.0.0"
