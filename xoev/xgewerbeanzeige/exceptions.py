"""Errors raised by the XGewerbeanzeige package.

Reading a message into the model (:func:`xoev.xgewerbeanzeige.v2_2.parse`) raises a
:class:`ParseError`; they are :class:`xoev.exceptions.UnusableInputError` as well, so the CLI maps
them to exit 2. Writing a message (:func:`~xoev.xgewerbeanzeige.v2_2.build`) raises a
:class:`BuildError` carrying the findings. Messages name the XÖV element, line and XPath but never
echo element values (they may be personal data)::

    XoevError                               (xoev.exceptions)
    └── XGewerbeanzeigeError
        ├── ParseError                      also xoev.exceptions.UnusableInputError
        │   ├── NotXGewerbeanzeigeError     root element is not in the XGewerbeanzeige 2.2 namespace
        │   ├── UnknownMessageTypeError     right namespace, but the root element names no message
        │   │                               type of the table (types_v2_2.yaml)
        │   └── StructureError              an element is missing, unexpected, unknown or holds an
        │                                   invalid value (element, line, XPath)
        ├── UnknownTableEntryError          a message type / data group name not in the table
        ├── TableError                      a packaged data table (types_v2_2.yaml,
        │                                   codelists_v2_2.yaml) is inconsistent (file, entry)
        └── BuildError                      model → XML: the document fails the XSD or a business
                                            rule (``findings``); nothing is returned
"""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import UnusableInputError, XoevError
from ..findings import Finding

__all__ = [
    "BuildError",
    "NotXGewerbeanzeigeError",
    "ParseError",
    "StructureError",
    "TableError",
    "UnknownMessageTypeError",
    "UnknownTableEntryError",
    "XGewerbeanzeigeError",
]


class XGewerbeanzeigeError(XoevError):
    """Base of everything this package raises."""


class ParseError(XGewerbeanzeigeError, UnusableInputError):
    """The bytes or tree cannot be read into the model."""


class NotXGewerbeanzeigeError(ParseError):
    """The root element is not an XGewerbeanzeige 2.2 element."""

    def __init__(
        self,
        root: str,
        namespace: str | None,
        expected: str,
        *,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        ns = f"namespace {namespace}" if namespace else "no namespace"
        super().__init__(
            f"not an XGewerbeanzeige 2.2 message: root element <{root}> has {ns}, "
            f"expected namespace {expected}",
            source=source,
            line=line,
        )
        self.root = root
        self.namespace = namespace
        self.expected = expected


class UnknownMessageTypeError(ParseError):
    """Namespace of XGewerbeanzeige 2.2, but the root element is no known message type."""

    def __init__(
        self,
        root: str,
        known: Sequence[str],
        *,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(
            f"root element <{root}> is not an XGewerbeanzeige 2.2 message type "
            f"(known: {', '.join(known)})",
            source=source,
            line=line,
        )
        self.root = root
        self.known = tuple(known)


class StructureError(ParseError):
    """An element is missing, unexpected, unknown or has an invalid value."""

    def __init__(
        self,
        reason: str,
        *,
        element: str,
        xpath: str | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(reason, source=source, line=line)
        self.element = element
        self.xpath = xpath

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.xpath:
            where += f" {self.xpath}"
        return f"{where}: {self.reason}"


class UnknownTableEntryError(XGewerbeanzeigeError, KeyError):
    """A message type or data group that the table does not define."""

    def __init__(self, what: str, name: str, known: Sequence[str]) -> None:
        super().__init__(what, name)
        self.what = what
        self.name = name
        self.known = tuple(known)

    def __str__(self) -> str:
        return f"unknown {self.what} {self.name!r} (known: {', '.join(self.known)})"


class TableError(XGewerbeanzeigeError):
    """A packaged data table is inconsistent; names the file and the entry."""

    def __init__(self, file: str, entry: str, problem: str) -> None:
        super().__init__(f"{file}: {entry}: {problem}")
        self.file = file
        self.entry = entry
        self.problem = problem


class BuildError(XGewerbeanzeigeError):
    """The message built from the model is not valid; ``findings`` says why. The document is not
    returned (``validate=False`` is the explicit opt-out)."""

    def __init__(
        self,
        findings: Sequence[Finding],
        *,
        message_type: str | None = None,
        nachrichten_uuid: str | None = None,
    ) -> None:
        self.findings = tuple(findings)
        self.message_type = message_type
        self.nachrichten_uuid = nachrichten_uuid
        super().__init__(str(self))

    def __str__(self) -> str:
        head = "built XGewerbeanzeige message is invalid"
        if self.message_type:
            head += f" ({self.message_type}"
            if self.nachrichten_uuid:
                head += f", nachrichtenUUID {self.nachrichten_uuid}"
            head += ")"
        shown = "; ".join(str(f) for f in self.findings[:5])
        more = f"; … {len(self.findings) - 5} more" if len(self.findings) > 5 else ""
        return f"{head}: {len(self.findings)} finding(s): {shown}{more}"
