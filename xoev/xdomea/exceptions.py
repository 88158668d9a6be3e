"""Errors raised by the xdomea package (Aussonderung models, build and parse).

Reading a message into the model (:func:`xoev.xdomea.aussonderung.parse`) raises a
:class:`ParseError`, which is a :class:`xoev.exceptions.UnusableInputError` too (CLI exit 2).
Writing one (:func:`~xoev.xdomea.aussonderung.build`) raises :class:`BuildError` with the findings.
Messages name the xdomea element, line and XPath but never echo element values::

    XoevError                               (xoev.exceptions)
    └── XdomeaError
        ├── ParseError                      also xoev.exceptions.UnusableInputError
        │   ├── NotAussonderungError        root is no xdomea 3.0.0/3.1.0 Aussonderung message
        │   │                               0501–0507 (names root and namespace)
        │   ├── InvalidMessageError         the message fails the XSD or a codelist (``findings``)
        │   └── StructureError              an element is missing, unexpected, unknown or holds
        │                                   an invalid value (element, line, XPath); also a
        │                                   xoev.nachrichtenkopf.NachrichtenkopfError
        ├── ModelError                      a model value that no message can carry (field, reason)
        └── BuildError                      model → XML fails the XSD or a codelist (``findings``);
                                            nothing is returned
"""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import UnusableInputError, XoevError
from ..findings import Finding
from ..nachrichtenkopf import NachrichtenkopfError

__all__ = [
    "BuildError",
    "InvalidMessageError",
    "ModelError",
    "NotAussonderungError",
    "ParseError",
    "StructureError",
    "XdomeaError",
]


def _first(findings: Sequence[Finding], limit: int = 3) -> str:
    shown = "; ".join(str(f) for f in findings[:limit])
    more = len(findings) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


class XdomeaError(XoevError):
    """Base of everything this package raises."""


class ParseError(XdomeaError, UnusableInputError):
    """The bytes or tree cannot be read into the model."""


class NotAussonderungError(ParseError):
    def __init__(
        self,
        root: str,
        namespace: str | None,
        known: Sequence[str],
        *,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        ns = f"namespace {namespace}" if namespace else "no namespace"
        super().__init__(
            f"not an xdomea Aussonderung message: root element <{root}> has {ns} "
            f"(known: {', '.join(known)})",
            source=source,
            line=line,
        )
        self.root = root
        self.namespace = namespace


class InvalidMessageError(ParseError):
    """The message is not valid against its xdomea bundle or codelists."""

    def __init__(self, findings: Sequence[Finding], *, source: str | None = None) -> None:
        self.findings = tuple(findings)
        super().__init__(
            f"invalid xdomea message ({len(self.findings)} findings): {_first(self.findings)}",
            source=source,
        )


class StructureError(ParseError, NachrichtenkopfError):
    """Element-level problem; ``element`` (local name), ``xpath`` and ``line`` say where (the
    fields and text of :class:`xoev.nachrichtenkopf.NachrichtenkopfError`)."""


class ModelError(XdomeaError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BuildError(XdomeaError):
    def __init__(self, findings: Sequence[Finding], *, message_type: str, version: str) -> None:
        self.findings = tuple(findings)
        self.message_type = message_type
        self.version = version
        super().__init__(
            f"xdomea {version} {message_type} would be invalid ({len(self.findings)} findings): "
            f"{_first(self.findings)}"
        )
