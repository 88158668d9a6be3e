"""Refusals: which :class:`~connectors.inbox.exceptions.ApiError` answers which problem, and the
exception handlers that render every error as ``{"error": code, "detail": text, ...}``
(:class:`~connectors.inbox.schemas.ErrorModel`).

=====================================  ===========================================================
``ApiError``                           its status, code, detail, extra fields and headers
``RequestValidationError``             422 ``invalid_request`` with ``errors`` (loc, msg)
Starlette ``HTTPException``            404 ``not_found``, 405 ``method_not_allowed``, ``http_NNN``
anything else                          500 ``internal_error``, logged by class name only
=====================================  ===========================================================
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from xoev.exceptions import (
    EntityDeclarationError,
    ExternalDTDError,
    ExternalEntityError,
    ForbiddenDoctypeError,
    InputEncodingError,
    InputTooLargeError,
    NestingTooDeepError,
    NotXMLError,
    TooMuchMarkupError,
    UnknownDocumentError,
    UnusableInputError,
)

from ..exceptions import JournalError
from .exceptions import ApiError

__all__ = [
    "install_error_handlers",
    "journal_unavailable",
    "request_validation_error",
    "unusable_input",
]

log = logging.getLogger("connectors.inbox")

_UNUSABLE_CODES: tuple[tuple[type[UnusableInputError], str], ...] = (
    (ExternalEntityError, "external_entity"),
    (EntityDeclarationError, "entity_declaration"),
    (ExternalDTDError, "external_dtd"),
    (ForbiddenDoctypeError, "doctype"),
    (InputEncodingError, "encoding"),
    (NestingTooDeepError, "too_deep"),
    (NotXMLError, "not_xml"),
)


def unusable_input(exc: UnusableInputError) -> ApiError:
    """The answer for input the hardened parser refused."""
    if isinstance(exc, InputTooLargeError):
        return ApiError(413, "too_large", str(exc), limit=exc.limit)
    if isinstance(exc, TooMuchMarkupError):
        return ApiError(413, "too_much_markup", str(exc), limit=exc.limit, what=exc.what)
    if isinstance(exc, UnknownDocumentError):
        return ApiError(
            422,
            "unknown_document",
            str(exc),
            namespace=exc.namespace,
            supported=list(exc.supported),
        )
    code = next((c for cls, c in _UNUSABLE_CODES if isinstance(exc, cls)), "unusable_input")
    return ApiError(400, code, str(exc), line=exc.line, column=exc.column)


def journal_unavailable(
    agency_id: str, operation: str, exc: JournalError, *, retry_after: int
) -> ApiError:
    """503 ``journal_unavailable`` (the journal failed in ``operation``; logged)."""
    log.error("inbox %s: journal failed in %s: %s", agency_id, operation, exc)
    return ApiError(
        503,
        "journal_unavailable",
        "the inbox's journal is unavailable; nothing was stored — retry later",
        headers={"Retry-After": str(retry_after)},
    )


def request_validation_error(exc: RequestValidationError) -> ApiError:
    """422 ``invalid_request`` for parameters FastAPI refused (``errors``: loc and msg)."""
    errors = []
    for item in exc.errors():
        loc = ".".join(str(part) for part in item.get("loc", ()))
        errors.append({"loc": loc, "msg": str(item.get("msg", ""))})
    text = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid request"
    return ApiError(422, "invalid_request", text, errors=errors)


CLOSE_AFTER = frozenset({401, 403, 413, 429})
"""Refusals after which the connection is closed: the caller's body is not read (drained)."""


def install_error_handlers(app: FastAPI, *, agency_id: str) -> None:
    """Register the handlers of the table above on ``app`` (the inbox of ``agency_id``)."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status >= 500:
            log.warning(
                "inbox %s: %s %s → %s", agency_id, request.method, request.url.path, exc.code
            )
        headers = dict(exc.headers or {})
        if exc.status in CLOSE_AFTER:
            # answered before the body was read: close rather than drain what a refused (or
            # throttled) caller keeps sending
            headers["Connection"] = "close"
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return await api_error(request, request_validation_error(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"no such resource: {request.method} {request.url.path}"
        return JSONResponse(
            {"error": code, "detail": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error(
            "inbox %s: %s %s failed: %s",
            agency_id,
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return JSONResponse(
            {"error": "internal_error", "detail": "internal error; nothing was accepted"},
            status_code=500,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
