"""Schema registry: namespaces → versions, schema path, overrides, compiled once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from lxml import etree

import xoev
from xoev import validate
from xoev.exceptions import (
    SchemaCompileError,
    SchemaPathError,
    SchemaUnavailableError,
    UnknownDocumentError,
    UnusableInputError,
)
from xoev.namespaces import XDOMEA_3_0_0, XDOMEA_3_1_0
from xoev.registry import SCHEMA_PATH_ENV, SchemaRegistry, default_registry, reset_default_registry
from xoev.standards import MessageType, StandardVersion
from xoev.xdomea import SAMPLES

TEST_NS = "urn:amtsbote:test:registry:1.0"


def _xsd(required: str = "a") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{TEST_NS}"
           elementFormDefault="qualified">
  <xs:element name="probe.0001">
    <xs:complexType><xs:sequence>
      <xs:element name="{required}" type="xs:string"/>
    </xs:sequence></xs:complexType>
  </xs:element>
</xs:schema>
"""


def _probe_version(schema: Path | None, *, entry_name: str | None = None) -> StandardVersion:
    return StandardVersion(
        standard="Probe",
        version="1.0",
        namespace=TEST_NS,
        schema=schema,
        entry_name=entry_name,
        message_types=(MessageType("0001", "probe.0001", "Probe"),),
    )


@pytest.fixture(autouse=True)
def _no_env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEMA_PATH_ENV, raising=False)


def test_unknown_namespace_names_it_and_lists_supported() -> None:
    registry = SchemaRegistry(use_env=False)
    with pytest.raises(UnknownDocumentError) as info:
        registry.detect(etree.fromstring(b'<x:m xmlns:x="urn:nobody:knows"/>'), source="m.xml")
    message = str(info.value)
    assert "urn:nobody:knows" in message
    assert "m.xml" in message
    assert f"xdomea 3.0.0 ({XDOMEA_3_0_0})" in message
    assert info.value.namespace == "urn:nobody:knows"
    assert info.value.supported == tuple(registry.supported())
    assert isinstance(info.value, UnusableInputError)


def test_no_namespace_is_an_unknown_document(shared_dir: Path) -> None:
    unknown = shared_dir / "xoev" / "beispiele" / "xgewerbeanzeige-2.2" / "xy-unknown.xml"
    registry = SchemaRegistry(use_env=False)
    with pytest.raises(UnknownDocumentError) as info:
        validate(unknown.read_bytes(), source="xy-unknown.xml", registry=registry)
    assert "unknown document" in str(info.value)
    assert "root element xy has no namespace" in str(info.value)
    assert info.value.namespace is None


def test_version_is_detected_from_namespace(schemata_dir: Path) -> None:
    registry = SchemaRegistry([schemata_dir], use_env=False)
    tree = etree.parse(str(SAMPLES / "empfangbestaetigen-0102.xml"))
    sv = registry.detect(tree)
    assert (sv.standard, sv.version, sv.namespace) == ("xdomea", "3.0.0", XDOMEA_3_0_0)
    assert registry.get(XDOMEA_3_0_0) is sv
    assert registry.get("urn:other") is None


def test_known_namespace_without_bundle_says_where_it_looked(tmp_path: Path) -> None:
    unshipped = [_probe_version(None, entry_name="probe.xsd")]
    registry = SchemaRegistry(use_env=False, packages=(), versions=unshipped)
    sv = registry.get(TEST_NS)
    assert sv is not None and sv.schema is None
    with pytest.raises(SchemaUnavailableError, match=r"probe\.xsd not found") as info:
        registry.schema(sv)
    assert "schema path is empty" in str(info.value)

    elsewhere = SchemaRegistry([tmp_path], use_env=False, packages=(), versions=unshipped)
    with pytest.raises(SchemaUnavailableError) as info2:
        elsewhere.schema(elsewhere.get(TEST_NS))  # type: ignore[arg-type]
    assert str(tmp_path) in str(info2.value)
    assert info2.value.entry_name == "probe.xsd"


def test_xdomea_bundles_are_built_in() -> None:
    registry = SchemaRegistry(use_env=False)
    for namespace in (XDOMEA_3_0_0, XDOMEA_3_1_0):
        sv = registry.get(namespace)
        assert sv is not None and sv.origin == "built-in"
        assert sv.schema is not None
        assert sv.schema.is_relative_to(Path(xoev.__file__).resolve().parent / "xdomea" / "schema")
        assert registry.schema(sv).origin == "built-in"


def test_schema_path_finds_xdomea_recursively_and_compiles_once(schemata_dir: Path) -> None:
    registry = SchemaRegistry([schemata_dir], use_env=False)
    sv = registry.get(XDOMEA_3_0_0)
    assert sv is not None
    assert sv.schema == (schemata_dir / "xdomea-3.0.0" / "xdomea.xsd").resolve()
    assert sv.origin == str(schemata_dir.resolve())
    compiled = registry.schema(sv)
    assert registry.schema(sv) is compiled
    assert compiled.origin == str(schemata_dir.resolve())
    status = {s.version.namespace: s for s in registry.status()}[XDOMEA_3_0_0]
    assert status.available and status.to_dict()["origin"] == str(schemata_dir.resolve())


def test_env_schema_path(
    schemata_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SCHEMA_PATH_ENV, f"{tmp_path / 'gone'}:{schemata_dir}")
    registry = SchemaRegistry()
    assert registry.get(XDOMEA_3_0_0).schema is not None  # type: ignore[union-attr]
    assert any("gone" in p and "skipped" in p for p in registry.problems)
    assert registry.get(XDOMEA_3_0_0).origin == str(schemata_dir.resolve())  # type: ignore[union-attr]
    assert SchemaRegistry(use_env=False).get(XDOMEA_3_0_0).origin == "built-in"  # type: ignore[union-attr]

    reset_default_registry()
    try:
        report = validate((SAMPLES / "information-0101.xml").read_bytes())
        assert report.ok and report.standard == "xdomea"
        assert default_registry() is default_registry()
    finally:
        reset_default_registry()


def test_explicit_schema_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SchemaPathError, match="not a directory"):
        SchemaRegistry([tmp_path / "nope"], use_env=False)


def test_schema_path_bundle_overrides_builtin(tmp_path: Path) -> None:
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    (builtin / "probe.xsd").write_text(_xsd("a"))
    override = tmp_path / "path" / "probe-1.0"
    override.mkdir(parents=True)
    (override / "probe.xsd").write_text(_xsd("b"))
    # same file name, other namespace: must not be taken
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "probe.xsd").write_text(_xsd("c").replace(TEST_NS, "urn:other"))

    message_a = f'<p:probe.0001 xmlns:p="{TEST_NS}"><p:a>x</p:a></p:probe.0001>'.encode()
    message_b = f'<p:probe.0001 xmlns:p="{TEST_NS}"><p:b>x</p:b></p:probe.0001>'.encode()

    plain = SchemaRegistry(
        use_env=False, packages=(), versions=[_probe_version(builtin / "probe.xsd")]
    )
    assert plain.get(TEST_NS).origin == "built-in"  # type: ignore[union-attr]
    assert validate(message_a, registry=plain).ok
    assert not validate(message_b, registry=plain).ok

    overridden = SchemaRegistry(
        [decoy, tmp_path / "path"],
        use_env=False,
        packages=(),
        versions=[_probe_version(builtin / "probe.xsd")],
    )
    sv = overridden.get(TEST_NS)
    assert sv is not None
    assert sv.schema == (override / "probe.xsd").resolve()
    assert sv.origin == str((tmp_path / "path").resolve())
    assert validate(message_b, registry=overridden).ok
    report = validate(message_a, registry=overridden)
    assert [f.message for f in report.findings] == [
        "Pflichtelement b fehlt in probe.0001",
        "Element a ist in probe.0001 an dieser Stelle nicht erlaubt (erwartet: b)",
    ]


def test_entry_name_search_first_directory_wins(tmp_path: Path) -> None:
    for name, required in (("one", "a"), ("two", "b")):
        d = tmp_path / name / "deep" / "er"
        d.mkdir(parents=True)
        (d / "entry.xsd").write_text(_xsd(required))
    registry = SchemaRegistry(
        [tmp_path / "two", tmp_path / "one"],
        use_env=False,
        packages=(),
        versions=[_probe_version(None, entry_name="entry.xsd")],
    )
    assert registry.get(TEST_NS).origin == str((tmp_path / "two").resolve())  # type: ignore[union-attr]


def test_missing_or_broken_packages_do_not_break_the_registry() -> None:
    registry = SchemaRegistry(
        use_env=False, packages=("xoev.no_such_standard", "xoev.exceptions", "xoev.xdomea")
    )
    assert registry.get(XDOMEA_3_0_0) is not None
    assert any("xoev.no_such_standard" in p and "not installed" in p for p in registry.problems)
    assert any("xoev.exceptions" in p and "VERSIONS" in p for p in registry.problems)


def test_duplicate_namespace_is_reported() -> None:
    registry = SchemaRegistry(
        use_env=False, packages=(), versions=[_probe_version(None), _probe_version(None)]
    )
    assert len(registry.versions()) == 1
    assert any("already taken" in p for p in registry.problems)


def test_remote_imports_are_refused(tmp_path: Path) -> None:
    xsd = tmp_path / "remote.xsd"
    xsd.write_text(f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
        targetNamespace="{TEST_NS}">
      <xs:import namespace="urn:x" schemaLocation="http://example.invalid/x.xsd"/>
      <xs:element name="probe.0001" type="xs:string"/>
    </xs:schema>""")
    registry = SchemaRegistry(use_env=False, packages=(), versions=[_probe_version(xsd)])
    with pytest.raises(SchemaCompileError) as info:
        registry.schema(registry.get(TEST_NS))  # type: ignore[arg-type]
    assert "http://example.invalid/x.xsd" in str(info.value)
    assert "network access is off" in str(info.value)


def test_concurrent_validation_with_one_registry(schemata_dir: Path) -> None:
    registry = SchemaRegistry([schemata_dir], use_env=False)
    good = (SAMPLES / "information-0101.xml").read_bytes()
    bad = good.replace(b"<xdomea:Nummer>1</xdomea:Nummer>", b"")
    results: list[tuple[bool, bool]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                results.append(
                    (validate(good, registry=registry).ok, validate(bad, registry=registry).ok)
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [(True, False)] * 100
