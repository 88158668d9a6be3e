"""Versions by configuration (xoev.bundles): a bundle on the schema path for a namespace amtsbote
does not know is a version of its own, with bundle.yaml or from its targetNamespace; versions we
know of but do not ship are named as such."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.cli import main
from xoev import validate
from xoev.bundles import derive_version, load_bundle, not_built_in, root_schemas
from xoev.exceptions import (
    BundleError,
    SchemaError,
    UnknownDocumentError,
    VersionNotBuiltInError,
)
from xoev.namespaces import XDOMEA_3_0_0, XDOMEA_3_1_0, XGEWERBEANZEIGE_2_2
from xoev.registry import SCHEMA_PATH_ENV, SchemaRegistry
from xoev.xdomea import SAMPLES

COPY_NS = "urn:test:amtsbote:xdomea-copy:9.9"
"""A namespace of our own that follows no XÖV pattern: needs a bundle.yaml."""
DERIVED_NS = "urn:xoev-de:xdomea:schema:9.9.9"
"""A namespace of our own in the xdomea pattern: standard and version come from it."""
SAMPLE_0503 = SAMPLES / "aussonderung" / "3.1.0" / "Aussonderung.Aussonderung.0503.xml"
XGWA_2_1 = "http://www.xgewerbeanzeige.de/spezifikation/2.1"
XGEWO_XGA_1_6 = "http://www.xgewerbeordnung.de/spezifikation/xga/1.6"
XGWA_XSD = (
    Path(__file__).resolve().parents[1] / "xoev/xgewerbeanzeige/schema/2.2/xgewerbeanzeige.xsd"
)


@pytest.fixture(autouse=True)
def _no_env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEMA_PATH_ENV, raising=False)


def _xdomea_copy(shared_dir: Path, target: Path, namespace: str) -> Path:
    """The official xdomea 3.1.0 bundle (and the xoev-code XSD it imports as ../xoev/) under
    ``target``, with its targetNamespace rewritten to ``namespace``; returns the bundle folder."""
    schemata = shared_dir / "xoev" / "schemata"
    bundle = target / "xdomea-copy"
    shutil.copytree(schemata / "xdomea-3.1.0", bundle)
    shutil.copytree(schemata / "xoev", target / "xoev")
    for xsd in bundle.glob("*.xsd"):
        text = xsd.read_text(encoding="utf-8")
        xsd.write_text(text.replace(XDOMEA_3_1_0, namespace), encoding="utf-8")
    return bundle


def _message(namespace: str) -> bytes:
    return SAMPLE_0503.read_bytes().replace(XDOMEA_3_1_0.encode(), namespace.encode())


def _invalid(namespace: str) -> bytes:
    data = _message(namespace)
    start = data.index(b"<xdomea:Erstellungszeitpunkt>")
    end = data.index(b"</xdomea:Erstellungszeitpunkt>") + len(b"</xdomea:Erstellungszeitpunkt>")
    return data[:start] + data[end:]


BUNDLE_YAML = """\
# a version amtsbote does not ship, added only through the schema path
standard: xdomea-Kopie
version: 9.90
schema: xdomea.xsd
"""


# -- a version by bundle.yaml -----------------------------------------------------------------


def test_bundle_yaml_adds_a_version_the_package_does_not_ship(
    shared_dir: Path, tmp_path: Path
) -> None:
    bundle = _xdomea_copy(shared_dir, tmp_path / "path", COPY_NS)
    (bundle / "bundle.yaml").write_text(BUNDLE_YAML)

    with pytest.raises(UnknownDocumentError):  # without the schema path: unknown
        validate(_message(COPY_NS), registry=SchemaRegistry(use_env=False))

    registry = SchemaRegistry([tmp_path / "path"], use_env=False)
    sv = registry.get(COPY_NS)
    assert sv is not None
    assert (sv.standard, sv.version) == ("xdomea-Kopie", "9.90")  # the text, not the float 9.9
    assert sv.schema == (bundle / "xdomea.xsd").resolve()
    assert sv.origin == str(bundle.resolve())
    assert sv.configured_by == str((bundle / "bundle.yaml").resolve())
    assert registry.problems == []

    report = validate(_message(COPY_NS), source="copy.xml", registry=registry)
    assert report.ok, report.to_text()
    assert (report.standard, report.version, report.message_type) == (
        "xdomea-Kopie",
        "9.90",
        "0503",
    )
    bad = validate(_invalid(COPY_NS), registry=registry)
    assert [f.message for f in bad.findings] == [
        "Pflichtelement Erstellungszeitpunkt fehlt in Kopf"
    ]
    # the built-in versions are still there, untouched
    assert registry.get(XDOMEA_3_1_0).origin == "built-in"  # type: ignore[union-attr]


def test_without_bundle_yaml_standard_and_version_come_from_the_namespace(
    shared_dir: Path, tmp_path: Path
) -> None:
    bundle = _xdomea_copy(shared_dir, tmp_path, DERIVED_NS)
    registry = SchemaRegistry([tmp_path], use_env=False)
    sv = registry.get(DERIVED_NS)
    assert sv is not None
    assert (sv.standard, sv.version) == ("xdomea", "9.9.9")
    # the entry is the root of the include graph, not one of the 19 files it includes
    assert sv.schema == (bundle / "xdomea.xsd").resolve()
    assert sv.configured_by == "targetNamespace"
    assert sv.origin == str(bundle.resolve())
    # the imported xoev-code XSD follows no pattern and is no version of its own
    assert registry.get("http://xoev.de/schemata/code/1_0") is None
    assert validate(_message(DERIVED_NS), registry=registry).ok
    assert not validate(_invalid(DERIVED_NS), registry=registry).ok


def test_an_unknown_namespace_without_pattern_asks_for_a_bundle_yaml(
    shared_dir: Path, tmp_path: Path
) -> None:
    _xdomea_copy(shared_dir, tmp_path, COPY_NS)
    registry = SchemaRegistry([tmp_path], use_env=False)
    assert registry.get(COPY_NS) is None
    with pytest.raises(UnknownDocumentError) as info:
        validate(_message(COPY_NS), source="copy.xml", registry=registry)
    message = str(info.value)
    assert COPY_NS in message
    assert "put a bundle.yaml with standard and version beside them" in message
    assert f"(in {tmp_path / 'xdomea-copy'})" in message


def test_bundle_yaml_without_schema_takes_the_root_xsd(shared_dir: Path, tmp_path: Path) -> None:
    bundle = _xdomea_copy(shared_dir, tmp_path, COPY_NS)
    (bundle / "bundle.yaml").write_text("standard: Kopie\nversion: '1'\n")
    registry = SchemaRegistry([tmp_path], use_env=False)
    assert registry.get(COPY_NS).schema == (bundle / "xdomea.xsd").resolve()  # type: ignore[union-attr]


def test_root_schemas_leave_out_what_is_included() -> None:
    folder = SAMPLES.parent / "schema" / "3.1.0"
    roots = root_schemas(sorted(folder.glob("*.xsd")))
    assert [p.name for p in roots] == ["xdomea.xsd"]


def test_bundle_codelists_are_loaded(shared_dir: Path, tmp_path: Path) -> None:
    bundle = _xdomea_copy(shared_dir, tmp_path / "path", COPY_NS)
    lists = shared_dir / "xoev" / "schemata" / "xdomea-3.0.0" / "code_lists"
    shutil.copytree(lists, bundle / "codelisten")
    (bundle / "codelisten" / "notes.xml").write_text("<notes/>")  # not genericode: not taken
    (bundle / "bundle.yaml").write_text(BUNDLE_YAML + "codelists: codelisten\n")
    registry = SchemaRegistry([tmp_path / "path"], use_env=False)
    sv = registry.get(COPY_NS)
    assert sv is not None
    assert len(sv.codelists) == len(list(lists.glob("*.xml"))) == 48
    assert all(p.is_relative_to(bundle.resolve() / "codelisten") for p in sv.codelists)
    assert registry.codelists.get("urn:xoev-de:xdomea:codeliste:nachrichtentyp") is not None
    assert registry.problems == []


def test_bundle_yaml_for_a_known_namespace_overrides_and_keeps_the_types(
    shared_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "xgwa"
    folder.mkdir()
    shutil.copy(XGWA_XSD, folder / "offiziell.xsd")  # another file name than the built-in one
    (folder / "bundle.yaml").write_text("schema: offiziell.xsd\n")
    registry = SchemaRegistry([tmp_path], use_env=False)
    sv = registry.get(XGEWERBEANZEIGE_2_2)
    assert sv is not None
    assert sv.schema == (folder / "offiziell.xsd").resolve()
    assert sv.origin == str(folder.resolve())
    assert (sv.standard, sv.version) == ("XGewerbeanzeige", "2.2")
    assert sv.rules is not None and sv.message_types  # the package's rules and types stay

    (folder / "bundle.yaml").write_text("standard: XGewerbeanzeige\nversion: '2.3'\n")
    with pytest.raises(BundleError, match=r"bundle\.yaml:2: version: .* is XGewerbeanzeige 2\.2"):
        load_bundle(folder / "bundle.yaml", known={XGEWERBEANZEIGE_2_2: ("XGewerbeanzeige", "2.2")})


# -- bundle.yaml errors name file and line --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("standard: X\nversion: '1'\nschema: xdomea.xsd\nrules: mine.py\n", 4, "rules: a bundle"),
        ("standard: X\nversion: '1'\nschemas: xdomea.xsd\n", 3, "schemas: unknown key"),
        ("standard: X\nversion: '1'\nschema: ../xoev/xoev-code.xsd\n", 3, "leaves the bundle"),
        ("standard: X\nversion: '1'\nschema: /etc/passwd\n", 3, "relative to the bundle"),
        ("standard: X\nversion: '1'\nschema: nope.xsd\n", 3, "'nope.xsd' does not exist"),
        ("standard: X\nversion: '1'\nschema: xdomea.xsd\nnamespace: urn:x\n", 4, "is not the"),
        ("standard: X\nversion: '1'\nversion: '2'\n", 3, "given twice (first at line 2)"),
        ("standard: [X\n", 2, "not valid YAML"),
        ("- a list\n", 1, "must be a mapping"),
        ("standard: X\nversion: '1'\ncodelists: nowhere\n", 3, "codelists: 'nowhere' is not a"),
        ("standard: X\nversion: '1'\nkosit_repository: .\n", 3, "needs kosit"),
        ("standard: {a: 1}\nversion: '1'\n", 1, "standard: must be text"),
        ("version: '1'\nschema: xdomea.xsd\n", 1, "standard is required"),
    ],
)
def test_bundle_yaml_problems(
    shared_dir: Path, tmp_path: Path, text: str, line: int, expected: str
) -> None:
    bundle = _xdomea_copy(shared_dir, tmp_path, COPY_NS)
    file = bundle / "bundle.yaml"
    file.write_text(text)
    with pytest.raises(BundleError) as info:
        load_bundle(file)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"{file}:{line}: ")
    assert expected in str(info.value)
    # the registry goes on without the bundle and says why where it matters
    registry = SchemaRegistry([tmp_path], use_env=False)
    assert registry.get(COPY_NS) is None
    assert any(expected in p and p.startswith("bundle skipped") for p in registry.problems)
    with pytest.raises(UnknownDocumentError, match="unusable bundles"):
        validate(_message(COPY_NS), registry=registry)


# -- a KoSIT configuration in a bundle -----------------------------------------------------------


@pytest.fixture
def kosit_bundle(shared_dir: Path, tmp_path: Path) -> Path:
    simple = shared_dir / "kosit" / "examples" / "simple"
    bundle = tmp_path / "path" / "kosit-beispiel"
    bundle.mkdir(parents=True)
    shutil.copytree(simple / "repository", bundle / "repository")
    shutil.copy(simple / "scenarios.xml", bundle / "scenarios.xml")
    (bundle / "bundle.yaml").write_text(
        "standard: KoSIT-Beispiel\nversion: '1.0'\nschema: repository/simple.xsd\n"
        "kosit: scenarios.xml\nkosit_repository: repository\n"
    )
    return bundle


def test_bundle_kosit_schematron_runs_after_xsd(
    kosit_bundle: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = shared_dir / "kosit" / "examples" / "simple" / "input"
    registry = SchemaRegistry([kosit_bundle.parent], use_env=False)
    sv = registry.get("http://validator.kosit.de/test-sample")
    assert sv is not None and sv.kosit == (kosit_bundle / "scenarios.xml").resolve()

    valid = validate((inputs / "simple.xml").read_bytes(), registry=registry)
    assert valid.ok and valid.findings == []
    assert valid.standard == "KoSIT-Beispiel"
    schematron = validate(
        (inputs / "simple-schematron-invalid.xml").read_bytes(), registry=registry
    )
    assert [f.rule for f in schematron.findings] == ["content-1"]
    assert schematron.findings[0].line == 19
    rejected = validate((inputs / "withManualReject.xml").read_bytes(), registry=registry)
    assert [f.rule for f in rejected.findings] == ["kosit:rejected"] and not rejected.ok
    # schema-invalid: our XSD findings once, the Schematron is skipped
    invalid = validate((inputs / "simple-schema-invalid.xml").read_bytes(), registry=registry)
    assert [f.rule for f in invalid.findings] == ["xsd:SCHEMAV_ELEMENT_CONTENT"] * 2

    path = str(inputs / "simple-schematron-invalid.xml")
    assert main(["validate", path, "--schema-path", str(kosit_bundle.parent)]) == 1
    assert "[content-1] The element inner appears exactly once." in capsys.readouterr().out


def test_broken_bundle_kosit_configuration_names_the_bundle(
    kosit_bundle: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (kosit_bundle / "scenarios.xml").write_text("<scenarios>")
    registry = SchemaRegistry([kosit_bundle.parent], use_env=False)
    simple = shared_dir / "kosit" / "examples" / "simple" / "input" / "simple.xml"
    with pytest.raises(BundleError) as info:
        validate(simple.read_bytes(), registry=registry)
    assert str(info.value).startswith(f"{(kosit_bundle / 'bundle.yaml').resolve()}:4: kosit: ")
    assert isinstance(info.value, SchemaError)
    assert main(["validate", str(simple), "--schema-path", str(kosit_bundle.parent)]) == 2
    assert "cannot check" in capsys.readouterr().err


# -- versions we know of but do not ship ------------------------------------------------------


def _xgwa(namespace: str, shared_dir: Path) -> bytes:
    sample = shared_dir / "xoev" / "beispiele" / "xgewerbeanzeige-2.2" / "xgwa2.2-valid.xml"
    return sample.read_bytes().replace(XGEWERBEANZEIGE_2_2.encode(), namespace.encode())


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("http://www.xgewerbeanzeige.de/spezifikation/2.0", "XGewerbeanzeige 2.0"),
        (XGWA_2_1, "XGewerbeanzeige 2.1"),
        (XGEWO_XGA_1_6, "XGewerbeordnung 1.6"),
        ("http://www.xgewerbeordnung.de/spezifikation/1.7", "XGewerbeordnung 1.7"),
    ],
)
def test_known_but_not_shipped_is_named(
    namespace: str, name: str, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = SchemaRegistry(use_env=False)
    with pytest.raises(VersionNotBuiltInError) as info:
        validate(_xgwa(namespace, shared_dir), registry=registry)
    assert str(info.value).startswith(f"{name} is not built in; put its bundle on the schema path")
    assert namespace in str(info.value)
    file = tmp_path / "m.xml"
    file.write_bytes(_xgwa(namespace, shared_dir))
    assert main(["validate", str(file)]) == 2
    err = capsys.readouterr().err
    assert f"{file}: cannot check: {name} is not built in; put its bundle on the schema path" in err


def test_a_not_shipped_version_works_once_its_bundle_is_on_the_schema_path(
    shared_dir: Path, tmp_path: Path
) -> None:
    """XGewerbeanzeige 2.1 (here: our 2.2 XSD under the 2.1 namespace), dropped in unchanged:
    standard and version come from the targetNamespace."""
    folder = tmp_path / "xgewerbeanzeige-2.1"
    folder.mkdir()
    text = XGWA_XSD.read_text(encoding="utf-8").replace(XGEWERBEANZEIGE_2_2, XGWA_2_1)
    (folder / "xgewerbeanzeige.xsd").write_text(text, encoding="utf-8")
    registry = SchemaRegistry([tmp_path], use_env=False)
    report = validate(_xgwa(XGWA_2_1, shared_dir), registry=registry)
    assert report.ok, report.to_text()
    assert (report.standard, report.version) == ("XGewerbeanzeige", "2.1")
    assert registry.get(XGWA_2_1).configured_by == "targetNamespace"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        (XGEWO_XGA_1_6, ("XGewerbeordnung", "1.6")),
        ("http://www.xgewerbeordnung.de/spezifikation/1.6", ("XGewerbeordnung", "1.6")),
        (XGWA_2_1, ("XGewerbeanzeige", "2.1")),
        (XDOMEA_3_1_0, ("xdomea", "3.1.0")),
        ("urn:xoev-de:kosit:standard:xdomea_3.1.0", ("xdomea", "3.1.0")),
        ("http://xoev.de/schemata/code/1_0", None),
        (COPY_NS, None),
        ("urn:xoev-de:xdomea:codeliste:nachrichtentyp", None),
    ],
)
def test_derive_version(namespace: str, expected: tuple[str, str] | None) -> None:
    assert derive_version(namespace) == expected


def test_not_built_in_is_only_for_versions_we_know_of() -> None:
    assert not_built_in(XGWA_2_1) == ("XGewerbeanzeige", "2.1")
    assert not_built_in("http://www.xgewerbeanzeige.de/spezifikation/3.0") is None
    assert not_built_in(XDOMEA_3_0_0) is None and not_built_in(None) is None


# -- amtsbote schemas lists configured versions with their origin --------------------------------


def test_schemas_lists_configured_bundles(
    shared_dir: Path, tmp_path: Path, kosit_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _xdomea_copy(shared_dir, tmp_path / "path", COPY_NS)
    (copy / "bundle.yaml").write_text(BUNDLE_YAML)
    path = str(tmp_path / "path")
    assert main(["schemas", "--schema-path", path]) == 0
    out = capsys.readouterr().out
    block = out[out.index("xdomea-Kopie 9.90") :].split("\n\n")[0]
    assert f"namespace:  {COPY_NS}" in block
    assert f"schema:     {(copy / 'xdomea.xsd').resolve()} ({copy.resolve()})" in block
    assert f"configured: {(copy / 'bundle.yaml').resolve()}" in block
    kosit = out[out.index("KoSIT-Beispiel 1.0") :].split("\n\n")[0]
    assert f"kosit:      {(kosit_bundle / 'scenarios.xml').resolve()}" in kosit

    assert main(["schemas", "--format", "json", "--schema-path", path]) == 0
    data = json.loads(capsys.readouterr().out)
    entry = next(v for v in data["versions"] if v["namespace"] == COPY_NS)
    assert entry["available"] is True
    assert entry["origin"] == str(copy.resolve())
    assert entry["configured_by"] == str((copy / "bundle.yaml").resolve())
    assert (entry["standard"], entry["version"]) == ("xdomea-Kopie", "9.90")
    builtin = next(v for v in data["versions"] if v["namespace"] == XDOMEA_3_0_0)
    assert builtin["configured_by"] is None and builtin["origin"] == "built-in"


def test_schemas_warns_about_unusable_bundles(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _xdomea_copy(shared_dir, tmp_path, COPY_NS)
    (copy / "bundle.yaml").write_text("standard: X\nversion: '1'\nrules: x.py\n")
    assert main(["schemas", "--schema-path", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: bundle skipped: {copy / 'bundle.yaml'}:3: rules: a bundle carries no code" in err
    )
