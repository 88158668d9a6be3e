"""Header rules every standard gets: the Kopf names the message's own type.

=============  =======  ===============================================================
XOEV-KOPF-01   error    the message type in the header (XÖV ``nachrichtenkopf`` …
                        ``nachrichtentyp``, xdomea ``Kopf/Nachrichtentyp``) is the type
                        of the root element (``Information.Information.0101`` → 0101)
XOEV-KOPF-02   error    the header names an author and a reader where the standard has
                        them: XÖV ``autor``/``leser``, xdomea ``Absender``/``Empfaenger``
                        (with a ``Behoerdenkennung`` or an ``Institution`` or a person)
=============  =======  ===============================================================

:func:`header_findings` runs after a passed schema check for a standard without business rules
of its own; a standard whose rules check the header themselves (XGewerbeanzeige: XGWA-R01)
keeps its own ids, so that one defect gives one finding.
"""

from __future__ import annotations

from lxml import etree

from .findings import Finding, Severity
from .message import type_from_root
from .namespaces import split_tag
from .standards import StandardVersion

__all__ = ["header_findings"]


def _child(parent: etree._Element | None, tag: str) -> etree._Element | None:
    return parent.find(tag) if parent is not None else None


def _has_content(element: etree._Element | None) -> bool:
    if element is None:
        return False
    return len(element) > 0 or bool((element.text or "").strip())


def header_findings(tree: etree._ElementTree, sv: StandardVersion) -> list[Finding]:
    """The header rules of the module docstring for a schema-valid message of ``sv``."""
    root = tree.getroot()
    q = f"{{{sv.namespace}}}"
    local = split_tag(root.tag)[1]
    known = sv.message_type_for_root(local)
    expected = known.code if known is not None else type_from_root(local)
    findings: list[Finding] = []
    head = root.find(f"{q}nachrichtenkopf")
    if head is not None:  # the XÖV Nachrichtenkopf
        type_el = _child(_child(head, f"{q}identifikation.nachricht"), f"{q}nachrichtentyp")
        parties = (("autor", head.find(f"{q}autor")), ("leser", head.find(f"{q}leser")))
    else:
        head = root.find(f"{q}Kopf")
        if head is None:
            return []
        type_el = head.find(f"{q}Nachrichtentyp")
        parties = (
            ("Absender", head.find(f"{q}Absender")),
            ("Empfaenger", head.find(f"{q}Empfaenger")),
        )
    code_el = _child(type_el, "code")
    named = (code_el.text or "").strip() if code_el is not None else None
    if expected is not None and named is not None and named != expected:
        assert code_el is not None
        findings.append(
            Finding(
                severity=Severity.ERROR,
                message=(
                    f"Nachrichtentyp {named} im Kopf passt nicht zum Wurzelelement {local} "
                    f"(Nachrichtentyp {expected})"
                ),
                rule="XOEV-KOPF-01",
                line=code_el.sourceline,
                xpath=tree.getpath(code_el),
            )
        )
    for name, element in parties:
        if not _has_content(element):
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    message=f"Der Kopf nennt kein(en) {name}",
                    rule="XOEV-KOPF-02",
                    line=(element if element is not None else head).sourceline,
                    xpath=tree.getpath(element if element is not None else head),
                )
            )
    return findings
