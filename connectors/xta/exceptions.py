"""Exceptions of the XTA 2 connector (``connectors.xta``).

::

    ConnectorError                       (connectors.exceptions)
    └── XtaError                         anything the XTA layer refuses or cannot do
        ├── SoapError                    a request that is no usable SOAP 1.2 envelope (not XML,
        │                                DTD/entities, too large, no Body, wrong envelope)
        ├── MtomError                    a multipart/related (MTOM/XOP) body that cannot be read:
        │                                no boundary, missing part, cid not found, over the limit
        ├── MetadataError                MessageMetaData missing, unreadable or contradicting the
        │                                message's Nachrichtenkopf (``field`` names what)
        ├── XtaSchemaError               a built element is not valid against the official XSDs
        └── XtaFault                     an answer as SOAP 1.2 fault with one of the WSDL's fault
                                         details (``kind``, error code from Code.Fehlernummer)

:class:`XtaFault` carries what the fault answer needs; the other errors are translated into a
fault (or an HTTP 4xx before SOAP) by the server. Texts never quote payload content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exceptions import ConnectorError

__all__ = [
    "MetadataError",
    "MtomError",
    "SoapError",
    "XtaError",
    "XtaFault",
    "XtaSchemaError",
]


class XtaError(ConnectorError):
    """Base of the XTA connector's errors."""


class _RequestError(XtaError):
    """A request body that cannot be read; ``too_large``: refused by its size."""

    def __init__(self, problem: str, *, too_large: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.too_large = too_large

    def __str__(self) -> str:
        return self.problem


class SoapError(_RequestError):
    """The request is no usable SOAP 1.2 envelope. ``too_large``: refused by its size."""


class MtomError(_RequestError):
    """The multipart/related body cannot be read. ``too_large``: over the byte limit."""


class MetadataError(XtaError):
    """MessageMetaData is unusable or contradicts the message; ``field`` names the element."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return f"MessageMetaData {self.field}: {self.problem}"


class XtaSchemaError(XtaError):
    """A built element does not validate against the official XSDs; ``errors`` lists why."""

    def __init__(self, element: str, errors: Sequence[str]) -> None:
        super().__init__(element, tuple(errors))
        self.element = element
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return f"{self.element} is not valid against the XTA 2.1.1 XSDs: {'; '.join(self.errors)}"


class XtaFault(XtaError):
    """A SOAP 1.2 fault with an XTA detail.

    ``kind``: local name of the detail element (``PermissionDeniedException``,
    ``ParameterIsNotValidException``, ``MessageSchemaViolationException``,
    ``InvalidMessageIDException``, ``XTAWSTechnicalProblemException``, ``CancelDeniedException``,
    ``SyncAsyncException``); ``code``: XTA Fehlernummer (9000–9101); ``reason``: text for humans;
    ``sender_fault``: Code ``s12:Sender`` (the request's fault) or ``s12:Receiver`` (ours);
    ``findings``: XÖV findings (dicts) shown in our own detail element; ``status``: HTTP status."""

    def __init__(
        self,
        kind: str,
        code: str,
        reason: str,
        *,
        sender_fault: bool = True,
        findings: Sequence[dict[str, Any]] = (),
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(kind, code, reason)
        self.kind = kind
        self.code = code
        self.reason = reason
        self.sender_fault = sender_fault
        self.findings = tuple(findings)
        self.status = status or (400 if sender_fault else 500)
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"XTA {self.kind} {self.code}: {self.reason}"
