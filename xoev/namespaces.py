"""Namespace URIs used across the XÖV core, and small helpers for Clark-notation tags.

lxml spells a qualified name as ``{namespace}local`` (Clark notation); XÖV ``Code`` children
(``code``, ``name``) are unqualified and therefore have no braces at all.
"""

from __future__ import annotations

__all__ = [
    "GENERICODE",
    "XDOMEA_3_0_0",
    "XDOMEA_3_1_0",
    "XGEWERBEANZEIGE_2_2",
    "XOEV_CODE",
    "XSD",
    "XSI",
    "clark",
    "local_name",
    "namespace_of",
    "split_tag",
]

XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
GENERICODE = "http://docs.oasis-open.org/codelist/ns/genericode/1.0/"
"""OASIS genericode 1.0, the format of XÖV codelists."""
XOEV_CODE = "http://xoev.de/schemata/code/1_0"
"""The XÖV ``Code`` datatype (xoev-code.xsd)."""
XGEWERBEANZEIGE_2_2 = "http://www.xgewerbeanzeige.de/spezifikation/2.2"
XDOMEA_3_0_0 = "urn:xoev-de:xdomea:schema:3.0.0"
"""``targetNamespace`` of the official xdomea 3.0.0 ``xdomea.xsd``."""
XDOMEA_3_1_0 = "urn:xoev-de:xdomea:schema:3.1.0"
"""``targetNamespace`` of the official xdomea 3.1.0 ``xdomea.xsd``."""


def clark(namespace: str | None, local: str) -> str:
    """``{namespace}local``, or just ``local`` for no namespace."""
    return f"{{{namespace}}}{local}" if namespace else local


def split_tag(tag: str) -> tuple[str | None, str]:
    """``"{ns}local"`` → ``("ns", "local")``; ``"local"`` → ``(None, "local")``."""
    if tag[:1] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def namespace_of(tag: str) -> str | None:
    return split_tag(tag)[0]
