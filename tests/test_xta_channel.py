"""Channel ``xta``, client side: :class:`XtaSender` and :class:`XtaClient` against a real amtsbote
inbox serving its XTA ports over mutual TLS on 127.0.0.1 (certificates from ``tests/pki.py``).

The inbox is stadt-paderborn's (hosting ihk-owl's mailbox). kreis-paderborn ("A") sends and is
known there by its certificate; bezreg-detmold ("B") has a certificate of its own. The sending
side's directory has no tokens: the certificate alone identifies the caller."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from pki import Issued, Pki
from test_inbox_support import (
    AGENCIES_FILE,
    DEV_ENV,
    Messages,
    auth,
    make_directory,
    readdress,
    sample,
)

from connectors.directory import Channel, Directory, InvalidDirectoryError
from connectors.inbox import InboxServer, create_app
from connectors.inbox.tls import TlsConfig
from connectors.journal import Direction, Journal
from connectors.senders import (
    OutgoingMessage,
    PermanentSendError,
    TransientSendError,
    XtaSender,
    is_transient,
    sender_for,
)
from connectors.xta.client import FetchedMessage, XtaClient, poll_xta_msgbox
from connectors.xta.exceptions import XtaFault
from connectors.xta.metadata import message_id_for
from connectors.xta.soap import build_fault, serialize

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
A = "kreis-paderborn"
B = "bezreg-detmold"
HOSTED = "ihk-owl"


def _with(directory: Directory, environ: dict[str, str], **changes: dict[str, Any]) -> Directory:
    """``directory`` with ``changes`` per agency; mailboxes of a host that changes its channel
    are left out (only an http agency hosts mailboxes)."""
    moved = {i for i, c in changes.items() if "channel" in c}
    agencies = [
        dataclasses.replace(a, **changes.get(a.id, {}))
        for a in directory
        if a.mailbox_host not in moved
    ]
    return Directory(agencies, roles=directory.roles, environ=environ)


@dataclass
class Channel_:
    url: str
    pki: Pki
    a: Issued
    b: Issued
    hosted: Issued
    journal: Journal
    server_directory: Directory

    def context(self, client: Issued) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def sender_directory(self, cert: Issued) -> Directory:
        """Our side: HOME reached by XTA with ``cert``; no tokens (environ empty)."""
        return _with(
            self.server_directory,
            {},
            **{
                HOME: {
                    "channel": Channel.XTA,
                    "endpoint": None,
                    "xta_url": self.url + "/services/XTAService",
                    "tls_client_cert": cert.cert,
                    "tls_client_key": cert.key,
                    "tls_ca": self.pki.ca,
                }
            },
        )

    def messages(self) -> Messages:
        d = self.server_directory
        return Messages(d.get(A), d.get(HOME))


@pytest.fixture(scope="module")
def chan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channel_]:
    tmp = tmp_path_factory.mktemp("xta-channel")
    pki = Pki.create(tmp / "pki")
    a, b, hosted = pki.client(A), pki.client(B), pki.client(HOSTED)
    port = free_port()
    base = make_directory({HOME: f"https://127.0.0.1:{port}"})
    directory = _with(
        base,
        DEV_ENV,
        **{
            A: {"client_cert_sha256": a.fingerprint},
            B: {"client_cert_sha256": b.fingerprint},
            HOSTED: {"client_cert_sha256": hosted.fingerprint},
        },
    )
    journal = Journal(f"sqlite:///{tmp / 'journal.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=directory)
    tls = TlsConfig(cert_file=pki.server.cert, key_file=pki.server.key, client_ca=pki.ca)
    try:
        with InboxServer(app, port=port, tls=tls) as server:
            yield Channel_(server.url, pki, a, b, hosted, journal, directory)
    finally:
        journal.close()


def test_directory_accepts_the_xta_channel(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.a)
    home = directory.get(HOME)
    assert home.channel is Channel.XTA and home.xta_url.endswith("/services/XTAService")
    sender = sender_for(HOME, directory)
    assert isinstance(sender, XtaSender)
    sender.close()


def test_send_is_journalled_with_the_sender_and_reported_delivered(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.a)
    message = chan.messages().outgoing()
    with sender_for(HOME, directory) as sender:
        receipt = sender.send(message)
    assert receipt.state == "delivered"
    assert receipt.nachrichten_uuid == message.nachrichten_uuid
    assert receipt.raw["xta_message_id"] == message_id_for(message.nachrichten_uuid)
    record = chan.journal.get_message(message.nachrichten_uuid, direction=Direction.INBOUND)
    assert record.sender_agency == A
    assert chan.journal.payload(message.nachrichten_uuid) == message.payload


def test_asend_delivers_too(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.a)
    message = chan.messages().outgoing()

    async def run() -> str:
        async with sender_for(HOME, directory) as sender:
            return (await sender.asend(message)).state

    assert asyncio.run(run()) == "delivered"
    assert chan.journal.payload(message.nachrichten_uuid) == message.payload


def test_resending_the_same_message_is_idempotent(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.a)
    message = chan.messages().outgoing()
    with sender_for(HOME, directory) as sender:
        first = sender.send(message)
        second = sender.send(message)
    assert first.state == second.state == "delivered"


def test_an_invalid_message_fails_permanently_with_the_findings(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.a)
    uid = str(uuid.uuid4())
    body = readdress(
        sample("invalid-ummeldung-ihk-0200.xml"),
        nachrichten_uuid=uid,
        author=directory.get(A).behoerdenkennung,
        reader=directory.get(HOME).behoerdenkennung,
    )
    message = OutgoingMessage(payload=body, nachrichten_uuid=uid, recipient=HOME, sender=A)
    with sender_for(HOME, directory) as sender, pytest.raises(PermanentSendError) as caught:
        sender.send(message)
    error = caught.value
    assert error.detail["kind"] == "MessageSchemaViolationException"
    assert error.detail["code"] == "9050"
    assert error.detail["findings"]
    assert error.__cause__ is not None


def test_a_certificate_not_matching_the_author_is_permission_denied(chan: Channel_) -> None:
    directory = chan.sender_directory(chan.b)  # B's certificate, A's message
    message = chan.messages().outgoing()
    with sender_for(HOME, directory) as sender, pytest.raises(PermanentSendError) as caught:
        sender.send(message)
    assert caught.value.detail["kind"] == "PermissionDeniedException"
    assert caught.value.status_code == 403
    with pytest.raises(Exception):  # noqa: B017 - nothing was journalled
        chan.journal.get_message(message.nachrichten_uuid, direction=Direction.INBOUND)


def test_msgbox_client_fetches_and_closes_a_message_put_for_us(
    chan: Channel_, tmp_path: Path
) -> None:
    d = chan.server_directory
    uid, body = Messages(d.get(A), d.get(HOSTED)).new()
    put = httpx.post(
        chan.url + "/v1/messages",
        content=body,
        headers={"Content-Type": "application/xml", "X-Empfaenger": HOSTED, **auth(A)},
        verify=str(chan.pki.ca),
        timeout=10,
    )
    assert put.status_code in (200, 202), put.text
    with httpx.Client(verify=chan.context(chan.hosted), timeout=10) as http:
        client = XtaClient(
            chan.url + "/services/XTAService",
            author=d.get(HOSTED).behoerdenkennung,
            client=http,
        )
        waiting = client.get_status_list()
        assert message_id_for(uid) in waiting
        fetched = client.get_message(message_id_for(uid))
        assert fetched.payload == body and fetched.nachrichten_uuid == uid
        assert fetched.metadata is not None and fetched.metadata.author == d.get(A).behoerdenkennung
        assert client.get_message(message_id_for(uid), spool=tmp_path).payload == body
        client.close(message_id_for(uid))
        assert message_id_for(uid) not in client.get_status_list()


def test_poll_hands_each_message_over_then_closes_it(chan: Channel_) -> None:
    d = chan.server_directory
    messages = Messages(d.get(A), d.get(HOSTED))
    sent = []
    for _ in range(2):
        uid, body = messages.new()
        response = httpx.post(
            chan.url + "/v1/messages",
            content=body,
            headers={"Content-Type": "application/xml", "X-Empfaenger": HOSTED, **auth(A)},
            verify=str(chan.pki.ca),
            timeout=10,
        )
        assert response.status_code in (200, 202)
        sent.append(uid)
    seen: list[FetchedMessage] = []
    with httpx.Client(verify=chan.context(chan.hosted), timeout=10) as http:
        client = XtaClient(
            chan.url + "/services/XTAService", author=d.get(HOSTED).behoerdenkennung, client=http
        )
        closed = poll_xta_msgbox(client, seen.append)
        assert {message_id_for(u) for u in sent} <= set(closed)
        assert {m.nachrichten_uuid for m in seen} >= set(sent)
        assert client.get_status_list() == []


# ------------------------------------------------------------- failures without a server


def _sender_with(chan: Channel_, handler: Any) -> XtaSender:
    directory = chan.sender_directory(chan.a)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return XtaSender(directory.get(HOME), directory, client=client)


def test_a_technical_problem_fault_is_transient(chan: Channel_) -> None:
    fault = XtaFault("XTAWSTechnicalProblemException", "9030", "db down", sender_fault=False)

    def handler(request: httpx.Request) -> httpx.Response:
        body = serialize(build_fault(fault))
        return httpx.Response(500, content=body, headers={"Content-Type": "application/soap+xml"})

    with pytest.raises(TransientSendError) as caught:
        _sender_with(chan, handler).send(chan.messages().outgoing())
    assert caught.value.detail["code"] == "9030" and is_transient(caught.value)
    assert isinstance(caught.value.__cause__, XtaFault)


def test_a_non_soap_503_and_a_refused_connection_are_transient(chan: Channel_) -> None:
    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="maintenance")

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for handler in (unavailable, refused):
        with pytest.raises(TransientSendError):
            _sender_with(chan, handler).send(chan.messages().outgoing())


def test_an_unauthenticated_answer_is_permanent(chan: Channel_) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized"})

    with pytest.raises(PermanentSendError) as caught:
        _sender_with(chan, handler).send(chan.messages().outgoing())
    assert caught.value.status_code == 401


def test_directory_checks_of_the_xta_channel(tmp_path: Path) -> None:
    text = AGENCIES_FILE.read_text(encoding="utf-8")
    file = tmp_path / "agencies.yaml"
    entry = textwrap.indent(
        textwrap.dedent(
            """\
            - id: xta-partner
              name: XTA partner
              behoerdenkennung: "XTA:0001"
              roles: [Gewerbeamt]
              channel: xta
              token_env: XTA_PARTNER_TOKEN
              endpoint: https://nope.example
            """
        ),
        "  ",
    )
    file.write_text(text.replace("agencies:\n", "agencies:\n" + entry, 1), encoding="utf-8")
    with pytest.raises(InvalidDirectoryError) as caught:
        Directory.load(file, environ=DEV_ENV)
    message = str(caught.value)
    assert "channel xta needs the field xta_url" in message
    assert "endpoint" in message and "not allowed for channel xta" in message
    assert f"{file}:" in message
