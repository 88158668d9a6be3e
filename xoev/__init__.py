"""amtsbote's XÖV core: pure standards code (no Prefect, no network, no database).

Hardened XML intake (:mod:`xoev.parsing`), the registry of standards and their XSD bundles
(:mod:`xoev.registry`), codelists (:mod:`xoev.codelists`), message headers (:mod:`xoev.message`)
and the top-level :func:`validate`.
"""

from __future__ import annotations

from .code import Code
from .codelists import Codelist, CodelistRegistry, load_genericode
from .exceptions import (
    CodelistError,
    EntityDeclarationError,
    ExternalDTDError,
    ExternalEntityError,
    ForbiddenDoctypeError,
    InputEncodingError,
    InputTooLargeError,
    NestingTooDeepError,
    NotXMLError,
    SchemaCompileError,
    SchemaError,
    SchemaPathError,
    SchemaUnavailableError,
    UnknownDocumentError,
    UnusableInputError,
    XoevError,
)
from .findings import Finding, Report, Severity
from .message import MessageInfo, inspect_message
from .parsing import ParserConfig, parse_file, parse_xml, read_input
from .registry import SchemaRegistry, default_registry, reset_default_registry
from .standards import MessageType, StandardVersion
from .validation import validate, validate_file, validate_tree
from .xsd import SchemaFinding

__all__ = [
    "Code",
    "Codelist",
    "CodelistError",
    "CodelistRegistry",
    "EntityDeclarationError",
    "ExternalDTDError",
    "ExternalEntityError",
    "Finding",
    "ForbiddenDoctypeError",
    "InputEncodingError",
    "InputTooLargeError",
    "MessageInfo",
    "MessageType",
    "NestingTooDeepError",
    "NotXMLError",
    "ParserConfig",
    "Report",
    "SchemaCompileError",
    "SchemaError",
    "SchemaFinding",
    "SchemaPathError",
    "SchemaRegistry",
    "SchemaUnavailableError",
    "Severity",
    "StandardVersion",
    "UnknownDocumentError",
    "UnusableInputError",
    "XoevError",
    "default_registry",
    "inspect_message",
    "load_genericode",
    "parse_file",
    "parse_xml",
    "read_input",
    "reset_default_registry",
    "validate",
    "validate_file",
    "validate_tree",
]
