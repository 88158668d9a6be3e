"""``create_app``: the inbox of one agency as a FastAPI application — wiring only.

What each part does: :mod:`.service` (accepting a message, the rules of ``POST /v1/messages``),
:mod:`.mailbox` (the pull mailboxes), :mod:`.routes` (the HTTP routes by group),
:mod:`.schemas` (the answers' models), :mod:`.errors` (refusals and their rendering). The
integrator's description is ``docs/inbox-api.md``; the OpenAPI description is served at
``/openapi.json``, its viewer at ``/docs`` — Swagger UI from the ``swagger-ui-bundle`` package,
its scripts and styles served by the inbox itself under ``/docs/assets`` (no CDN: offline
networks of the administrations see it too).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from xoev.registry import SchemaRegistry

from ..directory import Directory
from ..journal import Journal
from .config import InboxConfig
from .errors import install_error_handlers
from .routes import DOCS_ASSETS, docs_routes, mailbox_routes, message_routes, service_routes
from .service import ACCEPTED_STATE, AcceptedHook, InboxService
from .xta import xta_routes

__all__ = [
    "ACCEPTED_STATE",
    "AcceptedHook",
    "InboxService",
    "create_app",
]


def create_app(
    agency_id: str,
    *,
    journal: Journal,
    directory: Directory,
    config: InboxConfig | None = None,
    on_accepted: AcceptedHook | None = None,
    registry: SchemaRegistry | None = None,
) -> FastAPI:
    """The inbox service of ``agency_id`` (an http agency of ``directory``), storing into
    ``journal`` (owned by the caller: not closed by the app).

    ``on_accepted(record, info, created)`` is called after the commit of every accepted message
    — ``created`` is False for a repeated delivery (a chance to catch up when an earlier call
    was lost, e.g. by a crash between commit and hook; it must be idempotent). It runs in the
    request's worker thread before the answer is sent; exceptions are logged and recorded as
    event ``inbox.hook_failed`` and do not change the answer. ``registry``: the XÖV schema
    registry (default: from ``config.schema_path`` or the process-wide one).
    Raises :class:`InboxConfigError` for an agency that cannot run an inbox."""
    service = InboxService(
        agency_id,
        journal=journal,
        directory=directory,
        config=config,
        on_accepted=on_accepted,
        registry=registry,
    )
    cfg = service.config

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.warm_up)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title=f"amtsbote inbox of {service.agency.id}",
        version="1",
        summary="Receives XÖV messages for one agency and keeps the mailboxes it hosts.",
        docs_url=None,  # the offline viewer below
        redoc_url=None,
        openapi_url="/openapi.json" if cfg.docs else None,
    )
    app.state.inbox = service
    install_error_handlers(app, agency_id=service.agency.id)
    app.include_router(service_routes(service))
    queue = cfg.fair_queue()  # the workers of deliveries, HTTP API and XTA alike
    app.state.queue = queue
    app.include_router(message_routes(service, queue))
    app.include_router(mailbox_routes(service))
    app.include_router(xta_routes(service, queue))  # XTA 2 SOAP ports (connectors/inbox/xta.py)
    if cfg.docs:  # the viewer and its files, from the installed package (offline)
        import swagger_ui_bundle
        from starlette.staticfiles import StaticFiles

        app.mount(
            DOCS_ASSETS,
            StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
            name="docs-assets",
        )
        app.include_router(docs_routes(f"{app.title} — API"))
    return app
