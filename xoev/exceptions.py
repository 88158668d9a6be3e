"""Errors raised by the XÖV core.

Every error names what went wrong and where (file, line, column, namespace, path searched).
Findings about a *usable* message (schema, codelist, business rules) are never raised: they come
back as :class:`xoev.findings.Finding` in a :class:`xoev.findings.Report`. What is raised is input
that cannot be checked at all, or a registry that cannot check it::

    XoevError
    ├── UnusableInputError            the input cannot be checked (CLI exit 2)
    │   ├── InputTooLargeError        body larger than ParserConfig.max_bytes (checked first)
    │   ├── NotXMLError               not well-formed XML (line, column)
    │   ├── InputEncodingError        bytes do not match the declared/detected encoding, or the
    │   │                             declared encoding is unknown
    │   ├── NestingTooDeepError       elements nested deeper than ParserConfig.max_depth
    │   ├── TooMuchMarkupError        more tags or attributes than ParserConfig allows (an
    │   │                             element bomb: checked before the tree is built)
    │   ├── ForbiddenDoctypeError     a DOCTYPE (XÖV messages have none); rejected before expansion
    │   │   ├── ExternalEntityError   XXE: an entity declared with SYSTEM/PUBLIC
    │   │   ├── EntityDeclarationError  internal entity declarations (billion laughs)
    │   │   └── ExternalDTDError      DOCTYPE with an external subset (SYSTEM/PUBLIC)
    │   ├── UnknownDocumentError      root namespace belongs to no known standard version
    │   └── ContainerError            an xdomea container (x-man zip) breaks a rule; names the
    │       │                         container, the member and the rule; nothing is extracted
    │       ├── ContainerNameError    file name is not {ProzessID}_{Nachrichtenname}.zip
    │       ├── ContainerFormatError  not a readable zip: damaged, encrypted, sizes that lie,
    │       │                         a compression other than stored/deflated
    │       ├── ZipBombError          total, per-member, ratio or member-count limit exceeded
    │       ├── UnsafeMemberError     ``../``, absolute or non-flat name, symlink, special file
    │       ├── DuplicateMemberError  two members with the same name (also differing in case)
    │       ├── MissingMemberError    the message XML or a file its Dateiname names is missing
    │       ├── UnreferencedMemberError  a member that no Dateiname of the XML names
    │       └── ContainerMismatchError   the XML's ProzessID, root or type differ from the name
    ├── SchemaError                   the registry cannot check a known standard (CLI exit 2)
    │   ├── SchemaPathError           a --schema-path directory does not exist
    │   ├── SchemaUnavailableError    known namespace, but its XSD bundle was not found
    │   │   └── VersionNotBuiltInError  a version amtsbote knows of but does not ship
    │   │                             (XGewerbeanzeige 2.1, XGewerbeordnung): put its bundle on
    │   │                             the schema path
    │   ├── BundleError               a bundle on the schema path (bundle.yaml, its files, its
    │   │                             KoSIT configuration) cannot be used; names file and line
    │   └── SchemaCompileError        the XSD bundle was found but does not compile
    ├── CodelistError                 a genericode file cannot be read
    └── KositConfigError              a KoSIT validator configuration (scenarios.xml and its
                                      repository) cannot be used; names the file and line
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BundleError",
    "CodelistError",
    "ContainerError",
    "ContainerFormatError",
    "ContainerMismatchError",
    "ContainerNameError",
    "DuplicateMemberError",
    "EntityDeclarationError",
    "ExternalDTDError",
    "ExternalEntityError",
    "ForbiddenDoctypeError",
    "InputEncodingError",
    "InputTooLargeError",
    "KositConfigError",
    "MissingMemberError",
    "NestingTooDeepError",
    "NotXMLError",
    "SchemaCompileError",
    "SchemaError",
    "SchemaPathError",
    "SchemaUnavailableError",
    "TooMuchMarkupError",
    "UnknownDocumentError",
    "UnreferencedMemberError",
    "UnsafeMemberError",
    "UnusableInputError",
    "VersionNotBuiltInError",
    "XoevError",
    "ZipBombError",
]


class XoevError(Exception):
    """Base of everything the XÖV core raises."""


class UnusableInputError(XoevError):
    """The input cannot be checked at all. ``source`` names the input (file name or ``<bytes>``);
    ``line``/``column`` point into it where known."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.reason}"


class InputTooLargeError(UnusableInputError):
    def __init__(self, size: int, limit: int, *, source: str | None = None) -> None:
        super().__init__(
            f"input is {size} bytes, more than the limit of {limit} bytes (ParserConfig.max_bytes)",
            source=source,
        )
        self.size = size
        self.limit = limit


class TooMuchMarkupError(UnusableInputError):
    """More tags (``<``) or attribute assignments (``=``) than the parser's budget: a small body
    that would cost a large tree (an element bomb). Counted on the bytes, before parsing."""

    def __init__(self, what: str, count: int, limit: int, *, source: str | None = None) -> None:
        setting = "max_tags" if what == "tags" else "max_attributes"
        super().__init__(
            f"input has up to {count} {what}, more than the limit of {limit} "
            f"(ParserConfig.{setting}); refused before parsing",
            source=source,
        )
        self.what = what
        self.count = count
        self.limit = limit


class NotXMLError(UnusableInputError):
    """Not well-formed XML; ``line``/``column`` from the parser."""


class InputEncodingError(UnusableInputError):
    """Encoding problem: bytes invalid in the declared (or, undeclared, UTF-8) encoding, an unknown
    encoding name, or a declaration that contradicts the byte-order mark."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        declared: str | None = None,
    ) -> None:
        super().__init__(reason, source=source, line=line, column=column)
        self.declared = declared


class NestingTooDeepError(UnusableInputError):
    def __init__(
        self,
        limit: int,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(
            f"elements nested deeper than {limit} levels (ParserConfig.max_depth)",
            source=source,
            line=line,
            column=column,
        )
        self.limit = limit


class ForbiddenDoctypeError(UnusableInputError):
    """The document has a DOCTYPE. XÖV messages are defined by XML Schema and carry none; DOCTYPEs
    are the vehicle of XXE and entity-expansion attacks, so they are refused before parsing."""


class ExternalEntityError(ForbiddenDoctypeError):
    """XXE: an entity declared with ``SYSTEM``/``PUBLIC`` (would read a file or URL)."""


class EntityDeclarationError(ForbiddenDoctypeError):
    """Internal entity declarations (the billion-laughs expansion bomb and its relatives)."""


class ExternalDTDError(ForbiddenDoctypeError):
    """``<!DOCTYPE x SYSTEM "…">``: an external DTD that would be loaded."""


class UnknownDocumentError(UnusableInputError):
    """The root element's namespace is not one of a known standard version."""

    def __init__(
        self,
        namespace: str | None,
        root: str,
        supported: Sequence[str],
        *,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        ns = f"namespace {namespace}" if namespace else "no namespace"
        listing = ", ".join(supported) if supported else "none"
        reason = (
            f"unknown document: root element {root} has {ns}, which is not a supported XÖV "
            f"standard version (supported: {listing})"
        )
        if hint:
            reason += f"; {hint}"
        super().__init__(reason, source=source, line=1)
        self.namespace = namespace
        self.root = root
        self.supported = tuple(supported)


class ContainerError(UnusableInputError):
    """A container breaks a rule. ``source`` is the container, ``member`` the zip member concerned
    (None for the container as a whole), ``rule`` a short identifier (``zip-bomb:ratio``, …)."""

    def __init__(
        self, reason: str, *, rule: str, source: str | None = None, member: str | None = None
    ) -> None:
        super().__init__(reason, source=source)
        self.rule = rule
        self.member = member

    def __str__(self) -> str:
        where = self.source or "<container>"
        if self.member is not None:
            where += f": member {self.member!r}"
        return f"{where}: {self.reason} (rule {self.rule})"


class ContainerNameError(ContainerError):
    """The file name is not ``{ProzessID}_{Nachrichtenname}.zip`` of a known message."""


class ContainerFormatError(ContainerError):
    """Not a readable zip: damaged, encrypted, sizes that lie, unknown compression."""


class ZipBombError(ContainerError):
    """Total, per-member, compression-ratio or member-count limit exceeded."""


class UnsafeMemberError(ContainerError):
    """``../``, absolute or non-flat member name, symlink or other special file."""


class DuplicateMemberError(ContainerError):
    """Two members with the same name (also when they differ in case only)."""


class MissingMemberError(ContainerError):
    """The message XML, or a primary file its ``Dateiname`` names, is missing."""


class UnreferencedMemberError(ContainerError):
    """A member that no ``Dateiname`` of the message names."""


class ContainerMismatchError(ContainerError):
    """The XML's ProzessID, root element or type differ from the file name."""


class SchemaError(XoevError):
    """The registry cannot check a known standard version."""


class SchemaPathError(SchemaError):
    def __init__(self, path: str, problem: str = "is not a directory") -> None:
        super().__init__(f"schema path {path} {problem}")
        self.path = path


class SchemaUnavailableError(SchemaError):
    """A known namespace whose XSD bundle is neither built in nor on the schema path."""

    def __init__(
        self,
        *,
        standard: str,
        version: str,
        namespace: str,
        entry_name: str | None,
        searched: Sequence[str],
    ) -> None:
        where = (
            f"searched recursively in {', '.join(searched)}"
            if searched
            else "the schema path is empty"
        )
        super().__init__(
            f"{standard} {version} ({namespace}): schema entry file {entry_name or '?'} not found "
            f"({where}); give the directory holding it with --schema-path or AMTSBOTE_SCHEMA_PATH"
        )
        self.standard = standard
        self.version = version
        self.namespace = namespace
        self.entry_name = entry_name
        self.searched = tuple(searched)


class VersionNotBuiltInError(SchemaUnavailableError):
    """A namespace of a version amtsbote knows of but does not ship (XGewerbeanzeige 2.0/2.1,
    XGewerbeordnung), with no bundle for it on the schema path."""

    def __init__(
        self,
        *,
        standard: str,
        version: str,
        namespace: str,
        searched: Sequence[str],
        hint: str | None = None,
    ) -> None:
        where = f"searched: {', '.join(searched)}" if searched else "the schema path is empty"
        reason = (
            f"{standard} {version} is not built in; put its bundle on the schema path "
            f"(--schema-path DIR or AMTSBOTE_SCHEMA_PATH; {where}). Namespace {namespace}; "
            f'see docs/xoev.md, "Versions by configuration"'
        )
        if hint:
            reason += f"; {hint}"
        SchemaError.__init__(self, reason)
        self.standard = standard
        self.version = version
        self.namespace = namespace
        self.entry_name = None
        self.searched = tuple(searched)


class _LocatedError(XoevError):
    """An error about a configuration file, shown ``path:line: reason``."""

    unnamed = "<file>"

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = self.path or self.unnamed
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.reason}"


class BundleError(_LocatedError, SchemaError):
    """A bundle on the schema path cannot be used: its ``bundle.yaml`` is not valid, names a
    missing file or one outside the bundle folder, or its KoSIT configuration is broken.
    ``path``/``line`` point at the cause."""

    unnamed = "<bundle>"


class SchemaCompileError(SchemaError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"schema {path} does not compile: {detail}")
        self.path = path
        self.detail = detail


class CodelistError(XoevError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"codelist {path}: {detail}")
        self.path = path
        self.detail = detail


class KositConfigError(_LocatedError):
    """A KoSIT validator configuration cannot be used: ``scenarios.xml`` is not well-formed or not
    valid against the scenario schema, an XPath does not compile, a resource is missing or outside
    the repository, a stylesheet or schema does not compile. ``path``/``line`` point at the
    cause."""

    unnamed = "<configuration>"
