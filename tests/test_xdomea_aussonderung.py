"""xdomea Aussonderung 0501–0507, 3.0.0 and 3.1.0: models, build (XSD-valid), strict parse."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from lxml import etree

from tests.xdomea_examples import (
    AKTE,
    DOK_ANMELDUNG,
    PROZESS,
    VORGANG,
    VORGANG_KASSABEL,
    akte,
    kopf,
    messages,
    sample_name,
)
from xoev import SchemaRegistry, inspect_message, load_genericode, parse_xml, validate
from xoev.code import Code
from xoev.exceptions import UnusableInputError
from xoev.message import xdomea_message_key
from xoev.xdomea import SAMPLES, V3_0_0, V3_1_0
from xoev.xdomea.aussonderung import (
    MESSAGE_CLASSES,
    Anbietung,
    Aussonderung,
    Bewertungsverzeichnis,
    build,
    dateinamen,
    parse,
)
from xoev.xdomea.exceptions import (
    BuildError,
    InvalidMessageError,
    ModelError,
    NotAussonderungError,
    StructureError,
)
from xoev.xdomea.records import Archivmetadaten, Aussonderungsart, Dokument, Format, Version

VERSIONS = ("3.0.0", "3.1.0")
TYPES = ("0501", "0502", "0503", "0504", "0505", "0506", "0507")
SAMPLE_DIR = SAMPLES / "aussonderung"
XS = "{http://www.w3.org/2001/XMLSchema}"


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry(use_env=False)  # the vendored bundles only


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("type_code", TYPES)
def test_round_trip(registry: SchemaRegistry, version: str, type_code: str) -> None:
    msg = messages(version)[type_code]
    data = build(msg, registry=registry)
    report = validate(data, registry=registry)
    assert report.ok, report.findings
    assert (report.version, report.message_type) == (version, type_code)
    assert parse(data, registry=registry) == msg
    info = inspect_message(data, registry=registry)
    assert info.process_id == PROZESS
    assert info.nachrichten_uuid == xdomea_message_key(PROZESS, type_code)


def _samples() -> list[Path]:
    return sorted(SAMPLE_DIR.glob("*/*.xml"))


def test_every_type_has_a_sample_in_both_versions() -> None:
    assert len(_samples()) == 14
    for version in VERSIONS:
        for msg in messages(version).values():
            assert (SAMPLE_DIR / sample_name(msg)).is_file()


@pytest.mark.parametrize("sample", _samples(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_parse_then_build_is_canonically_equal(
    registry: SchemaRegistry, sample: Path
) -> None:
    data = sample.read_bytes()
    msg = parse(data, registry=registry, source=sample.name)
    assert msg.version == sample.parent.name and sample.stem == msg.ROOT
    assert msg == messages(msg.version)[msg.TYPE]
    rebuilt = build(msg, registry=registry)
    assert etree.canonicalize(parse_xml(rebuilt), strip_text=True) == etree.canonicalize(
        parse_xml(data), strip_text=True
    )


# -- the two versions share their content models for 0501–0507 -----------------------------------


def _definitions(bundle: Path) -> dict[str, str]:
    """Global components by (kind, name) of a bundle, annotations removed, namespace blanked."""
    found: dict[str, str] = {}
    for xsd in bundle.glob("*.xsd"):
        root = parse_xml(xsd.read_bytes()).getroot()
        for el in root.iterchildren(f"{XS}element", f"{XS}complexType", f"{XS}simpleType"):
            copy = etree.fromstring(etree.tostring(el))
            for annotation in list(copy.iter(f"{XS}annotation")):
                annotation.getparent().remove(annotation)
            text = etree.tostring(copy, encoding=str)
            found[f"{etree.QName(el).localname}:{el.get('name')}"] = re.sub(
                r"urn:xoev-de:xdomea:schema:\d\.\d\.\d", "NS", re.sub(r"\s+", " ", text)
            )
    return found


def _reachable(defs: dict[str, str], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        key = todo.pop()
        if key in seen or key not in defs:
            continue
        seen.add(key)
        for ref in re.findall(r'(?:type|base)="xdomea:(\w+)"', defs[key]):
            todo += [f"complexType:{ref}", f"simpleType:{ref}"]
    return seen


def test_content_models_of_0501_to_0507_are_the_same_in_both_versions() -> None:
    assert V3_0_0.schema is not None and V3_1_0.schema is not None
    old, new = _definitions(V3_0_0.schema.parent), _definitions(V3_1_0.schema.parent)
    roots = [f"element:{root}" for root in MESSAGE_CLASSES]
    used = _reachable(old, roots)
    assert len(used) > 50 and "complexType:AkteType" in used
    assert used == _reachable(new, roots)
    assert {k: old[k] for k in used} == {k: new[k] for k in used}
    # and the check would see a difference: 0511 did change
    assert (
        old["element:Aussonderung.AktenplanZurBewertung.0511"]
        != new["element:Aussonderung.AktenplanZurBewertung.0511"]
    )


def test_aussonderungsart_codes_are_the_official_ones() -> None:
    assert V3_0_0.schema is not None
    code_lists = V3_0_0.schema.parent / "code_lists"
    art = load_genericode(code_lists / "Aussonderungsart_1.0.xml")
    assert art.canonical_uri == "urn:xoev-de:xdomea:codeliste:aussonderungsart"
    assert art.codes == {a.value for a in Aussonderungsart} == {"A", "B", "V"}
    assert art.description("A") == "Das Schriftgutobjekt ist archivwürdig."
    vorschlag = load_genericode(code_lists / "Bewertungsvorschlag_1.0.xml")
    assert vorschlag.codes == {"A", "V"}


# -- content helpers ------------------------------------------------------------------------------


def test_appraisal_and_file_names() -> None:
    msgs = messages()
    bewertung = msgs["0502"]
    assert isinstance(bewertung, Bewertungsverzeichnis)
    assert bewertung.ids(Aussonderungsart.ARCHIVWUERDIG) == (AKTE, VORGANG)
    assert bewertung.ids(Aussonderungsart.VERNICHTEN) == (VORGANG_KASSABEL,)
    names = dateinamen(msgs["0503"])
    assert len(names) == 3 and f"{DOK_ANMELDUNG}_Gewerbeanmeldung.pdf" in names
    assert dateinamen(msgs["0501"]) == ()


def test_replies_correlate_through_inspect_message(registry: SchemaRegistry) -> None:
    msgs = messages("3.1.0")
    key_0501 = inspect_message(build(msgs["0501"]), registry=registry).nachrichten_uuid
    for reply in ("0502", "0504"):
        assert inspect_message(build(msgs[reply]), registry=registry).in_reply_to == key_0501
    key_0503 = inspect_message(build(msgs["0503"]), registry=registry).nachrichten_uuid
    assert inspect_message(build(msgs["0506"]), registry=registry).in_reply_to == key_0503


# -- refusals -------------------------------------------------------------------------------------


def test_model_refuses_what_no_message_can_carry() -> None:
    k = kopf(from_city=True)
    with pytest.raises(ModelError, match="schriftgutobjekte: needs at least one entry"):
        Anbietung(kopf=k, schriftgutobjekte=())
    with pytest.raises(ModelError, match=r"version: xdomea 2\.4\.0"):
        Anbietung(kopf=k, version="2.4.0", schriftgutobjekte=(akte(with_files=False),))
    with pytest.raises(ModelError, match=r"Akte\.id: is not a UUID"):
        dataclasses.replace(akte(with_files=False), id="4711")
    with pytest.raises(ModelError, match="A and V only"):
        Archivmetadaten(bewertungsvorschlag=Aussonderungsart.BEWERTEN)
    doc = akte(with_files=True).dokumente[0]
    with pytest.raises(ModelError, match="Dateiname is used twice"):
        Aussonderung(kopf=k, schriftgutobjekte=(doc, doc))


def test_build_refuses_an_invalid_message(registry: SchemaRegistry) -> None:
    pdfa = Code("044", list_version_id="1.0")
    bad_name = Format(dateiname="Gewerbeanmeldung.pdf", name=pdfa, version="1.0")  # no UUID
    bad_file = Dokument(id=DOK_ANMELDUNG, versionen=(Version(formate=(bad_name,)),))
    msg = Aussonderung(kopf=kopf(from_city=True), schriftgutobjekte=(bad_file,))
    with pytest.raises(BuildError) as info:
        build(msg, registry=registry)
    assert info.value.message_type == "0503" and info.value.version == "3.0.0"
    assert any("Dateiname" in f.message for f in info.value.findings)
    assert b"Gewerbeanmeldung.pdf" in build(msg, validate=False)  # the explicit opt-out


def test_parse_is_strict_and_names_the_element(registry: SchemaRegistry) -> None:
    data = build(messages()["0501"])
    # Standort is valid xdomea (AkteType) but not modelled
    extra = data.replace(
        b"</xdomea:ArchivspezifischeMetadaten>\n      <xdomea:Laufzeit>",
        b"</xdomea:ArchivspezifischeMetadaten>\n      "
        b"<xdomea:Standort>Keller</xdomea:Standort>\n      <xdomea:Laufzeit>",
        1,
    )
    assert extra != data and validate(extra, registry=registry).ok
    with pytest.raises(StructureError) as info:
        parse(extra, registry=registry, source="anbietung.xml")
    err = info.value
    assert isinstance(err, UnusableInputError)
    assert (
        err.element == "Standort"
        and err.xpath is not None
        and err.xpath.endswith("xdomea:Akte/xdomea:Standort")
    )
    assert "anbietung.xml:" in str(err) and "Keller" not in str(err)
    lenient = parse(extra, registry=registry, strict=False)
    assert lenient == messages()["0501"]
    assert [p.rpartition("/")[2] for p in lenient.skipped] == ["xdomea:Standort"]


def test_parse_refuses_invalid_foreign_and_mismatched_messages(registry: SchemaRegistry) -> None:
    data = build(messages()["0502"])
    with pytest.raises(InvalidMessageError) as info:
        parse(data.replace(b"<code>V</code>", b"<code>X</code>"), registry=registry)
    assert {f.rule for f in info.value.findings} & {"codelist", "xsd:SCHEMAV_CVC_ENUMERATION_VALID"}
    with pytest.raises(NotAussonderungError, match=r"Information\.EmpfangBestaetigen\.0102"):
        parse((SAMPLES / "empfangbestaetigen-0102.xml").read_bytes(), registry=registry)
    wrong_type = build(messages()["0504"]).replace(b"<code>0504</code>", b"<code>0501</code>")
    with pytest.raises(InvalidMessageError) as mismatch:  # the header rule every standard gets
        parse(wrong_type, registry=registry)
    assert [f.rule for f in mismatch.value.findings] == ["XOEV-KOPF-01"]
    with pytest.raises(StructureError, match="Nachrichtentyp 0501 does not match"):
        parse(wrong_type, registry=registry, validate=False)
    # without validation the structure check still refuses a missing Kopf part
    no_flag = data.replace(b"<xdomea:Empfangsbestaetigung>true</xdomea:Empfangsbestaetigung>", b"")
    with pytest.raises(StructureError, match="Empfangsbestaetigung"):
        parse(no_flag, validate=False)


def test_unbefristet_and_lenient_booleans_round_trip(registry: SchemaRegistry) -> None:
    base = akte(with_files=False)
    forever = dataclasses.replace(base, archiv=Archivmetadaten(aufbewahrungsdauer="unbefristet"))
    msg = Anbietung(
        kopf=kopf(from_city=True), schriftgutobjekte=(forever,), empfangsbestaetigung=False
    )
    data = build(msg, registry=registry)
    assert b"<xdomea:Unbefristet>1</xdomea:Unbefristet>" in data
    assert parse(data, registry=registry) == msg
