"""The inbox's HTTP routes, one :class:`~fastapi.APIRouter` per group, each answer declared as
the route's ``response_model`` (:mod:`.schemas`) — except the fetch of a message, whose answer
is the XML as delivered.

==========  ================================================================================
service     ``GET /healthz``
messages    ``POST /v1/messages``, ``GET /v1/messages/{uuid}/status``
mailbox     ``GET /v1/mailbox``, ``GET /v1/mailbox/{uuid}``, ``POST /v1/mailbox/{uuid}/ack``
==========  ================================================================================

Only HTTP happens here: authentication (client certificate and/or bearer token, one rule in
:mod:`.identity`), the content type, reading the body within the size limit on the event loop,
and handing over to :class:`.service.InboxService`
(one thread hop per message, at most ``InboxConfig.workers`` at a time). A delivery is admitted
to the inbox's :class:`.fairqueue.FairQueue` right after authentication, before its body is
read (429/503 with ``Retry-After`` when its sender's or the inbox's queue is full), and waits
there for a worker, handed out round-robin by sender.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
import uuid as uuid_module
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from xoev.exceptions import TooMuchMarkupError

from ..directory import Agency
from .containers import CONTAINER_TYPE, sha512_of
from .errors import unusable_input
from .exceptions import ApiError
from .fairqueue import FairQueue, Ticket
from .schemas import (
    AckModel,
    HealthModel,
    MailboxModel,
    ReceiptModel,
    StatusModel,
    error_responses,
)
from .service import RECIPIENT_HEADER, SHA512_HEADER, UUID_HEADER, InboxService, shown

__all__ = ["DOCS_ASSETS", "docs_routes", "mailbox_routes", "message_routes", "service_routes"]

_SPOOL_STEP = 1 << 20
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="agencyToken",
    description="The bearer token of the calling agency (directory `token_env`).",
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Agency:
    """The calling agency, identified by its client certificate (mutual TLS, read from the
    request's scope) and/or its bearer token (:meth:`InboxService.identify`; 401 otherwise).
    The dependency of every route group: ``Annotated[Agency, Depends(_caller)]``."""
    service: InboxService = request.app.state.inbox
    return service.identify(request.scope, credentials.credentials if credentials else None)


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


def _is_container_type(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == CONTAINER_TYPE


def _is_xml_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/xml", "text/xml"):
        return True
    return media.startswith("application/") and media.endswith("+xml")


async def _read_body(request: Request, limit: int, *, max_tags: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size above ``limit``, or more
    than ``max_tags`` ``<`` (the parser's element-bomb budget, counted as the chunks arrive),
    without reading on: a 10 MB element bomb costs the few MB up to the budget, not its whole
    upload."""
    _declared_size(request, limit)
    chunks: list[bytes] = []
    received = tags = 0
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
            tags += chunk.count(b"<")
            if tags > max_tags:
                raise unusable_input(
                    TooMuchMarkupError("tags", tags, max_tags, source="request body")
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(
            400, "incomplete_body", f"the client went away after {received} bytes of the body"
        ) from None
    return b"".join(chunks)


def _declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
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


async def _spool_body(request: Request, limit: int, target: Path) -> str:
    """Stream the request body into ``target`` (written in ~1 MiB steps in a worker thread,
    never whole in memory) within ``limit`` (413); returns its SHA-512 (hex)."""
    _declared_size(request, limit)
    digest = hashlib.sha512()
    received = 0
    pending: list[bytes] = []
    buffered = 0
    with target.open("wb") as out:
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
                digest.update(chunk)
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= _SPOOL_STEP:
                    await anyio.to_thread.run_sync(out.write, b"".join(pending))
                    pending, buffered = [], 0
        except ClientDisconnect:
            raise ApiError(
                400,
                "incomplete_body",
                f"the client went away after {received} bytes of the body",
            ) from None
        if pending:
            await anyio.to_thread.run_sync(out.write, b"".join(pending))
    return digest.hexdigest()


DOCS_ASSETS = "/docs/assets"
"""Where ``create_app`` mounts Swagger UI's files (the ``swagger-ui-bundle`` package)."""


def docs_routes(title: str) -> APIRouter:
    """``GET /docs``: the viewer of ``/openapi.json``, Swagger UI with every script, style and
    icon served by the inbox itself under :data:`DOCS_ASSETS` — no CDN, works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html

    router = APIRouter()

    @router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    return router


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


def message_routes(service: InboxService, queue: FairQueue) -> APIRouter:
    """``POST /v1/messages`` (deliver) and ``GET /v1/messages/{uuid}/status`` (Laufzettel);
    deliveries share ``queue``'s workers (with the XTA ports)."""
    cfg = service.config
    max_tags = cfg.parser_config().max_tags
    router = APIRouter(tags=["messages"])

    @router.post(
        "/v1/messages",
        summary="Deliver an XÖV message",
        status_code=202,
        response_model=ReceiptModel,
        responses={
            202: {"description": "Stored (first delivery)."},
            200: {"model": ReceiptModel, "description": "Repeat: stored before, same receipt."},
            **error_responses(400, 401, 403, 409, 413, 415, 422, 429, 500, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": f"The XÖV message (at most {cfg.max_body_bytes} bytes), or an "
                "xdomea container as `application/zip` (x-man layout: "
                "`{ProzessID}_{Nachrichtenname}.xml` plus the primary files its `Dateiname` "
                f"elements name; at most {cfg.max_container_bytes} bytes). For a container the "
                "receipt's `sha512` is the SHA-512 of the zip body.",
                "content": {
                    "application/xml": {"schema": {"type": "string", "format": "binary"}},
                    "text/xml": {"schema": {"type": "string", "format": "binary"}},
                    CONTAINER_TYPE: {"schema": {"type": "string", "format": "binary"}},
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
        content_type = request.headers.get("content-type")
        container = _is_container_type(content_type)
        if not container and not _is_xml_type(content_type):
            media = shown(content_type or "")
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {media} is neither XML nor {CONTAINER_TYPE}; send "
                "application/xml (or an xdomea container as application/zip)",
            )
        with queue.admit(sender.id) as ticket:
            if container:
                return await _post_container(
                    request, response, sender, ticket, x_nachrichten_uuid, x_empfaenger
                )
            body = await _read_body(request, cfg.max_body_bytes, max_tags=max_tags)
            status, receipt = await ticket.run_sync(
                functools.partial(
                    service.accept,
                    body,
                    sender,
                    header_uuid=x_nachrichten_uuid,
                    header_recipient=x_empfaenger,
                )
            )
        response.status_code = status
        return receipt

    async def _post_container(
        request: Request,
        response: Response,
        sender: Agency,
        ticket: Ticket,
        header_uuid: str | None,
        header_recipient: str | None,
    ) -> dict[str, Any]:
        spool = service.spool_dir
        await anyio.to_thread.run_sync(
            functools.partial(spool.mkdir, parents=True, exist_ok=True, mode=0o700)
        )
        tmp = Path(
            await anyio.to_thread.run_sync(
                functools.partial(tempfile.mkdtemp, dir=spool, prefix="body-")
            )
        )
        try:
            body = tmp / "body.zip.part"
            sha512 = await _spool_body(request, cfg.max_container_bytes, body)
            status, receipt = await ticket.run_sync(
                functools.partial(
                    service.accept_container,
                    body,
                    sender,
                    header_uuid=header_uuid,
                    header_recipient=header_recipient,
                    body_sha512=sha512,
                )
            )
        finally:
            await anyio.to_thread.run_sync(
                functools.partial(shutil.rmtree, tmp, ignore_errors=True)
            )
        response.status_code = status
        return receipt

    @router.get(
        "/v1/messages/{nachrichten_uuid}/status",
        summary="Transport report of a delivered message (for its sender)",
        response_model=StatusModel,
        responses=error_responses(401, 403, 404, 422, 429, 503),
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
        responses=error_responses(401, 403, 422, 429, 503),
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
                "description": "The XÖV message as delivered; a message delivered with primary "
                "files (xdomea container) as its container, rebuilt from the XML and the "
                "stored files (x-man layout).",
                "content": {
                    "application/xml": {"schema": {"type": "string"}},
                    CONTAINER_TYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **error_responses(401, 403, 404, 422, 429, 503),
        },
    )
    def fetch_message(nachrichten_uuid: MessageId, agency: Caller) -> Response:
        payload, delivery = mailboxes.fetch(agency, str(nachrichten_uuid))
        container = service.container_of(delivery.nachrichten_uuid, payload)
        if container is not None:
            return FileResponse(
                container,
                media_type=CONTAINER_TYPE,
                filename=container.name,
                headers={
                    UUID_HEADER: delivery.nachrichten_uuid,
                    SHA512_HEADER: sha512_of(container),
                    "X-Delivery-State": delivery.state.value,
                },
                background=BackgroundTask(shutil.rmtree, container.parent, ignore_errors=True),
            )
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
        responses=error_responses(401, 403, 404, 409, 422, 429, 503),
    )
    def ack_message(nachrichten_uuid: MessageId, agency: Caller) -> dict[str, Any]:
        return mailboxes.ack(agency, str(nachrichten_uuid))

    return router
