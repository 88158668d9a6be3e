"""What the registry knows about one version of one XÖV standard.

A standard package (``xoev/xgewerbeanzeige/``, ``xoev/xdomea/``) describes each version it supports
with a :class:`StandardVersion`; the registry (``xoev.registry``) keys them by root namespace,
compiles each XSD bundle once and runs schema, codelist and business-rule checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from .findings import Finding

__all__ = ["MessageType", "RuleCheck", "StandardVersion"]

#: A business-rule check: gets the parsed document, returns findings (empty when all rules hold).
RuleCheck = Callable[[etree._ElementTree], list[Finding]]


@dataclass(frozen=True, slots=True)
class MessageType:
    """One message of a standard: its code (``0500``), root element local name and description."""

    code: str
    root: str
    description: str


@dataclass(frozen=True)
class StandardVersion:
    standard: str
    """Name of the standard, e.g. ``XGewerbeanzeige``."""
    version: str
    """Version, e.g. ``2.2``."""
    namespace: str
    """Target namespace of the message schema; the version is detected from it."""
    schema: Path | None
    """Entry XSD of the bundle. ``None`` for a standard known by namespace whose bundle must come
    from the schema path (a bundle the operator supplies)."""
    origin: str = "built-in"
    """Where the schema came from: ``built-in`` or the schema-path directory."""
    entry_name: str | None = None
    """File name searched for on the schema path when ``schema`` is None (e.g. ``xdomea.xsd``)."""
    message_types: tuple[MessageType, ...] = ()
    rules: RuleCheck | None = None
    codelists: tuple[Path, ...] = ()
    """Genericode files that belong to this version (loaded into the codelist registry)."""
    code_bindings: Mapping[str, str] = field(default_factory=dict)
    """Element local name → listURI, for code elements whose list the standard fixes (code types
    1 and 2) so that the instance need not carry ``listURI``."""
    kosit: Path | None = None
    """A KoSIT validator configuration (``scenarios.xml`` or its folder) whose Schematron runs after
    the XSD check (set by a bundle's ``bundle.yaml``, :mod:`xoev.bundles`)."""
    kosit_repository: Path | None = None
    """Folder the KoSIT configuration's resource locations are relative to (KoSIT's ``-r``)."""
    configured_by: str | None = None
    """How a version from the schema path was configured: the path of its ``bundle.yaml``, or
    ``targetNamespace`` when standard and version come from the namespace (:mod:`xoev.bundles`).
    None for versions of a standard package."""
    in_reply_to_element: str | None = None
    """Local name of the child of the root that holds the nachrichtenUUID a reply answers (e.g.
    ``bezug`` in a Rückmeldung); :func:`xoev.message.inspect_message` reads it into
    ``MessageInfo.in_reply_to`` so that the journal can correlate the reply."""

    def message_type_for_root(self, local_name: str) -> MessageType | None:
        for mt in self.message_types:
            if mt.root == local_name:
                return mt
        return None
