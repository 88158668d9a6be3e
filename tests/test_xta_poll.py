"""Replies over XTA 2 reach the home inbox: :mod:`connectors.inbox.xta_poll` against the
SIMULATED XTA server of :mod:`flows.simulated_xta` (a real amtsbote inbox on 127.0.0.1), and the
simulated Fachverfahren answering a consultation through it.

stadt-paderborn is home (an HTTP inbox with the correlation hook's journal); kreis-paderborn has
``channel: xta`` at the simulated server, which keeps a msgBox for the Kreis and one for the city.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from test_inbox_support import DEV_ENV, Messages, make_directory

from connectors.directory import Agency, Channel, Directory
from connectors.inbox import InboxServer, create_app
from connectors.inbox.exceptions import ApiError
from connectors.inbox.xta_poll import XtaMsgBoxPoller, xta_pollers
from connectors.journal import Direction, Journal
from connectors.senders import XtaSender
from connectors.xta.client import XtaClient
from connectors.xta.exceptions import XtaFault
from connectors.xta.metadata import build_metadata
from flows.simulated_xta import start_xta_server, xta_fachverfahren, xta_server_directory
from xoev.message import inspect_message

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
KREIS = "kreis-paderborn"
STRANGER = "dguv"


@dataclass
class World:
    directory: Directory
    home: Agency
    kreis: Agency
    home_journal: Journal
    home_server: InboxServer
    xta_server: InboxServer
    xta_journal: Journal

    def kreis_client(self, http: httpx.Client, agency: Agency | None = None) -> XtaClient:
        who = agency or self.kreis
        assert self.kreis.xta_url is not None
        token = self.directory.token_for(who.id)
        return XtaClient(
            self.kreis.xta_url,
            author=who.behoerdenkennung,
            client=http,
            http_headers={"Authorization": f"Bearer {token}"},
        )

    def pollers(self, **kw: object) -> list[XtaMsgBoxPoller]:
        return xta_pollers(self.home_server.app.state.inbox, self.directory, **kw)  # type: ignore[arg-type]


def _directory(xta_port: int, home_port: int) -> Directory:
    base = make_directory({HOME: f"http://127.0.0.1:{home_port}"})
    agencies = [
        dataclasses.replace(a, xta_url=f"http://127.0.0.1:{xta_port}/services/XTAService")
        if a.id == KREIS
        else a
        for a in base
    ]
    return Directory(agencies, roles=base.roles, environ=DEV_ENV)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    directory = _directory(free_port(), free_port())
    home, kreis = directory.get(HOME), directory.get(KREIS)
    assert kreis.channel is Channel.XTA
    home_journal = Journal(f"sqlite:///{tmp_path / 'home.sqlite'}", create=True)
    xta_journal = Journal(f"sqlite:///{tmp_path / 'xta.sqlite'}", create=True)
    home_server = InboxServer(
        create_app(HOME, journal=home_journal, directory=directory),
        port=int(str(home.endpoint).rsplit(":", 1)[1]),
    ).start()
    xta_server = start_xta_server(directory, kreis, home, xta_journal)
    try:
        yield World(directory, home, kreis, home_journal, home_server, xta_server, xta_journal)
    finally:
        xta_server.stop()
        home_server.stop()
        home_journal.close()
        xta_journal.close()


def _sent(journal: Journal, payload: bytes, *, to: Agency, by: Agency) -> str:
    """Record ``payload`` as sent by ``by`` to ``to`` in ``journal`` (what a procedure's send
    step does before it sends); returns its nachrichtenUUID. Replies must answer such a one."""
    from connectors.journal import MessageMeta

    meta = MessageMeta.from_info(inspect_message(payload))
    journal.record_outbound(payload, meta, recipients=[to.id], sender_agency=by.id)
    return meta.nachrichten_uuid


def _reply_from(
    author: Agency, reader: Agency, *, journal: Journal | None = None
) -> tuple[str, bytes]:
    """A Rückmeldung (its nachrichtenUUID, bytes) from ``author`` to ``reader``; with
    ``journal`` (the reader's) it answers a consultation recorded there as sent to ``author``,
    else a UUID nobody sent."""
    from flows.simulated_xta import _reply

    bezug = str(uuid.uuid4())
    if journal is not None:
        consultation = Messages(reader, author).outgoing()
        bezug = _sent(journal, consultation.payload, to=author, by=reader)
    payload, reply_uuid = _reply(bezug, responder=author, home=reader)
    return reply_uuid, payload


def _send_over_xta(client: XtaClient, payload: bytes, reader: Agency) -> None:
    info = inspect_message(payload)
    assert info.nachrichten_uuid is not None
    metadata = build_metadata(
        info,
        nachrichten_uuid=info.nachrichten_uuid,
        author=client.author,
        reader=reader.behoerdenkennung,
        size=len(payload),
    )
    client.send_message(payload, metadata)


def test_reply_in_our_msgbox_reaches_the_home_journal_once(world: World) -> None:
    reply_uuid, payload = _reply_from(world.kreis, world.home, journal=world.home_journal)
    with httpx.Client(trust_env=False, timeout=10) as http:
        _send_over_xta(world.kreis_client(http), payload, world.home)
        # the server holds it in the city's msgBox, not in the Kreis's
        assert world.kreis_client(http).get_status_list() == []
    [poller] = world.pollers()
    try:
        assert poller.client.author == world.home.behoerdenkennung
        result = poller.poll_once()
        assert (result.accepted, result.rejected, result.failed) == (1, 0, 0)
        record = world.home_journal.get_message(reply_uuid, direction=Direction.INBOUND)
        assert record.sender_agency == KREIS
        assert record.message_type == "amt.rueckmeldung.0900"
        stored = world.home_journal.payload(reply_uuid, direction=Direction.INBOUND)
        assert stored == payload
        # closed on the server: nothing waits any more, a second round takes nothing
        assert poller.client.get_status_list() == []
        assert poller.poll_once().accepted == 0
        assert len(world.home_journal.messages(direction=Direction.INBOUND)) == 1
    finally:
        poller.close()


def test_a_message_from_an_agency_we_do_not_reach_there_is_kept_aside(
    world: World, tmp_path: Path
) -> None:
    """The XTA server knows an account we do not expect on it: the message is refused with the
    reason (written beside it), closed, and not stored."""
    stranger = world.directory.get(STRANGER)
    view = xta_server_directory(world.directory, world.kreis, world.home)
    extra = dataclasses.replace(
        stranger, channel=Channel.MAILBOX, mailbox_host=f"{KREIS}-xta-server", endpoint=None
    )
    wider = Directory([*view, extra], roles=view.roles, environ=DEV_ENV)
    world.xta_server.app.state.inbox.directory = wider
    uuid_, payload = _reply_from(stranger, world.home)
    with httpx.Client(trust_env=False, timeout=10) as http:
        _send_over_xta(world.kreis_client(http, stranger), payload, world.home)
    rejected = tmp_path / "rejected"
    [kept] = world.pollers()
    try:
        # without a place for refused messages they wait and are reported each round
        kept.rejected_dir = None
        first = kept.poll_once()
        assert (first.accepted, first.failed) == (0, 1)
        assert "is no agency this installation reaches through" in first.errors[0]
        assert len(kept.client.get_status_list()) == 1
        kept.rejected_dir = rejected
        second = kept.poll_once()
        assert (second.accepted, second.rejected) == (0, 1)
    finally:
        kept.close()
    assert (rejected / f"{uuid_}.xml").read_bytes() == payload
    reason = (rejected / f"{uuid_}.reason.txt").read_text()
    assert "UVT:15087927" in reason and (rejected / f"{uuid_}.xml").stat().st_mode & 0o077 == 0
    assert world.home_journal.messages(direction=Direction.INBOUND) == []


def test_a_transient_refusal_leaves_the_message_waiting(world: World) -> None:
    reply_uuid, payload = _reply_from(world.kreis, world.home, journal=world.home_journal)
    with httpx.Client(trust_env=False, timeout=10) as http:
        _send_over_xta(world.kreis_client(http), payload, world.home)

    class JournalDown:
        """The home inbox while its journal is unavailable (what it answers then: 503)."""

        agency = world.home

        def accept(self, body: bytes, sender: Agency) -> None:
            raise ApiError(503, "journal_unavailable", "the journal is not reachable")

    [poller] = xta_pollers(JournalDown(), world.directory)
    try:
        result = poller.poll_once()
        assert (result.accepted, result.rejected, result.failed) == (0, 0, 1)
        assert "journal_unavailable" in result.errors[0]
        assert len(poller.client.get_status_list()) == 1  # still waiting, not closed
        poller.service = world.home_server.app.state.inbox
        assert poller.poll_once().accepted == 1
    finally:
        poller.close()
    assert world.home_journal.get_message(reply_uuid, direction=Direction.INBOUND)


def test_the_simulated_fachverfahren_answers_a_consultation_over_xta(world: World) -> None:
    """City → Kreis by the XTA channel (sendMessage → getTransportReport), the Kreis's
    Fachverfahren fetches it from its msgBox and answers; the city's poller fetches the answer."""
    factory = Messages(world.home, world.kreis)
    consultation = factory.outgoing()
    _sent(world.home_journal, consultation.payload, to=world.kreis, by=world.home)
    sender = XtaSender(world.kreis, world.directory)
    try:
        receipt = sender.send(consultation)
    finally:
        sender.close()
    assert receipt.state == "delivered"  # held by the server for the reader
    xta_fachverfahren(world.directory, world.kreis, world.home)()  # one round of the Kreis
    [poller] = world.pollers()
    try:
        deadline = time.monotonic() + 10
        while not poller.poll_once().accepted and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.close()
    [reply] = world.home_journal.messages(direction=Direction.INBOUND)
    assert reply.sender_agency == KREIS and reply.message_type == "amt.rueckmeldung.0900"
    assert reply.in_reply_to == consultation.nachrichten_uuid
    # the Kreis's msgBox was emptied (fetched and closed)
    with httpx.Client(trust_env=False, timeout=10) as http:
        assert world.kreis_client(http).get_status_list() == []
    # a second round of the Fachverfahren answers nothing twice
    xta_fachverfahren(world.directory, world.kreis, world.home)()
    assert len(world.home_journal.messages(direction=Direction.INBOUND)) == 1


def test_the_city_cannot_post_a_reply_in_the_kreiss_name(world: World) -> None:
    """The server refuses a message whose Kopf author is not the caller (identity holds there
    too): the city cannot post a reply in the Kreis's name."""
    _, payload = _reply_from(world.kreis, world.home)
    with httpx.Client(trust_env=False, timeout=10) as http:
        city = world.kreis_client(http, world.home)
        with pytest.raises(XtaFault) as caught:
            _send_over_xta(city, payload, world.home)
    assert caught.value.kind in ("PermissionDeniedException", "ParameterIsNotValidException")
    assert world.xta_journal.messages() == []


def test_no_xta_agency_no_poller(world: World) -> None:
    plain = Directory(
        [a for a in world.directory if a.channel is not Channel.XTA],
        roles=world.directory.roles,
        environ=DEV_ENV,
    )
    assert xta_pollers(world.home_server.app.state.inbox, plain) == []
