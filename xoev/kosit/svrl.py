"""SVRL (Schematron Validation Report Language) → findings.

``svrl:failed-assert`` and ``svrl:successful-report`` become :class:`~xoev.findings.Finding`:
``rule`` is the assertion's ``id`` (``schematron`` when it has none), ``xpath`` its ``location``,
``message`` its ``svrl:text``. The severity is the scenario's ``customLevel`` for that id if there
is one, else the ``role`` or ``flag`` as KoSIT's reports read them — ``fatal``/``error`` → error,
``warning``/``warn`` → warning, ``info``/``information`` → info — and error when neither says.

``location`` is XPath 2.0 as Schematron skeletons write it (``/*:a[namespace-uri()='…'][1]``); it
is rewritten to XPath 1.0 to find the element in the input tree for the line number (best effort:
a location that does not translate leaves the line empty).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

from ..findings import Finding, Severity

__all__ = ["SVRL_NS", "findings_from_svrl", "severity_of"]

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_V = f"{{{SVRL_NS}}}"
_KINDS = {f"{_V}failed-assert": "failed assert", f"{_V}successful-report": "report"}
_ROLES = {
    "fatal": Severity.ERROR,
    "error": Severity.ERROR,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "info": Severity.INFO,
    "information": Severity.INFO,
}
_WILDCARD_STEP = re.compile(r"\*:([\w.\-]+)")
_SVRL_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def severity_of(
    rule: str | None, role: str | None, flag: str | None, custom: Mapping[str, Severity]
) -> Severity:
    """customLevel for ``rule``, else role, else flag, else error."""
    if rule and rule in custom:
        return custom[rule]
    for value in (role, flag):
        if value and value.strip().lower() in _ROLES:
            return _ROLES[value.strip().lower()]
    return Severity.ERROR


def _line(location: str | None, tree: etree._ElementTree | None) -> int | None:
    if not location or tree is None:
        return None
    xpath1 = _WILDCARD_STEP.sub(r"*[local-name()='\1']", location)
    try:
        hits = tree.xpath(xpath1)
    except etree.XPathError:
        return None
    if isinstance(hits, list) and hits:
        node = hits[0]
        if isinstance(node, etree._Element):
            return node.sourceline
        parent = getattr(node, "getparent", lambda: None)()
        return parent.sourceline if parent is not None else None
    return None


def findings_from_svrl(
    svrl: str | bytes,
    *,
    custom_levels: Mapping[str, Severity],
    tree: etree._ElementTree | None = None,
) -> list[Finding]:
    """The findings in an SVRL document (``svrl`` as produced by the stylesheet)."""
    data = svrl.encode("utf-8") if isinstance(svrl, str) else svrl
    root = etree.fromstring(data, _SVRL_PARSER)  # XMLSyntaxError: the caller reports it
    found: list[Finding] = []
    for element in root.iter(*_KINDS):
        rule = element.get("id")
        text_el = element.find(f"{_V}text")
        text = " ".join("".join(text_el.itertext()).split()) if text_el is not None else ""
        location = element.get("location")
        found.append(
            Finding(
                severity=severity_of(rule, element.get("role"), element.get("flag"), custom_levels),
                message=text or f"Schematron {_KINDS[element.tag]} {element.get('test', '')}",
                rule=rule or "schematron",
                line=_line(location, tree),
                xpath=location,
            )
        )
    return found
