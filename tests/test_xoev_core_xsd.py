"""Schema findings: libxml2 messages in XÖV wording, XPaths, recovery after content errors."""

from __future__ import annotations

import pytest
from lxml import etree

from xoev.findings import Severity
from xoev.parsing import parse_xml
from xoev.xsd import (
    MAX_FINDINGS,
    MAX_RECOVERY_STEPS,
    CompiledSchema,
    SchemaFinding,
    rewrite_message,
)

XSD = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t"
    xmlns:t="urn:t" elementFormDefault="qualified">
 <xs:element name="root"><xs:complexType><xs:sequence>
   <xs:element name="gewerbe" minOccurs="0"><xs:complexType><xs:sequence>
     <xs:element name="a" type="xs:string"/>
     <xs:element name="betriebArt" type="t:BetriebArt"/>
     <xs:element name="b" type="xs:string"/>
     <xs:element name="beteiligtePerson" maxOccurs="unbounded"><xs:complexType><xs:sequence>
        <xs:element name="vorname" type="xs:string"/>
        <xs:element name="familienname" type="xs:string"/>
        <xs:element name="geburtsdatum" type="xs:date" minOccurs="0"/>
     </xs:sequence></xs:complexType></xs:element>
   </xs:sequence></xs:complexType></xs:element>
   <xs:element name="pat" minOccurs="0"><xs:simpleType><xs:restriction base="xs:string">
     <xs:pattern value="[0-9]{5}"/></xs:restriction></xs:simpleType></xs:element>
   <xs:element name="enum" minOccurs="0"><xs:simpleType><xs:restriction base="xs:token">
     <xs:enumeration value="a"/><xs:enumeration value="b"/></xs:restriction></xs:simpleType>
   </xs:element>
   <xs:element name="maxl" minOccurs="0"><xs:simpleType><xs:restriction base="xs:string">
     <xs:maxLength value="3"/></xs:restriction></xs:simpleType></xs:element>
   <xs:element name="mi" minOccurs="0"><xs:simpleType><xs:restriction base="xs:int">
     <xs:minInclusive value="3"/><xs:maxInclusive value="5"/></xs:restriction></xs:simpleType>
   </xs:element>
   <xs:element name="withattr" minOccurs="0"><xs:complexType>
     <xs:sequence><xs:element name="code" form="unqualified" type="xs:token"/></xs:sequence>
     <xs:attribute name="req" use="required"/><xs:attribute name="v" type="xs:date"/>
   </xs:complexType></xs:element>
   <xs:element name="eo" minOccurs="0"><xs:complexType><xs:sequence>
     <xs:element name="x" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>
   <xs:element name="ch" minOccurs="0"><xs:complexType><xs:choice>
     <xs:element name="c1"/><xs:element name="c2"/></xs:choice></xs:complexType></xs:element>
   <xs:element name="opt" minOccurs="0"/>
 </xs:sequence></xs:complexType></xs:element>
 <xs:complexType name="BetriebArt"><xs:sequence>
   <xs:element name="industrie" type="xs:string"/></xs:sequence></xs:complexType>
</xs:schema>"""


@pytest.fixture(scope="module")
def schema() -> CompiledSchema:
    return CompiledSchema(etree.XMLSchema(etree.fromstring(XSD)), path="t.xsd", origin="test")


def _findings(schema: CompiledSchema, body: str) -> list[SchemaFinding]:
    tree = parse_xml(f'<t:root xmlns:t="urn:t">{body}</t:root>'.encode())
    findings = schema.findings(tree)
    assert all(isinstance(f, SchemaFinding) and f.severity is Severity.ERROR for f in findings)
    return findings  # type: ignore[return-value]


def test_two_missing_elements_in_one_truncated_parent(schema: CompiledSchema) -> None:
    body = """
<t:gewerbe>
<t:a>x</t:a>
<t:b>y</t:b>
<t:beteiligtePerson><t:vorname>V</t:vorname><t:geburtsdatum>1999-13-01</t:geburtsdatum>
</t:beteiligtePerson>
<t:beteiligtePerson><t:vorname>W</t:vorname></t:beteiligtePerson>
</t:gewerbe>"""
    tree = parse_xml(f'<t:root xmlns:t="urn:t">{body}</t:root>'.encode())
    before = etree.tostring(tree)
    ok, entries = schema.validate(tree)
    assert not ok and len(entries) == 1  # libxml2 alone reports the first defect only
    findings = schema.findings(tree)
    assert etree.tostring(tree) == before  # recovery works on a copy
    assert [(f.line, f.xpath, f.message) for f in findings] == [
        (4, "/t:root/t:gewerbe", "Pflichtelement betriebArt fehlt in gewerbe"),
        (
            5,
            "/t:root/t:gewerbe/t:beteiligtePerson[1]",
            "Pflichtelement familienname fehlt in beteiligtePerson",
        ),
        (
            5,
            "/t:root/t:gewerbe/t:beteiligtePerson[1]/t:geburtsdatum",
            "Wert in geburtsdatum ist kein gültiger Wert des Typs xs:date",
        ),
        (
            7,
            "/t:root/t:gewerbe/t:beteiligtePerson[2]",
            "Pflichtelement familienname fehlt in beteiligtePerson",
        ),
    ]
    assert findings[0].rule == "xsd:SCHEMAV_ELEMENT_CONTENT"
    assert findings[0].raw is not None and "betriebArt" in findings[0].raw
    assert "raw" not in findings[0].to_dict()


def test_extra_element_is_not_allowed_and_following_siblings_are_checked(
    schema: CompiledSchema,
) -> None:
    body = """<t:gewerbe><t:a>x</t:a><t:betriebArt><t:industrie>0</t:industrie></t:betriebArt>
<t:b>y</t:b><t:b2/>
<t:beteiligtePerson><t:vorname>V</t:vorname><code>1</code></t:beteiligtePerson>
</t:gewerbe>"""
    findings = _findings(schema, body)
    assert [(f.line, f.message) for f in findings] == [
        (
            2,
            "Element b2 ist in gewerbe an dieser Stelle nicht erlaubt (erwartet: beteiligtePerson)",
        ),
        (3, "Pflichtelement familienname fehlt in beteiligtePerson"),
        (
            3,
            "Element code ist in beteiligtePerson an dieser Stelle nicht erlaubt "
            "(erwartet: familienname)",
        ),
    ]
    assert findings[0].xpath == "/t:root/t:gewerbe/t:b2"


def test_unexpected_element_without_alternatives(schema: CompiledSchema) -> None:
    findings = _findings(schema, "<t:opt/><t:junk/>")
    assert [(f.xpath, f.message) for f in findings] == [
        ("/t:root/t:junk", "Element junk ist in root nicht erlaubt")
    ]


def test_default_namespace_paths(schema: CompiledSchema) -> None:
    tree = parse_xml(b'<root xmlns="urn:t"><gewerbe><a/><b/></gewerbe></root>')
    findings = schema.findings(tree)
    assert [(f.message, f.xpath) for f in findings] == [
        ("Pflichtelement betriebArt fehlt in gewerbe", "/*/*"),
        ("Pflichtelement beteiligtePerson fehlt in gewerbe", "/*/*"),
    ]


@pytest.mark.parametrize(
    ("body", "message", "xpath"),
    [
        (
            "<t:pat>12a</t:pat>",
            "Wert in pat entspricht nicht dem Muster '[0-9]{5}'",
            "/t:root/t:pat",
        ),
        ("<t:enum>c</t:enum>", "Wert in enum ist nicht zulässig (erlaubt: a, b)", "/t:root/t:enum"),
        (
            "<t:maxl>abcd</t:maxl>",
            "Wert in maxl ist 4 Zeichen lang, erlaubt sind höchstens 3",
            "/t:root/t:maxl",
        ),
        ("<t:mi>9</t:mi>", "Wert in mi ist größer als erlaubt (Höchstwert 5)", "/t:root/t:mi"),
        ("<t:mi>1</t:mi>", "Wert in mi ist kleiner als erlaubt (Mindestwert 3)", "/t:root/t:mi"),
        (
            "<t:withattr req='1' v='x'><code>1</code></t:withattr>",
            "Wert in withattr/@v ist kein gültiger Wert des Typs xs:date",
            "/t:root/t:withattr/@v",
        ),
        (
            "<t:withattr req='1' foo='1'><code>1</code></t:withattr>",
            "Attribut foo ist in withattr nicht erlaubt",
            "/t:root/t:withattr/@foo",
        ),
        (
            "<t:withattr><code>1</code></t:withattr>",
            "Pflichtattribut req fehlt in withattr",
            "/t:root/t:withattr",
        ),
        ("<t:eo>text</t:eo>", "eo darf keinen Text enthalten, nur Kindelemente", "/t:root/t:eo"),
        ("<t:ch/>", "In ch fehlt ein Pflichtelement, eines von: c1, c2", "/t:root/t:ch"),
    ],
)
def test_messages(schema: CompiledSchema, body: str, message: str, xpath: str) -> None:
    (finding,) = _findings(schema, body)
    assert (finding.message, finding.xpath, finding.line) == (message, xpath, 1)


def test_undeclared_root(schema: CompiledSchema) -> None:
    (finding,) = schema.findings(parse_xml(b'<t:other xmlns:t="urn:t"/>'))
    assert finding.message == "Wurzelelement other ist im Schema nicht deklariert"
    assert finding.rule == "xsd:SCHEMAV_CVC_ELT_1"


def test_rewrite_message_directly() -> None:
    raw = (
        "Element '{urn:x}istReisegewerbe': This element is not expected. "
        "Expected is ( {urn:x}betriebArt )."
    )
    assert rewrite_message(raw, "gewerbe") == "Pflichtelement betriebArt fehlt in gewerbe"
    assert rewrite_message(raw) == (
        "Element istReisegewerbe ist an dieser Stelle nicht erlaubt (erwartet: betriebArt)"
    )
    long_set = ", ".join(f"'{i:03d}'" for i in range(30))
    enum = (
        "Element 'c': [facet 'enumeration'] The value 'x' is not an element of the set "
        f"{{{long_set}}}."
    )
    assert rewrite_message(enum).endswith("011 … (+18))")
    assert rewrite_message("Element '{urn:x}q': Something new.") == "q: Something new."
    assert rewrite_message("no element prefix {urn:x}here") == "no element prefix here"


def test_recovery_is_bounded(schema: CompiledSchema) -> None:
    n = 2 * MAX_RECOVERY_STEPS
    persons = "".join("<t:beteiligtePerson>\n<t:x/></t:beteiligtePerson>" for _ in range(n))
    findings = _findings(
        schema,
        f"<t:gewerbe><t:a/><t:betriebArt><t:industrie/></t:betriebArt><t:b/>{persons}</t:gewerbe>",
    )
    # terminates, and every person is reported, recovered or not
    reported = {f.xpath.split("/t:x")[0] for f in findings if f.xpath}
    expected = {f"/t:root/t:gewerbe/t:beteiligtePerson[{i}]" for i in range(1, n + 1)}
    assert expected <= reported


def test_more_facets_and_no_instance_values() -> None:
    xsd = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
     <xs:element name="r"><xs:complexType><xs:sequence>
      <xs:element name="a"><xs:simpleType><xs:restriction base="xs:int">
        <xs:minExclusive value="3"/><xs:maxExclusive value="5"/></xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="c"><xs:simpleType><xs:restriction base="xs:decimal">
        <xs:totalDigits value="3"/></xs:restriction></xs:simpleType></xs:element>
      <xs:element name="d"><xs:simpleType><xs:restriction base="xs:decimal">
        <xs:fractionDigits value="1"/></xs:restriction></xs:simpleType></xs:element>
      <xs:element name="e"><xs:simpleType><xs:union memberTypes="xs:date xs:int"/></xs:simpleType>
      </xs:element>
     </xs:sequence></xs:complexType></xs:element></xs:schema>"""
    schema = CompiledSchema(etree.XMLSchema(etree.fromstring(xsd)), path="e.xsd", origin="test")
    tree = parse_xml(b"<r><a>5</a><c>1234</c><d>1.23</d><e>Pick</e></r>")
    findings = schema.findings(tree)
    assert [f.message for f in findings] == [
        "Wert in a muss kleiner sein als 5",
        "Wert in c hat mehr als 3 Ziffern",
        "Wert in d hat mehr als 1 Nachkommastellen",
        "Wert in e ist kein gültiger Wert des Typs (lokal definiert)",
    ]
    assert not any("1234" in f.message or "Pick" in f.message for f in findings)
    assert any("Pick" in (f.raw or "") for f in findings)


def test_unknown_messages_lose_quoted_values() -> None:
    odd = "Element 'x': Duplicate key-sequence ['Pick', '1965'] in unique identity-constraint 'u'."
    assert rewrite_message(odd) == (
        "x: Duplicate key-sequence […] in unique identity-constraint 'u'."
    )
    assert rewrite_message("Element 'x': The value 'Pick' is odd.") == "x: The value '…' is odd."


def test_many_errors_are_capped(schema: CompiledSchema) -> None:
    n = MAX_FINDINGS + 500
    persons = "<t:beteiligtePerson><t:x/></t:beteiligtePerson>" * n
    findings = _findings(
        schema,
        f"<t:gewerbe><t:a/><t:betriebArt><t:industrie/></t:betriebArt><t:b/>{persons}</t:gewerbe>",
    )
    assert len(findings) == MAX_FINDINGS + 1
    assert findings[0].message == "Pflichtelement vorname fehlt in beteiligtePerson"
    assert findings[0].xpath == "/t:root/t:gewerbe/t:beteiligtePerson[1]"
    assert findings[-1].rule == "xsd:TOO_MANY_ERRORS"
    assert findings[-1].message == "weitere 500 Schemafehler sind nicht einzeln aufgeführt"
