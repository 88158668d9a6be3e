"""Genericode codelists: loading the 48 xdomea lists, lookups, the codelist check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from xoev import validate
from xoev.codelists import CodelistRegistry, load_genericode, version_key
from xoev.exceptions import CodelistError
from xoev.findings import Severity
from xoev.namespaces import GENERICODE
from xoev.registry import SCHEMA_PATH_ENV, SchemaRegistry
from xoev.xdomea import SAMPLES, V3_0_0

NACHRICHTENTYP = "urn:xoev-de:xdomea:codeliste:nachrichtentyp"
MEDIUM = "urn:xoev-de:xdomea:codeliste:medium"
COUNTRY = "urn:xoev-de:kosit:codeliste:country-codes"


@pytest.fixture(scope="module")
def code_lists_dir(schemata_dir: Path) -> Path:
    return schemata_dir / "xdomea-3.0.0" / "code_lists"


@pytest.fixture(scope="module")
def xdomea_lists(code_lists_dir: Path) -> CodelistRegistry:
    registry = CodelistRegistry()
    registry.load_dir(code_lists_dir)
    return registry


def _genericode(
    uri: str,
    version: str,
    codes: list[tuple[str, str]],
    *,
    qualified: bool = False,
    recommended_second_key: bool = False,
) -> bytes:
    p = "gc:" if qualified else ""
    rows = "".join(
        f"<{p}Row><{p}Value ColumnRef='code'><{p}SimpleValue>{c}</{p}SimpleValue></{p}Value>"
        f"<{p}Value ColumnRef='wert'><{p}SimpleValue>{d}</{p}SimpleValue></{p}Value></{p}Row>"
        for c, d in codes
    )
    keys = f"<{p}Key Id='k1'><{p}ShortName>k1</{p}ShortName><{p}ColumnRef Ref='code'/></{p}Key>"
    if recommended_second_key:
        keys = (
            f"<{p}Key Id='k0'><{p}ShortName>k0</{p}ShortName><{p}ColumnRef Ref='wert'/></{p}Key>"
            f"<{p}Key Id='k1'><{p}Annotation><{p}AppInfo><x:recommendedKeyColumn "
            f"xmlns:x='http://xoev.de/schemata/genericode/4'/></{p}AppInfo></{p}Annotation>"
            f"<{p}ShortName>k1</{p}ShortName><{p}ColumnRef Ref='code'/></{p}Key>"
        )
    return (
        f"<gc:CodeList xmlns:gc='{GENERICODE}'><{p}Identification><{p}ShortName>t</{p}ShortName>"
        f"<{p}Version>{version}</{p}Version><{p}CanonicalUri>{uri}</{p}CanonicalUri>"
        f"<{p}CanonicalVersionUri>{uri}_{version}</{p}CanonicalVersionUri></{p}Identification>"
        f"<{p}ColumnSet><{p}Column Id='code'/><{p}Column Id='wert'/>{keys}</{p}ColumnSet>"
        f"<{p}SimpleCodeList>{rows}</{p}SimpleCodeList></gc:CodeList>"
    ).encode()


def test_all_48_xdomea_lists_load(code_lists_dir: Path, xdomea_lists: CodelistRegistry) -> None:
    files = sorted(code_lists_dir.glob("*.xml"))
    assert len(files) == 48
    assert len(xdomea_lists) == 48
    assert {c.source for c in xdomea_lists} == {str(f) for f in files}
    for codelist in xdomea_lists:
        assert codelist.canonical_uri and codelist.version and len(codelist) > 0


def test_lookups(xdomea_lists: CodelistRegistry) -> None:
    nt = xdomea_lists.get(NACHRICHTENTYP, "2.0")
    assert nt is not None and nt is xdomea_lists.get(NACHRICHTENTYP)
    assert nt.short_name == "nachrichtentyp"
    assert nt.canonical_version_uri == f"{NACHRICHTENTYP}_2.0"
    assert "0101" in nt and "9999" not in nt
    assert nt.description("0503") == "Aussonderung.Aussonderung"
    assert nt.entries["0101"].values == {"code": "0101", "beschreibung": "Information.Information"}
    assert xdomea_lists.get(NACHRICHTENTYP, "1.0") is None
    assert xdomea_lists.get("urn:nothing") is None

    countries = xdomea_lists.get(COUNTRY, "7")
    assert countries is not None and countries.key_column == "ISOAlpha2code"
    assert "DE" in countries and len(countries) == 250
    assert countries.entries["DE"].values["ISONumeric"] == "276"
    dateiformat = xdomea_lists.get("urn:xoev-de:xdomea:codeliste:dateiformat")
    assert dateiformat is not None and dateiformat.description("018") == (
        "pdf - Portable Document Format"
    )


def test_latest_version_when_the_instance_names_none() -> None:
    registry = CodelistRegistry()
    registry.add(load_genericode(_genericode("urn:t", "1.9", [("a", "A")])))
    registry.add(load_genericode(_genericode("urn:t", "1.10", [("b", "B")])))
    registry.add(load_genericode(_genericode("urn:t", "1.2", [("c", "C")])))
    assert registry.get("urn:t").version == "1.10"  # type: ignore[union-attr]
    assert registry.get("urn:t", "1.2").codes == frozenset({"c"})  # type: ignore[union-attr]
    assert registry.versions("urn:t") == ["1.2", "1.9", "1.10"]
    assert "urn:t" in registry and ("urn:t", "1.9") in registry
    assert version_key("2019-05-31") > version_key("2018-01-31")
    assert version_key("7") > version_key("3")


def test_genericode_variants() -> None:
    qualified = load_genericode(_genericode("urn:q", "1", [("x", "X")], qualified=True))
    assert qualified.codes == frozenset({"x"}) and qualified.description("x") == "X"
    recommended = load_genericode(
        _genericode("urn:r", "1", [("x", "X")], recommended_second_key=True)
    )
    assert recommended.key_column == "code"


def test_broken_genericode(tmp_path: Path) -> None:
    with pytest.raises(CodelistError, match="not genericode"):
        load_genericode(b"<other/>")
    with pytest.raises(CodelistError, match="CanonicalUri"):
        load_genericode(
            f"<gc:CodeList xmlns:gc='{GENERICODE}'><Identification><Version>1</Version>"
            f"</Identification></gc:CodeList>".encode()
        )
    with pytest.raises(CodelistError, match="not well-formed"):
        load_genericode(b"<gc:CodeList")
    with pytest.raises(CodelistError) as info:
        load_genericode(tmp_path / "missing.xml")
    assert "missing.xml" in str(info.value)


def _doc(body: str) -> etree._ElementTree:
    return etree.fromstring(f"<m:m xmlns:m='urn:m'>{body}</m:m>".encode()).getroottree()


def test_check_finds_unknown_codes(xdomea_lists: CodelistRegistry) -> None:
    tree = _doc(
        f"<m:a listURI='{MEDIUM}' listVersionID='1.0'><code>001</code></m:a>\n"
        f"<m:b listURI='{MEDIUM}'><code>009</code></m:b>\n"
        f"<m:c listURI='{MEDIUM}' listVersionID='0.1'><code>009</code></m:c>\n"
        f"<m:d listURI='urn:not:loaded'><code>zz</code></m:d>\n"
        f"<m:Medium><code>004</code></m:Medium>\n"
        f"<m:e><code>zz</code></m:e>"
    )
    findings = xdomea_lists.check(tree, code_bindings=V3_0_0.code_bindings)
    assert [(f.xpath, f.line, f.rule) for f in findings] == [
        ("/m:m/m:b", 2, "codelist"),
        ("/m:m/m:c", 3, "codelist:version"),  # version 0.1 not loaded: checked against 1.0
        ("/m:m/m:c", 3, "codelist"),
        ("/m:m/m:Medium", 5, "codelist"),
    ]
    assert findings[1].severity is Severity.WARNING and "'0.1'" in findings[1].message
    assert "Version 1.0" in findings[1].message
    first = findings[0]
    assert first.rule == "codelist" and first.severity is Severity.ERROR
    assert "'009'" in first.message and " b " in first.message and MEDIUM in first.message
    assert "Version 1.0" in first.message
    assert CodelistRegistry().check(tree) == []


def test_registry_loads_codelists_from_the_schema_path(
    schemata_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCHEMA_PATH_ENV, raising=False)
    registry = SchemaRegistry([schemata_dir], use_env=False)
    from_path = [c for c in registry.codelists if c.source.startswith(str(schemata_dir))]
    assert len(from_path) == 48  # built-in lists of other standards come on top
    assert registry.codelists is registry.codelists

    good = (SAMPLES / "information-0101.xml").read_bytes()
    assert validate(good, registry=registry).findings == []
    bad = good.replace(b"<code>001</code>", b"<code>009</code>")
    report = validate(bad, registry=registry)
    # the XSD enumeration says so first: one defect, one finding
    assert [f.rule for f in report.findings] == ["xsd:SCHEMAV_CVC_ENUMERATION_VALID"]
    found = registry.codelists.check(etree.fromstring(bad).getroottree())
    codelist_finding = next(f for f in found if f.rule == "codelist")
    assert "'009'" in codelist_finding.message and "Medium" in codelist_finding.message
    assert codelist_finding.xpath is not None and codelist_finding.xpath.endswith("xdomea:Medium")


def test_schema_path_codelist_overrides_builtin(tmp_path: Path) -> None:
    builtin = tmp_path / "builtin.xml"
    builtin.write_bytes(_genericode("urn:t", "1", [("a", "A")]))
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    (path_dir / "t.xml").write_bytes(_genericode("urn:t", "1", [("b", "B")]))
    (path_dir / "not-a-codelist.xml").write_bytes(b"<x/>")
    from xoev.standards import StandardVersion

    sv = StandardVersion(
        standard="T", version="1", namespace="urn:t:ns", schema=None, codelists=(builtin,)
    )
    only_builtin = SchemaRegistry(use_env=False, packages=(), versions=[sv])
    assert only_builtin.codelists.get("urn:t").codes == frozenset({"a"})  # type: ignore[union-attr]
    with_path = SchemaRegistry([path_dir], use_env=False, packages=(), versions=[sv])
    assert with_path.codelists.get("urn:t").codes == frozenset({"b"})  # type: ignore[union-attr]


def test_an_empty_or_unknown_list_version_is_checked_against_the_newest(
    xdomea_lists: CodelistRegistry,
) -> None:
    tree = _doc(
        f"<m:a listURI='{MEDIUM}' listVersionID=''><code>009</code></m:a>\n"
        f"<m:b listURI='{MEDIUM}' listVersionID='  '><code>001</code></m:b>\n"
        f"<m:c listURI='{MEDIUM}' listVersionID='7.7'><code>001</code></m:c>"
    )
    findings = xdomea_lists.check(tree)
    assert [(f.line, f.rule, f.severity) for f in findings] == [
        (1, "codelist:version", Severity.WARNING),
        (1, "codelist", Severity.ERROR),  # checked, not skipped
        (2, "codelist:version", Severity.WARNING),
        (3, "codelist:version", Severity.WARNING),
    ]
    assert "leer" in findings[0].message and "'7.7'" in findings[3].message


def test_a_reconstructed_list_never_rejects() -> None:
    from xoev.xgewerbeanzeige.codelisten import codelisten, render_genericode

    geschlecht = next(c for c in codelisten() if c.kurzname == "geschlecht")
    reconstructed = load_genericode(render_genericode(geschlecht))
    assert reconstructed.reconstructed and geschlecht.nachgebildet
    nachrichtentyp = next(c for c in codelisten() if c.kurzname == "nachrichtentyp")
    assert not load_genericode(render_genericode(nachrichtentyp)).reconstructed
    registry = CodelistRegistry([reconstructed])
    uri = reconstructed.canonical_uri
    tree = _doc(f"<m:geschlecht listURI='{uri}'><code>x-unbekannt</code></m:geschlecht>")
    [finding] = registry.check(tree)
    assert finding.severity is Severity.WARNING and finding.rule == "codelist:incomplete"
    assert uri in finding.message and "unvollständig" in finding.message
    # the same list as an official one (no marker) rejects the code
    official = CodelistRegistry([replace(reconstructed, reconstructed=False)])
    [error] = official.check(tree)
    assert error.severity is Severity.ERROR and error.rule == "codelist"
