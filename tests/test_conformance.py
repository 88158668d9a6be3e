"""Issue 13, points 3 and 4: no false rejections, and header rules for every standard.

The yardstick is KoSIT's XGewerbeanzeige 2.2 test message (``../shared``, read in place) and the
xdomea samples shipped with the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import xoev
from xoev.findings import Severity
from xoev.xgewerbeanzeige import v2_2

XDOMEA_0101 = Path(xoev.__file__).parent / "xdomea" / "samples" / "information-0101.xml"


@pytest.fixture
def kosit_valid(shared_dir: Path) -> bytes:
    return (
        shared_dir / "xoev" / "beispiele" / "xgewerbeanzeige-2.2" / "xgwa2.2-valid.xml"
    ).read_bytes()


def _rules(report: xoev.Report) -> list[tuple[str, Severity]]:
    return [(f.rule, f.severity) for f in report.findings]


def test_the_kosit_message_is_valid_as_published(kosit_valid: bytes) -> None:
    assert xoev.validate(kosit_valid, source="kosit").findings == []


def test_every_lexical_form_of_xs_datetime_and_xs_date_is_accepted(kosit_valid: bytes) -> None:
    stamp = re.compile(rb"(<xga:erstellungszeitpunkt>)([^<]+)(</xga:erstellungszeitpunkt>)")
    assert stamp.search(kosit_valid)
    for value in (
        b"2019-10-24T00:00:00",  # no time zone: German legal time is meant
        b"2019-10-24T00:00:00.125",
        b"2019-10-24T00:00:00Z",
        b"2019-10-24T00:00:00-05:00",
    ):
        message = stamp.sub(rb"\g<1>" + value + rb"\g<3>", kosit_valid)
        report = xoev.validate(message, source=value.decode())
        assert report.findings == [], (value, [str(f) for f in report.findings])
        # the model reads it too, and writes back the same instant (a zone-less one without zone)
        model = v2_2.parse(message)
        assert v2_2.parse(v2_2.build(model)) == model
        if b"T00:00:00" in value and value[-1:].isdigit() and b"-05" not in value:
            assert value.decode() in v2_2.build(model).decode()
    broken = stamp.sub(rb"\g<1>2019-10-24 00:00\g<3>", kosit_valid)
    assert [f.rule for f in xoev.validate(broken, source="b").findings] == [
        "xsd:SCHEMAV_CVC_DATATYPE_VALID_1_2_1"
    ]


def test_an_unknown_code_in_a_reconstructed_list_is_a_warning_not_a_rejection(
    kosit_valid: bytes,
) -> None:
    message = kosit_valid.replace(
        b'<xga:geschlecht listVersionID="3">\n                  <code>1</code>',
        b'<xga:geschlecht listVersionID="3">\n                  <code>7</code>',
    )
    assert message != kosit_valid
    report = xoev.validate(message, source="m")
    assert report.ok
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("codelist:incomplete", Severity.WARNING)
    assert "geschlecht" in finding.message and "unvollständig" in finding.message


def test_an_unknown_list_version_is_checked_with_a_warning(kosit_valid: bytes) -> None:
    for version, word in ((b"", "leer"), (b"99", "'99'")):
        message = kosit_valid.replace(
            b'<xga:geschlecht listVersionID="3">',
            b'<xga:geschlecht listVersionID="' + version + b'">',
        )
        report = xoev.validate(message, source="v")
        assert _rules(report) == [("codelist:version", Severity.WARNING)], version
        assert word in report.findings[0].message and "Version 3" in report.findings[0].message


def test_a_value_outside_an_enumeration_that_is_also_a_code_list_is_one_finding() -> None:
    sample = XDOMEA_0101.read_bytes()
    report = xoev.validate(sample.replace(b"<code>0101</code>", b"<code>0999</code>"), source="e")
    [finding] = report.findings
    assert finding.rule == "xsd:SCHEMAV_CVC_ENUMERATION_VALID"
    assert finding.xpath is not None and finding.xpath.endswith("Nachrichtentyp/code")


def test_the_xdomea_kopf_must_name_the_messages_own_type() -> None:
    sample = XDOMEA_0101.read_bytes()
    assert xoev.validate(sample, source="ok").findings == []
    report = xoev.validate(sample.replace(b"<code>0101</code>", b"<code>0102</code>"), source="x")
    [finding] = report.findings
    assert finding.rule == "XOEV-KOPF-01" and finding.severity is Severity.ERROR
    assert "0102" in finding.message and "0101" in finding.message and finding.line == 8


def test_xgewerbeanzeige_keeps_its_own_header_rule(kosit_valid: bytes) -> None:
    message = re.sub(
        rb"(<xga:nachrichtentyp[^>]*>\s*<code>)0500(</code>)", rb"\g<1>0510\g<2>", kosit_valid
    )
    assert message != kosit_valid
    rules = [f.rule for f in xoev.validate(message, source="t").findings]
    assert "XGWA-R01" in rules and "XOEV-KOPF-01" not in rules
