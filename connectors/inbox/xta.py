"""XTA 2 (webservice 2.1.1) on the inbox: one SOAP 1.2 endpoint per WSDL port, on the same
journal and mailboxes as the HTTP API (``docs/xta.md``)::

    POST /services/XTAService/ManagementPort   checkAccountActive, lookupService,
                                               createMessageId, getTransportReport, cancelMessage
    POST /services/XTAService/SendXtaPort      sendMessage (sendMessageSync: SyncAsync fault)
    POST /services/XTAService/MsgBoxPort       getStatusList, getNextStatusList, getMessage,
                                               getNextMessage, close

Order: caller (the HTTP API's identity, :func:`xta_caller`; 401 JSON before SOAP otherwise);
body (``application/soap+xml`` or MTOM ``multipart/related``, streamed within the limits, 413
fault beyond); hardened parse of the envelope; WS-Addressing (``wsa:Action`` one of the port's
input actions, ``wsa:MessageID`` present); the operation (:mod:`.xta_operations`,
:mod:`.xta_send`) in a worker thread. Every answer body is validated against the official XSDs
(:mod:`connectors.xta.schema`) before it is sent; a fault is answered with HTTP 400 (request's
fault), 403, 413 or 500/503 (ours).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from ..directory import Agency
from ..xta.exceptions import MtomError, SoapError, XtaFault, XtaSchemaError
from ..xta.mtom import MultipartParser, Part, build_mtom, content_type_params
from ..xta.namespaces import ACTIONS, OSCIMETA, WSA
from ..xta.schema import assert_valid
from ..xta.soap import Envelope, build_envelope, build_fault, parse_envelope, serialize
from . import routes
from .exceptions import ApiError
from .fairqueue import FairQueue, Ticket
from .service import InboxService
from .xta_operations import Answer, XtaOperations
from .xta_send import send_message

__all__ = ["PORTS", "XTA_PREFIX", "xta_caller", "xta_routes"]

log = logging.getLogger("connectors.inbox")

XTA_PREFIX = "/services/XTAService"
PORTS = ("ManagementPort", "SendXtaPort", "MsgBoxPort")
SOAP_MEDIA = "application/soap+xml"
_BATCH = 1 << 20
#: Room for the SOAP envelope around an inline base64 message.
_ENVELOPE_OVERHEAD = 256 * 1024

Handler = Callable[[Agency, Envelope, dict[str, Part], Path], Answer]


def xta_caller(agency: Annotated[Agency, Depends(routes._caller)]) -> Agency:
    """The XTA caller: whoever the HTTP API's identity dependency (``routes._caller``) says —
    the bearer token now, the client certificate when that lands there."""
    return agency


def _fault_response(
    fault: XtaFault, *, action: str | None = None, relates_to: str | None = None
) -> Response:
    envelope = build_fault(fault, action=action, relates_to=relates_to)
    headers = dict(fault.headers)
    if fault.status == 413:
        headers["Connection"] = "close"
    return Response(
        serialize(envelope),
        status_code=fault.status,
        media_type=SOAP_MEDIA,
        headers=headers,
    )


def _handlers(ops: XtaOperations) -> dict[str, dict[str, Handler]]:
    def body_message_id(env: Envelope) -> str | None:
        body = env.body
        if body is None or body.tag != f"{{{WSA}}}MessageID":
            return None
        return (body.text or "").strip() or None

    def author_checked(fn: Callable[[Agency, Envelope], Answer]) -> Handler:
        def run(caller: Agency, env: Envelope, parts: dict[str, Part], tmp: Path) -> Answer:
            ops.check_author_header(caller, env.header(OSCIMETA, "Author"))
            return fn(caller, env)

        return run

    def sync_refused(caller: Agency, env: Envelope, parts: dict[str, Part], tmp: Path) -> Answer:
        raise XtaFault(
            "SyncAsyncException",
            "9080",
            "this inbox offers asynchronous delivery only: use sendMessage",
        )

    def send(caller: Agency, env: Envelope, parts: dict[str, Part], tmp: Path) -> Answer:
        return send_message(ops, caller, env, parts, tmp)

    return {
        "ManagementPort": {
            "checkAccountActive": author_checked(lambda c, e: Answer()),
            "lookupService": author_checked(lambda c, e: ops.lookup_service(c, e.body)),
            "createMessageId": author_checked(lambda c, e: ops.create_message_id(c)),
            "getTransportReport": author_checked(
                lambda c, e: ops.transport_report(c, body_message_id(e))
            ),
            "cancelMessage": author_checked(lambda c, e: ops.cancel_message(c, body_message_id(e))),
        },
        "SendXtaPort": {"sendMessage": send, "sendMessageSync": sync_refused},
        "MsgBoxPort": {
            "getMessage": author_checked(lambda c, e: ops.get_message(c, e.body)),
            "getStatusList": author_checked(lambda c, e: ops.status_list(c, e.body)),
            "getNextMessage": author_checked(lambda c, e: ops.next_message(c, e.body)),
            "getNextStatusList": author_checked(lambda c, e: ops.next_status_list(c, e.body)),
            "close": author_checked(lambda c, e: ops.close(c, e.body)),
        },
    }


async def _read_plain(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise SoapError(f"the SOAP envelope exceeds {limit} bytes", too_large=True)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_mtom(
    request: Request, content_type: str, *, limit: int, root_limit: int, directory: Path
) -> tuple[bytes, dict[str, Part]]:
    parser = MultipartParser(content_type, directory=directory, limit=limit, root_limit=root_limit)
    pending: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= _BATCH:  # file writes happen in a worker thread, ~1 MiB at a time
                await anyio.to_thread.run_sync(parser.feed, b"".join(pending))
                pending, size = [], 0
        if pending:
            await anyio.to_thread.run_sync(parser.feed, b"".join(pending))
        root, attachments = parser.close()
    except BaseException:
        parser.discard()
        raise
    return root.read_bytes(), attachments


def xta_routes(
    service: InboxService, queue: FairQueue, *, validate_responses: bool = True
) -> APIRouter:
    """The three XTA ports of ``service``'s inbox, their operations sharing ``queue``'s workers
    with the HTTP API (a full queue: an XTAWSTechnicalProblem fault with the queue's 429/503 and
    ``Retry-After``). ``validate_responses``: check every answer body and header block against
    the official XSDs (a failure is logged and answered with XTAWSTechnicalProblem — it is our
    bug)."""
    cfg = service.config
    ops = XtaOperations(service)
    handlers = _handlers(ops)
    envelope_limit = cfg.max_body_bytes * 4 // 3 + _ENVELOPE_OVERHEAD
    mtom_limit = max(cfg.max_container_bytes, cfg.max_body_bytes) + _ENVELOPE_OVERHEAD
    router = APIRouter(tags=["xta"], include_in_schema=False)
    by_action = {port: {ACTIONS[(port, op)]: op for op in handlers[port]} for port in PORTS}

    async def endpoint(port: str, request: Request, caller: Agency) -> Response:
        declared = request.headers.get("content-length")
        media, _ = content_type_params(request.headers.get("content-type") or "")
        limit = mtom_limit if media == "multipart/related" else envelope_limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _fault_response(_too_large(f"Content-Length {declared} exceeds {limit} bytes"))
        try:
            ticket = queue.admit(caller.id)
        except ApiError as full:
            return _fault_response(_busy(full))
        with ticket:
            return await _admitted(port, request, caller, media, ticket)

    async def _admitted(
        port: str, request: Request, caller: Agency, media: str, ticket: Ticket
    ) -> Response:
        spool = service.spool_dir
        await anyio.to_thread.run_sync(
            functools.partial(spool.mkdir, parents=True, exist_ok=True, mode=0o700)
        )
        tmp = Path(
            await anyio.to_thread.run_sync(
                functools.partial(tempfile.mkdtemp, dir=spool, prefix="xta-")
            )
        )
        cleanup: list[Callable[[], Any]] = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
        try:
            return await _handle(port, request, caller, media, ticket, tmp, cleanup)
        finally:
            if not getattr(request.state, "xta_streaming", False):
                for fn in cleanup:
                    fn()

    async def _handle(
        port: str,
        request: Request,
        caller: Agency,
        media: str,
        ticket: Ticket,
        tmp: Path,
        cleanup: list[Callable[[], Any]],
    ) -> Response:
        try:
            if media == "multipart/related":
                data, parts = await _read_mtom(
                    request,
                    request.headers.get("content-type") or "",
                    limit=mtom_limit,
                    root_limit=envelope_limit,
                    directory=tmp,
                )
            elif media == SOAP_MEDIA or media == "text/xml":
                data, parts = await _read_plain(request, envelope_limit), {}
            else:
                raise XtaFault(
                    "ParameterIsNotValidException",
                    "9022",
                    f"Content-Type {media or '(none)'}: send {SOAP_MEDIA} (SOAP 1.2) or "
                    "multipart/related (MTOM)",
                    status=415,
                )
            env = await anyio.to_thread.run_sync(
                functools.partial(parse_envelope, data, max_bytes=envelope_limit)
            )
        except ClientDisconnect:
            return Response(status_code=400)
        except (SoapError, MtomError) as exc:
            if exc.too_large:
                return _fault_response(_too_large(str(exc)))
            return _fault_response(
                XtaFault("ParameterIsNotValidException", "9000", f"unusable request: {exc}")
            )
        except XtaFault as refused:
            return _fault_response(refused)
        if env.action is None or env.message_id is None:
            missing = "wsa:Action" if env.action is None else "wsa:MessageID"
            fault = XtaFault(
                "MessageAddressingHeaderRequired",
                "9020",
                f"WS-Addressing header {missing} is missing (required by the XTA policy)",
            )
            return _fault_response(fault, relates_to=env.message_id)
        operation = by_action[port].get(env.action)
        if operation is None:
            fault = XtaFault(
                "ActionNotSupported",
                "9022",
                f"wsa:Action {env.action} is no input action of the {port}",
            )
            return _fault_response(fault, relates_to=env.message_id)
        action = ACTIONS[(port, operation)]
        try:
            answer = await ticket.run_sync(handlers[port][operation], caller, env, parts, tmp)
            envelope = build_envelope(
                action, answer.body, relates_to=env.message_id, headers=answer.headers
            )
            if validate_responses:
                for element in (*answer.body, *answer.headers):
                    assert_valid(element)
        except XtaFault as refused:
            log.info(
                "inbox %s: XTA %s of %s: %s", service.agency.id, operation, caller.id, refused.kind
            )
            return _fault_response(refused, action=action, relates_to=env.message_id)
        except XtaSchemaError as exc:
            log.error("inbox %s: XTA %s answer invalid: %s", service.agency.id, operation, exc)
            fault = XtaFault(
                "XTAWSTechnicalProblemException",
                "9030",
                "internal error: the answer does not fit the XTA schema",
                sender_fault=False,
            )
            return _fault_response(fault, action=action, relates_to=env.message_id)
        body = serialize(envelope)
        if not answer.attachments:
            for fn in answer.cleanup:
                fn()
            return Response(body, media_type=SOAP_MEDIA)
        content_type, chunks = build_mtom(body, answer.attachments)
        request.state.xta_streaming = True
        cleanup.extend(answer.cleanup)

        def after() -> None:
            for fn in cleanup:
                fn()

        return StreamingResponse(
            _iterate(chunks),
            media_type=None,
            headers={"Content-Type": content_type},
            background=BackgroundTask(after),
        )

    for port in PORTS:
        router.add_api_route(
            f"{XTA_PREFIX}/{port}",
            _bind(endpoint, port),
            methods=["POST"],
            name=f"xta_{port}",
        )
    return router


def _iterate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield from chunks


def _busy(full: ApiError) -> XtaFault:
    """The queue's 429/503 as a fault, with its ``Retry-After`` and ``Connection: close``
    (the body is not read); the sender repeats the request later."""
    return XtaFault(
        "XTAWSTechnicalProblemException",
        "9030",
        full.detail,
        sender_fault=False,
        status=full.status,
        headers=full.headers,
    )


def _too_large(reason: str) -> XtaFault:
    return XtaFault("ParameterIsNotValidException", "9023", reason, status=413)


def _bind(endpoint: Callable[..., Any], port: str) -> Callable[..., Any]:
    async def route(request: Request, caller: Annotated[Agency, Depends(xta_caller)]) -> Response:
        return await endpoint(port, request, caller)

    route.__name__ = f"xta_{port}"
    return route
