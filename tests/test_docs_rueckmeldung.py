"""docs/inbox-api.md's complete Rückmeldung is a valid message (issue 12, point 7): an integrator
who copies it gets a 202, not a 422. Parsed, validated with the shipped schema and code list, and
read back by amtsbote's own reader."""

from __future__ import annotations

import re

from conftest import ROOT

from xoev.rueckmeldung import v1_0 as rueckmeldung
from xoev.validation import validate

DOC = ROOT / "docs" / "inbox-api.md"


def _example() -> bytes:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## A Rückmeldung", 1)[1].split("\n## ", 1)[0]
    [xml] = re.findall(r"```xml\n(.*?)```", section, flags=re.S)
    return xml.encode("utf-8")


def test_the_documented_rueckmeldung_is_valid_and_reads_back() -> None:
    data = _example()
    report = validate(data, source="docs/inbox-api.md")
    assert report.ok, [str(f) for f in report.findings]
    assert (report.standard, report.version) == ("amtsbote-Rueckmeldung", "1.0")
    msg = rueckmeldung.parse(data)
    assert msg.bezug == "3f2c9a61-5b7e-5d0a-9c41-8e2f6b1d7a30"
    assert msg.ergebnis.code == "01" and msg.vorgang == "05774032-2026-000001"
    # every code the table lists is in the shipped code list
    codes = set(
        re.findall(
            r"`(0\d)` ", DOC.read_text(encoding="utf-8").split("| `ergebnis` |")[1].split("\n")[0]
        )
    )
    listed = set(
        re.findall(
            r"<SimpleValue>(0\d)</SimpleValue>",
            rueckmeldung.CODELIST_PATH.read_text(encoding="utf-8"),
        )
    )
    assert codes and codes <= listed
