"""An independent XTA 2 client against the inbox: zeep, built from the vendored official WSDL,
its service address overridden to the loopback server, the bearer token on its session and
WS-Addressing by zeep's own ``WsAddressingPlugin`` (applied by zeep from the WSDL's actions).
Two implementations of the WSDL have to agree."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from test_inbox_support import Messages, auth, make_directory

from connectors.inbox import InboxConfig, InboxServer, create_app
from connectors.journal import DeliveryState, Journal
from connectors.xta.schema import SOAP12_SCHEMA, WSDL_PATH

zeep = pytest.importorskip("zeep")
from zeep.transports import Transport  # noqa: E402

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
SENDER = "kreis-paderborn"
HOSTED = "ihk-owl"
XGA = "http://www.xgewerbeanzeige.de/spezifikation/2.2"


class _OfflineTransport(Transport):  # type: ignore[misc]
    """zeep's transport, reading the WSDL's files locally; OSCI2_02.xsd's broken SOAP 1.2
    import (``schemaLocation=".xsd"``) resolves to the envelope schema shipped beside it."""

    def load(self, url: str) -> bytes:
        if url.endswith("/.xsd") or url == ".xsd":
            return SOAP12_SCHEMA.read_bytes()
        return super().load(url)  # type: ignore[no-any-return]


def _client(url: str, agency: str) -> zeep.Client:
    session = requests.Session()
    session.headers.update(auth(agency))
    session.trust_env = False
    # zeep applies its WsAddressingPlugin by itself to operations with a wsam:Action (all of
    # XTA's); passing it as plugin as well would send every WS-Addressing header twice
    client = zeep.Client(str(WSDL_PATH), transport=_OfflineTransport(session=session))
    assert all(
        op.abstract.wsa_action
        for binding in client.wsdl.bindings.values()
        for op in binding._operations.values()
    )
    return client


def _service(client: zeep.Client, url: str, port: str, binding: str) -> object:
    return client.create_service(
        f"{{http://xoev.de/transport/xta/211}}{binding}", f"{url}/services/XTAService/{port}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Journal, object]]:
    journal = Journal(f"sqlite:///{tmp_path_factory.mktemp('zeep') / 'j.sqlite'}", create=True)
    directory = make_directory()
    app = create_app(HOME, journal=journal, directory=directory, config=InboxConfig())
    try:
        with InboxServer(app, port=0) as running:
            yield running.url, journal, directory
    finally:
        journal.close()


def _party(client: zeep.Client, kennung: str) -> dict[str, object]:
    return {"Identifier": {"_value_1": kennung, "type": "xoev"}}


def test_zeep_client_sends_lists_fetches_and_closes(server: tuple[str, Journal, object]) -> None:
    url, journal, directory = server
    sender = _client(url, SENDER)
    management = _service(sender, url, "ManagementPort", "managementHttpsBinding")
    author_header = sender.get_element("{http://www.osci.eu/ws/2014/10/transport}Author")(
        **_party(sender, directory.get(SENDER).behoerdenkennung)  # type: ignore[attr-defined]
    )
    assert management.checkAccountActive(_soapheaders=[author_header]) is None  # type: ignore[attr-defined]
    message_id = management.createMessageId(_soapheaders=[author_header])  # type: ignore[attr-defined]
    value = getattr(message_id, "_value_1", message_id)
    assert str(value).startswith("urn:uuid:")
    uid = str(value)[9:]

    factory = Messages(directory.get(SENDER), directory.get(HOSTED))  # type: ignore[attr-defined]
    _, payload = factory.new(uid)
    meta_type = sender.get_element("{http://www.osci.eu/ws/2014/10/transport}MessageMetaData")
    metadata = meta_type(
        DeliveryAttributes={},
        Originators={"Author": _party(sender, factory.author.behoerdenkennung)},
        Destinations={"Reader": _party(sender, factory.reader.behoerdenkennung)},
        MsgIdentification={"MessageID": {"_value_1": f"urn:uuid:{uid}"}},
        Qualifier={
            "Service": XGA,
            "BusinessScenario": {"Undefined": "XGewerbeanzeige"},
            "MessageType": {
                "code": "0500",
                "listURI": "urn:test",
                "listVersionID": "1",
                "payloadSchema": XGA,
            },
        },
    )
    send = _service(sender, url, "SendXtaPort", "sendXTAHttpsBinding")
    container = {
        "Message": {"_value_1": payload, "contentType": "application/xml", "filename": "m.xml"}
    }
    assert send.sendMessage(ContentContainer=container, _soapheaders=[metadata]) is None  # type: ignore[attr-defined]
    [delivery] = journal.deliveries(nachrichten_uuid=uid)
    assert (delivery.recipient, delivery.state) == (HOSTED, DeliveryState.DELIVERED)
    assert journal.payload(uid) == payload

    reader = _client(url, HOSTED)
    msgbox = _service(reader, url, "MsgBoxPort", "msgBoxHttpsBinding")
    listing = msgbox.getStatusList(maxListItems=50)  # type: ignore[attr-defined]
    ids = [m.MsgIdentification.MessageID._value_1 for m in listing.body.MessageMetaData]
    assert f"urn:uuid:{uid}" in ids
    fetched = msgbox.getMessage(  # type: ignore[attr-defined]
        MsgSelector={"MessageID": [{"_value_1": f"urn:uuid:{uid}"}]}
    )
    assert fetched.body.ContentContainer.Message._value_1 == payload
    assert fetched.header.MessageMetaData.MsgIdentification.MessageID._value_1 == f"urn:uuid:{uid}"
    msgbox.close(  # type: ignore[attr-defined]
        MsgBoxRequestID=f"urn:uuid:{uuid.uuid4()}",
        LastMsgReceived=[{"_value_1": f"urn:uuid:{uid}"}],
    )
    [delivery] = journal.deliveries(nachrichten_uuid=uid)
    assert delivery.state is DeliveryState.FETCHED

    with pytest.raises(zeep.exceptions.Fault) as refused:
        msgbox.getMessage(  # type: ignore[attr-defined]
            MsgSelector={"MessageID": [{"_value_1": f"urn:uuid:{uuid.uuid4()}"}]}
        )
    detail = refused.value.detail
    assert detail is not None
    assert detail.findtext(".//{http://xoev.de/transport/xta/211}errorCode/code") == "9070"
