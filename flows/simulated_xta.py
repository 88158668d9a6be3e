"""A SIMULATED partner on XTA 2: the XTA server of an agency with ``channel: xta`` and the
agency's Fachverfahren, which speaks only XTA (for the demo and the end-to-end tests).

* :func:`start_xta_server` — an amtsbote inbox standing in for the agency's XTA server (in real
  life a Governikus MultiMessenger, say) at the port of its ``xta_url``. It has its own
  configuration, as an XTA server does (:func:`xta_server_directory`): a msgBox for the agency
  and one for the home agency, both as mailboxes it hosts; callers authenticate with the same
  tokens or client certificates as anywhere else. What the home installation sends with
  ``sendMessage`` waits in the agency's msgBox; what the agency answers waits in the home
  agency's msgBox, which the home inbox polls (:mod:`connectors.inbox.xta_poll`).
* :func:`xta_fachverfahren` — the agency's system as an XTA client (:class:`XtaClient`):
  ``getStatusList`` → ``getMessage`` → ``close`` on its msgBox; as an Ausländerbehörde it answers
  each ``abh.gewerbemeldung.0500`` with a Rückmeldung (``01`` keine Bedenken) by ``sendMessage``
  addressed to the home agency. The reply's nachrichtenUUID is derived from the answered one, so
  a retry after a lost answer is the same message (the server deduplicates).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

import httpx

from connectors.directory import Agency, Channel, Directory
from connectors.inbox import create_app
from connectors.inbox.server import InboxServer
from connectors.journal import Journal
from connectors.xta.client import FetchedMessage, XtaClient, poll_xta_msgbox
from connectors.xta.metadata import build_metadata
from xoev.code import Code
from xoev.message import inspect_message
from xoev.nachrichtenkopf import Nachrichtenkopf
from xoev.rueckmeldung import v1_0 as rueckmeldung

__all__ = ["start_xta_server", "xta_fachverfahren", "xta_server_directory"]

log = logging.getLogger("amtsbote.local.xta")
_REPLY_NAMESPACE = uuid.UUID("6f1d3c52-4b8e-4e57-9a57-0d1f5c0a7a11")


def _server_base(agency: Agency) -> tuple[str, int]:
    assert agency.xta_url is not None
    parts = urlsplit(agency.xta_url)
    if parts.port is None or parts.hostname is None:
        raise ValueError(f"{agency.id}: xta_url {agency.xta_url} names no host and port")
    return f"{parts.scheme}://{parts.hostname}:{parts.port}", parts.port


def is_local(agency: Agency) -> bool:
    """Whether ``agency``'s XTA server is on loopback (only then is it simulated)."""
    host = urlsplit(agency.xta_url or "").hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def xta_server_directory(directory: Directory, agency: Agency, home: Agency) -> Directory:
    """The simulated XTA server's own accounts: itself (the inbox) and the msgBoxes of
    ``agency`` and ``home`` (tokens and certificate fingerprints as in ``directory``)."""
    base, _ = _server_base(agency)
    server = Agency(
        id=f"{agency.id}-xta-server",
        name=f"XTA server of {agency.name} (simulated)",
        behoerdenkennung=f"XTA:{agency.kennung}",
        roles=agency.roles,
        channel=Channel.HTTP,
        endpoint=base,
        token_env=f"{agency.token_env}_XTA_SERVER",
    )
    boxes = [
        replace(
            a,
            channel=Channel.MAILBOX,
            mailbox_host=server.id,
            endpoint=None,
            xta_url=None,
            tls_client_cert=None,
            tls_client_key=None,
            tls_ca=None,
        )
        for a in (agency, home)
    ]
    return Directory([server, *boxes], roles=directory.roles, environ=directory.environ)


def start_xta_server(
    directory: Directory, agency: Agency, home: Agency, journal: Journal
) -> InboxServer:
    """Serve the simulated XTA server of ``agency`` on its ``xta_url``'s port (loopback)."""
    view = xta_server_directory(directory, agency, home)
    server_id = f"{agency.id}-xta-server"
    _, port = _server_base(agency)
    app = create_app(server_id, journal=journal, directory=view)
    return InboxServer(app, port=port).start()


def _reply(
    bezug: str, *, responder: Agency, home: Agency, ergebnis: str = "01"
) -> tuple[bytes, str]:
    from .local import behoerde

    reply_uuid = str(uuid.uuid5(_REPLY_NAMESPACE, bezug))
    kopf = Nachrichtenkopf.neu(
        nachrichtentyp=rueckmeldung.MESSAGE_TYPE,
        leser=behoerde(home),
        autor=behoerde(responder),
        nachrichten_uuid=reply_uuid,
    )
    msg = rueckmeldung.Rueckmeldung(
        nachrichtenkopf=kopf,
        bezug=bezug,
        ergebnis=Code(ergebnis, list_uri=rueckmeldung.ERGEBNIS_LIST_URI, list_version_id="1.0"),
    )
    return rueckmeldung.build(msg), reply_uuid


def xta_fachverfahren(
    directory: Directory, agency: Agency, home: Agency, *, answer: bool = True
) -> Callable[[], None]:
    """One polling round of ``agency``'s simulated Fachverfahren on its XTA server."""
    assert agency.xta_url is not None
    url = agency.xta_url

    def handle(xta: XtaClient, message: FetchedMessage) -> None:
        info = inspect_message(message.payload)
        log.info("simulated %s fetched %s over XTA", agency.id, info.root)
        if not answer or info.root != "abh.gewerbemeldung.0500":
            return
        bezug = info.nachrichten_uuid or ""
        payload, reply_uuid = _reply(bezug, responder=agency, home=home)
        reply = inspect_message(payload)
        metadata = build_metadata(
            reply,
            nachrichten_uuid=reply_uuid,
            author=agency.behoerdenkennung,
            reader=home.behoerdenkennung,
            size=len(payload),
        )
        xta.send_message(payload, metadata)

    def poll() -> None:
        headers = {"Authorization": f"Bearer {directory.token_for(agency.id)}"}
        with httpx.Client(timeout=10.0, trust_env=False) as http:
            xta = XtaClient(url, author=agency.behoerdenkennung, client=http, http_headers=headers)
            poll_xta_msgbox(xta, lambda m: handle(xta, m))

    return poll
