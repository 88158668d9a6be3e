"""The inbox service: receives XÖV messages for one agency over HTTP and hosts mailboxes.

::

    from connectors.inbox import InboxConfig, InboxServer, create_app

    app = create_app("stadt-paderborn", journal=journal, directory=directory,
                     config=InboxConfig(max_body_bytes=5 * 1024 * 1024),
                     on_accepted=lambda record, info, created: ...)
    with InboxServer(app, port=0) as server:      # uvicorn in a thread, on 127.0.0.1
        ...                                       # POST server.url + "/v1/messages"

The API is described in ``docs/inbox-api.md`` (and served as OpenAPI at ``/docs``); the rules of
``POST /v1/messages`` are in :mod:`connectors.inbox.service`; which journal an inbox writes to is
decided in :mod:`connectors.inbox.config`. ``amtsbote inbox serve --agency ID`` runs one.
"""

from __future__ import annotations

from .app import ACCEPTED_STATE, AcceptedHook, InboxService, create_app
from .config import (
    DEFAULT_HOME_AGENCY,
    HOME_AGENCY_ENV,
    InboxConfig,
    home_agency,
    journal_url_for,
)
from .exceptions import ApiError, InboxConfigError, InboxError, InboxServerError
from .server import InboxServer, serve, uvicorn_config

__all__ = [
    "ACCEPTED_STATE",
    "DEFAULT_HOME_AGENCY",
    "HOME_AGENCY_ENV",
    "AcceptedHook",
    "ApiError",
    "InboxConfig",
    "InboxConfigError",
    "InboxError",
    "InboxServer",
    "InboxServerError",
    "InboxService",
    "create_app",
    "home_agency",
    "journal_url_for",
    "serve",
    "uvicorn_config",
]
