"""Acceptance: KoSIT's recommendation (accept / reject) for a checked document.

KoSIT's Prüftool (``ComputeAcceptanceAction``):

* no scenario, not well-formed, or the XML Schema step failed → reject;
* a scenario with ``acceptMatch`` → the XPath's boolean value on the *report* decides, even over
  Schematron errors;
* without ``acceptMatch`` → accept when the Schematron steps found nothing at error level.
  (KoSIT counts every failed assert here; amtsbote counts findings of severity error after the
  ``role``/``flag``/``customLevel`` mapping, so a rule the scenario lowers to ``warning`` does not
  reject.)

amtsbote does not run the scenario's ``createReport`` stylesheet (report stylesheets read files,
such as ``unparsed-text('some.txt')`` in KoSIT's example, which the hardened Saxon refuses).
``acceptMatch`` is evaluated on a report built here in KoSIT's report namespace (VARL,
``http://www.xoev.de/de/validator/varl/1``)::

    <rep:report valid="true|false">
      <rep:scenarioMatched name="Simple">
        <rep:validationStepResult id="xsd" valid="…">
          <rep:message level="error|warning|information" code="rule" xpathLocation="…"
                       lineNumber="…">text</rep:message> …
        </rep:validationStepResult>
        <rep:validationStepResult id="schematron.1" valid="…"> … </rep:validationStepResult>
      </rep:scenarioMatched>
      <rep:input> a copy of the input (as KoSIT's example report.xsl copies it) </rep:input>
    </rep:report>
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from lxml import etree

from ..findings import Finding, Severity

__all__ = ["VARL_NS", "StepResult", "build_report", "evaluate_accept_match"]

VARL_NS = "http://www.xoev.de/de/validator/varl/1"
_R = f"{{{VARL_NS}}}"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "information"}

StepResult = tuple[str, Sequence[Finding]]
"""A validation step's id (``xsd``, ``schematron.1`` …) and its findings."""


def build_report(
    scenario: str, steps: Sequence[StepResult], document: etree._ElementTree
) -> etree._ElementTree:
    """The report ``acceptMatch`` is evaluated on (layout in the module text)."""
    root = etree.Element(f"{_R}report", nsmap={"rep": VARL_NS})
    matched = etree.SubElement(root, f"{_R}scenarioMatched", name=scenario)
    all_valid = True
    for step_id, findings in steps:
        valid = not any(f.severity is Severity.ERROR for f in findings)
        all_valid = all_valid and valid
        step = etree.SubElement(
            matched, f"{_R}validationStepResult", id=step_id, valid=str(valid).lower()
        )
        for finding in findings:
            message = etree.SubElement(
                step, f"{_R}message", level=_LEVEL[finding.severity], code=finding.rule
            )
            if finding.xpath:
                message.set("xpathLocation", finding.xpath)
            if finding.line is not None:
                message.set("lineNumber", str(finding.line))
            message.text = finding.message
    root.set("valid", str(all_valid).lower())
    etree.SubElement(root, f"{_R}input").append(copy.deepcopy(document.getroot()))
    return etree.ElementTree(root)


def evaluate_accept_match(accept_match: etree.XPath, report: etree._ElementTree) -> bool:
    """The effective boolean value of ``acceptMatch`` (compiled as ``boolean(…)``) on ``report``."""
    return bool(accept_match(report))
