"""The inbox's HTTP routes, one :class:`~fastapi.APIRouter` per group, each answer declared as
the route's ``response_model`` (:mod:`.schemas`) — except the fetch of a message, whose answer
is the XML as delivered.

==========  ================================================================================
service     ``GET /healthz``
messages    ``POST /v1/messages``, ``GET /v1/messages/{uuid}/status``
mailbox     ``GET /v1/mailbox``, ``GET /v1/mailbox/{uuid}``, ``POST /v1/mailbox/{uuid}/ack``
==========  ================================================================================

Only HTTP happens here: authentication by bearer token, the content type, reading the body
within the size limit on the event loop, and handing over to :class:`.service.InboxService`
(one thread hop per message, at most ``InboxConfig.workers`` at a time).
"""

from __future__ import annotations

import functools
import hashlib
import uuid as uuid_module
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from ..directory import Agency
from .exceptions import ApiError
from .schemas import (
    AckModel,
    HealthModel,
    MailboxModel,
    ReceiptModel,
    StatusModel,
    error_responses,
)
from .service import RECIPIENT_HEADER, SHA512_HEADER, UUID_HEADER, InboxService, shown

__all__ = ["mailbox_routes", "message_routes", "service_routes"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="agencyToken",
    description="The bearer token of the calling agency (directory `token_env`).",
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Agency:
    """The authenticated calling agency (401 otherwise)."""
    service: InboxService = request.app.state.inbox
    return service.authenticate(credentials.credentials if credentials else None)


Caller = Annotated[Agency, Depends(_caller)]
MessageId = Annotated[uuid_module.UUID, PathParam(description="The message's nachrichtenUUID.")]
HeaderUuid = Annotated[
    str | None,
    Header(
        alias=UUID_HEADER,
        description="The message's nachrichtenUUID; checked against the message.",
    ),
]
HeaderRecipient = Annotated[
    str | None,
    Header(
        alias=RECIPIENT_HEADER,
        description="Agency id of the recipient (this inbox's agency or a hosted mailbox); "
        "checked against the reader (leser) of the message.",
    ),
]


def _is_xml_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/xml", "text/xml"):
        return True
    return media.startswith("application/") and media.endswith("+xml")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size above ``limit`` without
    reading on."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(
                400, "bad_request", f"header Content-Length: {shown(declared)} is not a number"
            ) from None
        if size > limit:
            raise ApiError(
                413,
                "too_large",
                f"Content-Length {size} exceeds the limit of {limit} bytes",
                limit=limit,
                headers={"Connection": "close"},
            )
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(
                    413,
                    "too_large",
                    f"body exceeds the limit of {limit} bytes (stopped reading at {received})",
                    limit=limit,
                    headers={"Connection": "close"},
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(
            400, "incomplete_body", f"the client went away after {received} bytes of the body"
        ) from None
    return b"".join(chunks)


def service_routes(service: InboxService) -> APIRouter:
    """``GET /healthz``: liveness and the journal's schema (503 when unavailable)."""
    router = APIRouter(tags=["service"])

    @router.get(
        "/healthz",
        summary="Liveness and journal check",
        response_model=HealthModel,
        responses={503: {"model": HealthModel}},
    )
    def healthz(response: Response) -> dict[str, Any]:
        status, body = service.health()
        response.status_code = status
        return body

    return router


def message_routes(service: InboxService) -> APIRouter:
    """``POST /v1/messages`` (deliver) and ``GET /v1/messages/{uuid}/status`` (Laufzettel)."""
    cfg = service.config
    accept_slots = anyio.CapacityLimiter(cfg.workers)
    router = APIRouter(tags=["messages"])

    @router.post(
        "/v1/messages",
        summary="Deliver an XÖV message",
        status_code=202,
        response_model=ReceiptModel,
        responses={
            202: {"description": "Stored (first delivery)."},
            200: {"model": ReceiptModel, "description": "Repeat: stored before, same receipt."},
            **error_responses(400, 401, 403, 409, 413, 415, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": f"The XÖV message (at most {cfg.max_body_bytes} bytes).",
                "content": {
                    "application/xml": {"schema": {"type": "string", "format": "binary"}},
                    "text/xml": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def post_message(
        request: Request,
        response: Response,
        sender: Caller,
        x_nachrichten_uuid: HeaderUuid = None,
        x_empfaenger: HeaderRecipient = None,
    ) -> dict[str, Any]:
        if not _is_xml_type(request.headers.get("content-type")):
            media = shown(request.headers.get("content-type") or "")
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {media} is not XML; send application/xml",
            )
        body = await _read_body(request, cfg.max_body_bytes)
        status, receipt = await anyio.to_thread.run_sync(
            functools.partial(
                service.accept,
                body,
                sender,
                header_uuid=x_nachrichten_uuid,
                header_recipient=x_empfaenger,
            ),
            limiter=accept_slots,
        )
        response.status_code = status
        return receipt

    @router.get(
        "/v1/messages/{nachrichten_uuid}/status",
        summary="Transport report of a delivered message (for its sender)",
        response_model=StatusModel,
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def message_status(nachrichten_uuid: MessageId, agency: Caller) -> dict[str, Any]:
        return service.status(agency, str(nachrichten_uuid))

    return router


def mailbox_routes(service: InboxService) -> APIRouter:
    """The pull mailbox: list, fetch (the XML itself), acknowledge."""
    mailboxes = service.mailboxes
    router = APIRouter(tags=["mailbox"])

    @router.get(
        "/v1/mailbox",
        summary="List the messages waiting in the calling agency's mailbox",
        response_model=MailboxModel,
        responses=error_responses(401, 403, 422, 503),
    )
    def list_mailbox(
        agency: Caller,
        limit: int | None = Query(
            None,
            ge=1,
            le=service.config.mailbox_page_max,
            description="At most this many, oldest first.",
        ),
    ) -> dict[str, Any]:
        return mailboxes.list_messages(agency, limit)

    @router.get(
        "/v1/mailbox/{nachrichten_uuid}",
        summary="Fetch a message from the calling agency's mailbox",
        response_model=None,
        responses={
            200: {
                "description": "The XÖV message as delivered.",
                "content": {"application/xml": {"schema": {"type": "string"}}},
            },
            **error_responses(401, 403, 404, 422, 503),
        },
    )
    def fetch_message(nachrichten_uuid: MessageId, agency: Caller) -> Response:
        payload, delivery = mailboxes.fetch(agency, str(nachrichten_uuid))
        return Response(
            payload,
            media_type="application/xml",
            headers={
                UUID_HEADER: delivery.nachrichten_uuid,
                SHA512_HEADER: hashlib.sha512(payload).hexdigest(),
                "X-Delivery-State": delivery.state.value,
            },
        )

    @router.post(
        "/v1/mailbox/{nachrichten_uuid}/ack",
        summary="Confirm a fetched message (delivery state → fetched)",
        response_model=AckModel,
        responses=error_responses(401, 403, 404, 409, 422, 503),
    )
    def ack_message(nachrichten_uuid: MessageId, agency: Caller) -> dict[str, Any]:
        return mailboxes.ack(agency, str(nachrichten_uuid))

    return router
