"""Validate one XÖV message: the top-level API.

:func:`validate` runs the whole chain on untrusted bytes:

1. hardened parse (:mod:`xoev.parsing`) — hostile or unusable input raises
   :class:`~xoev.exceptions.UnusableInputError` (no report);
2. standard and version from the root namespace (:class:`~xoev.registry.SchemaRegistry`) —
   an unknown namespace raises :class:`~xoev.exceptions.UnknownDocumentError`, a known one
   without a bundle :class:`~xoev.exceptions.SchemaUnavailableError`;
3. XML Schema (compiled once per registry), findings ``xsd:…``;
4. codelists (:mod:`xoev.codelists`), findings ``codelist`` — not where the schema already
   refused the same code (an enumeration that is also a code list: one defect, one finding);
5. only when the schema check passed: the version's business rules (``StandardVersion.rules``),
   or for a standard without rules of its own the header rules (:mod:`xoev.header`: the Kopf
   names the message's own type, author and reader);
6. the Schematron of the KoSIT configuration a bundle names (``StandardVersion.kosit``,
   :mod:`xoev.bundles`), also only when the schema check passed: its findings (``kosit:…`` and the
   assertion ids) join the report; a broken configuration raises
   :class:`~xoev.exceptions.BundleError`.

The default registry is created on first use and shared (thread-safe), so the hot path never
recompiles a schema.
"""

from __future__ import annotations

import os

from lxml import etree

from .findings import Report
from .header import header_findings
from .message import message_ids, type_from_root
from .namespaces import split_tag
from .parsing import ParserConfig, parse_xml, read_input
from .registry import SchemaRegistry, default_registry
from .xsd import schema_findings

__all__ = ["validate", "validate_file", "validate_tree"]


def validate(
    data: bytes,
    *,
    source: str = "<bytes>",
    registry: SchemaRegistry | None = None,
    config: ParserConfig | None = None,
) -> Report:
    """Check a message given as bytes; ``source`` names it in the report and in errors."""
    tree = parse_xml(data, config=config, source=source)
    return validate_tree(tree, source=source, registry=registry, data=data)


def validate_tree(
    tree: etree._ElementTree,
    *,
    source: str = "<tree>",
    registry: SchemaRegistry | None = None,
    data: bytes | None = None,
) -> Report:
    """Check an already parsed tree (parse it with :func:`xoev.parsing.parse_xml`). ``data``: the
    bytes it was parsed from, if at hand (a bundle's KoSIT step checks them, so that its findings
    carry the lines of the input; else the serialised tree)."""
    reg = registry or default_registry()
    sv = reg.detect(tree, source=source)
    compiled = reg.schema(sv)
    root = tree.getroot()
    uuid, type_code = message_ids(root, sv.namespace)
    if type_code is None:
        local = split_tag(root.tag)[1]
        mt = sv.message_type_for_root(local)
        type_code = mt.code if mt is not None else type_from_root(local)
    report = Report(
        source=source,
        standard=sv.standard,
        version=sv.version,
        message_type=type_code,
        nachrichten_uuid=uuid,
    )
    ok, entries = compiled.validate(tree)
    if not ok:
        report.findings.extend(schema_findings(compiled, tree, entries))
    codelists = reg.codelists
    if len(codelists):
        found = codelists.check(tree, code_bindings=sv.code_bindings)
        if not ok and found:  # one defect, one finding: the schema's, where it saw the code
            seen = {f.xpath for f in report.findings}
            found = [
                f
                for f in found
                if f.rule != "codelist" or (f.xpath not in seen and f"{f.xpath}/code" not in seen)
            ]
        report.findings.extend(found)
    if ok:
        # the standard's own rules, or the header rules every standard gets
        report.findings.extend(
            sv.rules(tree) if sv.rules is not None else header_findings(tree, sv)
        )
    if ok and sv.kosit is not None:
        kosit = reg.kosit(sv)
        if kosit is not None:
            report.findings.extend(
                kosit.check(data or etree.tostring(tree), source=source).findings
            )
    return report


def validate_file(
    path: str | os.PathLike[str],
    *,
    registry: SchemaRegistry | None = None,
    config: ParserConfig | None = None,
) -> Report:
    """:func:`validate` for a file (size checked before reading)."""
    data = read_input(path, config=config)
    return validate(data, source=os.fspath(path), registry=registry, config=config)
