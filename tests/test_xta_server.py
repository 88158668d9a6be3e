"""The XTA 2 ports of the inbox over real sockets (uvicorn on 127.0.0.1, SQLite journal, the
OWL directory with dev tokens): every operation, answers validated against the official XSDs,
MTOM and inline base64, the same journal and mailboxes as the HTTP API, hostile requests.

The inbox is stadt-paderborn's (hosting ihk-owl's mailbox); kreis-paderborn sends."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from lxml import etree
from test_inbox_support import Messages, auth, make_directory, readdress, sample, table_counts
from xta_support import (
    META,
    NS,
    OSCI,
    WSA,
    XTA,
    A,
    Answer,
    M,
    author_header,
    call,
    container_body,
    envelope,
    inline,
    metadata_header,
    mtom_body,
)

from connectors.directory import Directory
from connectors.inbox import InboxConfig, InboxServer, create_app
from connectors.journal import DeliveryState, Journal

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
SENDER = "kreis-paderborn"
HOSTED = "ihk-owl"
MiB = 1 << 20


@dataclass
class Xta:
    url: str
    db_url: str
    journal: Journal
    directory: Directory

    def kennung(self, agency: str) -> str:
        return self.directory.get(agency).behoerdenkennung

    def messages(self, author: str, reader: str) -> Messages:
        return Messages(self.directory.get(author), self.directory.get(reader))

    def count(self) -> dict[str, int]:
        return table_counts(self.db_url)

    def call(self, port: str, data: bytes, agency: str = SENDER, **kw: object) -> Answer:
        return call(self.url, port, data, agency=agency, **kw)  # type: ignore[arg-type]

    def send_inline(
        self,
        payload: bytes,
        uid: str,
        *,
        author: str = SENDER,
        reader: str = HOSTED,
        agency: str = SENDER,
        **meta: str,
    ) -> Answer:
        head = metadata_header(
            author=self.kennung(author), reader=self.kennung(reader), nachrichten_uuid=uid, **meta
        )
        data = envelope(A + "SendMessage", container_body(inline(payload)), headers=head)
        return self.call("SendXtaPort", data, agency)

    def send_mtom(
        self, payload: bytes, uid: str, *, author: str = SENDER, reader: str = HOSTED
    ) -> Answer:
        head = metadata_header(
            author=self.kennung(author), reader=self.kennung(reader), nachrichten_uuid=uid
        )
        include = (
            '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
            'href="cid:payload%40test"/>'
        )
        root = envelope(A + "SendMessage", container_body(include), headers=head)
        content_type, body = mtom_body(root, {"payload@test": payload})
        return self.call("SendXtaPort", body, author, content_type=content_type)


@pytest.fixture(scope="module")
def xta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xta]:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('xta') / 'journal.sqlite'}"
    journal = Journal(db_url, create=True)
    directory = make_directory()
    app = create_app(
        HOME, journal=journal, directory=directory, config=InboxConfig(max_body_bytes=24 * MiB)
    )
    try:
        with InboxServer(app, port=0) as server:
            yield Xta(server.url, db_url, journal, directory)
    finally:
        journal.close()


def _mailbox_fetch(agency: str, uid: str | None = None) -> str:
    body = "<osci:MsgBoxFetchRequest>"
    if uid:
        body += (
            f"<osci:MsgSelector><wsa:MessageID>urn:uuid:{uid}</wsa:MessageID></osci:MsgSelector>"
        )
    return body + "</osci:MsgBoxFetchRequest>"


def _close(uid: str) -> str:
    return (
        f'<osci:MsgBoxCloseRequest MsgBoxRequestID="urn:uuid:{uuid.uuid4()}">'
        f"<osci:LastMsgReceived>urn:uuid:{uid}</osci:LastMsgReceived></osci:MsgBoxCloseRequest>"
    )


# ------------------------------------------------------------------------ management


def test_check_account_active_and_create_message_id(xta: Xta) -> None:
    request = envelope(A + "CheckAccountActive", headers=author_header(xta.kennung(SENDER)))
    answer = xta.call("ManagementPort", request)
    assert answer.status == 200 and answer.body is None
    assert answer.header("Action").text == A + "CheckAccountActive"
    assert answer.header("RelatesTo").text == etree.fromstring(request).findtext(
        "s12:Header/wsa:MessageID", namespaces=NS
    )
    # someone else's Author identifier
    other = envelope(A + "CheckAccountActive", headers=author_header(xta.kennung(HOME)))
    assert xta.call("ManagementPort", other).fault_detail() == ("PermissionDeniedException", "9014")

    answer = xta.call("ManagementPort", envelope(A + "CreateMessageID"))
    assert answer.body.tag == f"{{{WSA}}}MessageID"
    reserved = answer.body.text
    assert reserved.startswith("urn:uuid:") and uuid.UUID(reserved[9:])
    # a MessageID reserved for kreis-paderborn is refused for another sender
    uid = reserved[9:]
    _, body = xta.messages(HOME, HOSTED).new(uid)
    refused = xta.send_inline(body, uid, author=HOME, agency=HOME)
    assert refused.fault_detail() == ("ParameterIsNotValidException", "9024")
    assert xta.journal.deliveries(nachrichten_uuid=uid) == []


def test_lookup_service(xta: Xta) -> None:
    def lookup(kennung: str, service: str) -> str:
        return (
            f"<xta:LookupServiceRequestList><xta:LookupService><oscimeta:Reader>"
            f'<oscimeta:Identifier type="xoev">{kennung}</oscimeta:Identifier>'
            f"</oscimeta:Reader><xta:ServiceType>{service}</xta:ServiceType>"
            "</xta:LookupService></xta:LookupServiceRequestList>"
        )

    body = (
        "<xta:LookupServiceRequest>"
        + lookup(xta.kennung(HOSTED), XGA_NS)
        + lookup(xta.kennung("it-nrw"), XGA_NS)
        + lookup(xta.kennung(HOME), "urn:other")
        + "</xta:LookupServiceRequest>"
    )
    answer = xta.call("ManagementPort", envelope(A + "IsServiceAvailable", body))
    values = [e.text for e in answer.body.iter(f"{{{XTA}}}ServiceIsAvailable")]
    assert values == ["true", "false", "false"]


XGA_NS = "http://www.xgewerbeanzeige.de/spezifikation/2.2"


# ------------------------------------------------------------------------ sending


def test_inline_send_is_seen_by_the_http_mailbox_and_status(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    before = xta.count()
    answer = xta.send_inline(body, uid)
    assert answer.status == 200 and answer.fault is None and answer.body is None
    assert answer.header("Action").text == A + "SendMessage"
    after = xta.count()
    assert (after["messages"], after["deliveries"]) == (
        before["messages"] + 1,
        before["deliveries"] + 1,
    )
    assert xta.journal.payload(uid) == body
    listing = httpx.get(f"{xta.url}/v1/mailbox", headers=auth(HOSTED)).json()
    assert uid in {m["nachrichtenUUID"] for m in listing["messages"]}
    fetched = httpx.get(f"{xta.url}/v1/mailbox/{uid}", headers=auth(HOSTED))
    assert fetched.content == body
    status = httpx.get(f"{xta.url}/v1/messages/{uid}/status", headers=auth(SENDER)).json()
    assert status["state"] == "delivered" and status["sender"] == SENDER

    report = xta.call(
        "ManagementPort",
        envelope(A + "GetTransportReport", f"<wsa:MessageID>urn:uuid:{uid}</wsa:MessageID>"),
    )
    tr = report.body
    assert tr.tag == f"{{{XTA}}}TransportReport"
    assert tr.findtext("xta:MessageStatus/xta:Status", namespaces=NS) == "0"
    meta = tr.find("oscimeta:MessageMetaData", NS)
    assert meta.findtext(
        "oscimeta:Originators/oscimeta:Author/oscimeta:Identifier", namespaces=NS
    ) == xta.kennung(SENDER)
    assert meta.findtext(
        "oscimeta:Destinations/oscimeta:Reader/oscimeta:Identifier", namespaces=NS
    ) == xta.kennung(HOSTED)
    assert meta.find("oscimeta:Qualifier/oscimeta:MessageType", NS).get("payloadSchema") == XGA_NS
    # only the sender sees the report; others get InvalidMessageID, as for an unknown id
    for agency in (HOSTED, HOME):
        refused = xta.call(
            "ManagementPort",
            envelope(A + "GetTransportReport", f"<wsa:MessageID>urn:uuid:{uid}</wsa:MessageID>"),
            agency,
        )
        assert refused.fault_detail() == ("InvalidMessageIDException", "9070")
    # cancel: delivered at once, nothing to withdraw
    cancel = xta.call(
        "ManagementPort",
        envelope(A + "CancelMessage", f"<wsa:MessageID>urn:uuid:{uid}</wsa:MessageID>"),
    )
    assert cancel.fault_detail() == ("CancelDeniedException", "9101")


def test_mtom_send_and_repeat_is_stored_once(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    assert xta.send_mtom(body, uid).fault is None
    before = xta.count()
    again = xta.send_mtom(body, uid)
    assert again.status == 200 and again.fault is None
    again_inline = xta.send_inline(body, uid)
    assert again_inline.fault is None
    assert xta.count() == before
    assert xta.journal.payload(uid) == body
    other = body.replace(b"Restaurant", b"Imbiss")
    conflict = xta.send_inline(other, uid)
    assert conflict.fault_detail() == ("ParameterIsNotValidException", "9024")
    assert xta.journal.payload(uid) == body and xta.count() == before


def test_invalid_message_is_a_schema_violation_with_findings(xta: Xta) -> None:
    uid = str(uuid.uuid4())
    body = readdress(sample("invalid-ummeldung-ihk-0200.xml"), nachrichten_uuid=uid)
    before = xta.count()
    answer = xta.send_inline(body, uid, author=HOME, agency=HOME, message_type="0200")
    assert answer.status == 400
    assert answer.fault_detail() == ("MessageSchemaViolationException", "9050")
    findings = answer.fault.findall(".//{urn:amtsbote:xta:1}Finding")
    assert findings and any("familienname" in (f.text or "") for f in findings)
    assert all(f.get("rule") and f.get("line") for f in findings)
    assert xta.count() == before


def test_metadata_must_be_the_callers_and_fit_the_message(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    before = xta.count()
    # Author of the metadata is not the caller
    answer = xta.send_inline(body, uid, author=HOME)
    assert answer.fault_detail() == ("PermissionDeniedException", "9014")
    assert answer.status == 403
    # reader contradicts the Nachrichtenkopf
    answer = xta.send_inline(body, uid, reader=HOME)
    assert answer.fault_detail() == ("ParameterIsNotValidException", "9022")
    # payloadSchema contradicts the root namespace
    answer = xta.send_inline(body, uid, payload_schema="urn:other")
    assert answer.fault_detail() == ("ParameterIsNotValidException", "9022")
    # MessageID is not the nachrichtenUUID
    answer = xta.send_inline(body, str(uuid.uuid4()))
    assert answer.fault_detail() == ("ParameterIsNotValidException", "9022")
    # no MessageMetaData at all
    data = envelope(A + "SendMessage", container_body(inline(body)))
    assert xta.call("SendXtaPort", data).fault_detail() == ("ParameterIsNotValidException", "9020")
    assert xta.count() == before


def test_send_message_sync_is_refused(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    head = metadata_header(
        author=xta.kennung(SENDER), reader=xta.kennung(HOSTED), nachrichten_uuid=uid
    )
    before = xta.count()
    answer = xta.call(
        "SendXtaPort", envelope(A + "SendMessageSync", container_body(inline(body)), headers=head)
    )
    assert answer.fault_detail() == ("SyncAsyncException", "9080")
    assert answer.header("Action").text == A + "SendMessageSync"
    assert xta.count() == before


# ------------------------------------------------------------------------ mailbox


def test_http_delivery_is_fetched_and_closed_over_xta(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    posted = httpx.post(
        f"{xta.url}/v1/messages",
        content=body,
        headers={**auth(SENDER), "Content-Type": "application/xml"},
    )
    assert posted.status_code == 202

    listing = xta.call(
        "MsgBoxPort",
        envelope(
            M + "MsgBoxStatusListRequest", '<osci:MsgBoxStatusListRequest maxListItems="100"/>'
        ),
        HOSTED,
    )
    ids = listing.body.xpath(
        "oscimeta:MessageMetaData/oscimeta:MsgIdentification/wsa:MessageID/text()", namespaces=NS
    )
    assert f"urn:uuid:{uid}" in ids
    assert listing.header("MsgBoxResponse", OSCI) is not None
    attributes = xta.call(
        "MsgBoxPort",
        envelope(
            M + "MsgBoxStatusListRequest",
            '<osci:MsgBoxStatusListRequest ListForm="MsgAtrributes"/>',
        ),
        HOSTED,
    )
    assert f"urn:uuid:{uid}" in attributes.body.xpath(
        "osci:MsgAttributes/wsa:MessageID/text()", namespaces=NS
    )
    # the caller's own mailbox only
    mine = xta.call(
        "MsgBoxPort",
        envelope(M + "MsgBoxStatusListRequest", "<osci:MsgBoxStatusListRequest/>"),
        HOME,
    )
    assert f"urn:uuid:{uid}" not in mine.body.xpath(".//wsa:MessageID/text()", namespaces=NS)
    no_box = xta.call(
        "MsgBoxPort",
        envelope(M + "MsgBoxStatusListRequest", "<osci:MsgBoxStatusListRequest/>"),
        SENDER,
    )
    assert no_box.fault_detail() == ("PermissionDeniedException", "9013")

    fetched = xta.call(
        "MsgBoxPort", envelope(M + "MsgBoxFetchRequest", _mailbox_fetch(HOSTED, uid)), HOSTED
    )
    message = fetched.body.find("xta:ContentContainer/xta:Message", NS)
    assert message.get("contentType") == "application/xml"
    href = message.find("{http://www.w3.org/2004/08/xop/include}Include").get("href")
    assert fetched.attachments[href[4:].replace("%40", "@")] == body
    assert fetched.header("MessageMetaData", META) is not None
    # another agency cannot fetch or close it
    for agency in (HOME, SENDER):
        refused = xta.call(
            "MsgBoxPort", envelope(M + "MsgBoxFetchRequest", _mailbox_fetch(agency, uid)), agency
        )
        assert refused.fault_detail() == ("InvalidMessageIDException", "9070")
    before = xta.count()
    refused = xta.call("MsgBoxPort", envelope(M + "MsgBoxCloseRequest", _close(uid)), HOME)
    assert refused.fault_detail() == ("InvalidMessageIDException", "9070")
    assert xta.count() == before
    [delivery] = xta.journal.deliveries(nachrichten_uuid=uid)
    assert delivery.state is DeliveryState.DELIVERED

    closed = xta.call("MsgBoxPort", envelope(M + "MsgBoxCloseRequest", _close(uid)), HOSTED)
    assert closed.fault is None and closed.body is None
    [delivery] = xta.journal.deliveries(nachrichten_uuid=uid)
    assert delivery.state is DeliveryState.FETCHED
    status = httpx.get(f"{xta.url}/v1/messages/{uid}/status", headers=auth(SENDER)).json()
    assert status["state"] == "fetched"
    report = xta.call(
        "ManagementPort",
        envelope(A + "GetTransportReport", f"<wsa:MessageID>urn:uuid:{uid}</wsa:MessageID>"),
    )
    assert report.body.findtext("xta:MessageStatus/xta:Status", namespaces=NS) == "1"


def test_next_message_and_next_status_list(xta: Xta) -> None:
    factory = xta.messages(SENDER, HOME)
    uids = []
    for _ in range(3):
        uid, body = factory.new()
        assert xta.send_inline(body, uid, reader=HOME).fault is None
        uids.append(uid)
    first = xta.call(
        "MsgBoxPort",
        envelope(M + "MsgBoxStatusListRequest", '<osci:MsgBoxStatusListRequest maxListItems="1"/>'),
        HOME,
    )
    response = first.header("MsgBoxResponse", OSCI)
    request_id = response.get("MsgBoxRequestID")
    pending = int(response.findtext("osci:ItemsPending", namespaces=NS))
    assert pending >= 2
    seen = list(first.body.xpath(".//wsa:MessageID/text()", namespaces=NS))
    while pending:
        page = xta.call(
            "MsgBoxPort",
            envelope(
                M + "MsgBoxGetNextListRequest",
                f'<osci:MsgBoxGetNextRequest MsgBoxRequestID="{request_id}"/>',
            ),
            HOME,
        )
        seen += page.body.xpath(
            "oscimeta:MessageMetaData/oscimeta:MsgIdentification/wsa:MessageID/text()",
            namespaces=NS,
        )
        pending = int(
            page.header("MsgBoxResponse", OSCI).findtext("osci:ItemsPending", namespaces=NS) or 0
        )
    assert {f"urn:uuid:{u}" for u in uids} <= set(seen)
    unknown = xta.call(
        "MsgBoxPort",
        envelope(
            M + "MsgBoxGetNextListRequest",
            '<osci:MsgBoxGetNextRequest MsgBoxRequestID="urn:uuid:nope"/>',
        ),
        HOME,
    )
    assert unknown.header("MsgBoxResponse", OSCI).find("osci:NoMessageAvailable", NS) is not None

    got = []
    last = ""
    for _ in range(len(seen)):
        step = xta.call(
            "MsgBoxPort",
            envelope(
                M + "MsgBoxGetNextMsgRequest",
                f'<osci:MsgBoxGetNextRequest MsgBoxRequestID="urn:uuid:{uuid.uuid4()}">'
                f"{last}</osci:MsgBoxGetNextRequest>",
            ),
            HOME,
        )
        if step.fault is not None:
            break
        mid = step.header("MessageMetaData", META).findtext(
            "oscimeta:MsgIdentification/wsa:MessageID", namespaces=NS
        )
        got.append(mid)
        last += f"<osci:LastMsgReceived>{mid}</osci:LastMsgReceived>"
    assert {f"urn:uuid:{u}" for u in uids} <= set(got)


# ------------------------------------------------------------------------ hostile requests


def test_hostile_and_broken_requests_are_faults_and_store_nothing(xta: Xta) -> None:
    uid, body = xta.messages(SENDER, HOSTED).new()
    head = metadata_header(
        author=xta.kennung(SENDER), reader=xta.kennung(HOSTED), nachrichten_uuid=uid
    )
    good = envelope(A + "SendMessage", container_body(inline(body)), headers=head)
    before = xta.count()
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + good.split(b"?>", 1)[1].replace(b"<s12:Body>", b"<s12:Body>&x;")
    )
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        + good.split(b"?>", 1)[1]
    )
    cases = {
        "xxe": (xxe, ("ParameterIsNotValidException", "9000")),
        "bomb": (bomb, ("ParameterIsNotValidException", "9000")),
        "not xml": (b"<s12:Envelope", ("ParameterIsNotValidException", "9000")),
        "soap 1.1": (
            good.replace(
                b"http://www.w3.org/2003/05/soap-envelope",
                b"http://schemas.xmlsoap.org/soap/envelope/",
            ),
            ("ParameterIsNotValidException", "9000"),
        ),
        "unknown action": (
            envelope(A + "Nope", container_body(inline(body)), headers=head),
            ("ParameterIsNotValidException", "9022"),
        ),
        "action of another port": (
            envelope(M + "MsgBoxCloseRequest", _close(uid)),
            ("ParameterIsNotValidException", "9022"),
        ),
        "no action": (
            envelope(None, container_body(inline(body)), headers=head),
            ("ParameterIsNotValidException", "9020"),
        ),
        "no message id": (
            envelope(
                A + "SendMessage", container_body(inline(body)), headers=head, message_id=None
            ),
            ("ParameterIsNotValidException", "9020"),
        ),
        "bad base64": (
            envelope(A + "SendMessage", container_body("***"), headers=head),
            ("ParameterIsNotValidException", "9022"),
        ),
    }
    for name, (data, expected) in cases.items():
        answer = xta.call("SendXtaPort", data)
        assert answer.status == 400, name
        assert answer.fault_detail() == expected, name
    addressing = xta.call("SendXtaPort", cases["unknown action"][0]).fault
    assert (
        addressing.findtext("s12:Code/s12:Subcode/s12:Value", namespaces=NS)
        == "wsa:ActionNotSupported"
    )
    assert xta.count() == before
    # unknown MessageIDs
    unknown = f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
    answer = xta.call("ManagementPort", envelope(A + "GetTransportReport", unknown))
    assert answer.fault_detail() == ("InvalidMessageIDException", "9070")
    answer = xta.call(
        "MsgBoxPort",
        envelope(M + "MsgBoxFetchRequest", _mailbox_fetch(HOSTED, str(uuid.uuid4()))),
        HOSTED,
    )
    assert answer.fault_detail() == ("InvalidMessageIDException", "9070")
    answer = xta.call(
        "MsgBoxPort", envelope(M + "MsgBoxCloseRequest", _close(str(uuid.uuid4()))), HOSTED
    )
    assert answer.fault_detail() == ("InvalidMessageIDException", "9070")
    assert xta.count() == before


def test_oversized_and_unauthenticated_requests(xta: Xta) -> None:
    before = xta.count()
    limit = 24 * MiB * 4 // 3 + 256 * 1024
    # only the head is sent: the answer comes without the server waiting for the body
    host, port = xta.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        token = auth(SENDER)["Authorization"]
        sock.sendall(
            f"POST /services/XTAService/SendXtaPort HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {token}\r\nContent-Type: application/soap+xml\r\n"
            f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"9023" in head or b"Content-Length" in head

    def stream() -> Iterator[bytes]:
        for _ in range(limit // MiB + 2):
            yield b" " * MiB

    streamed = httpx.post(
        f"{xta.url}/services/XTAService/SendXtaPort",
        content=stream(),
        headers={**auth(SENDER), "Content-Type": "application/soap+xml"},
        timeout=60,
    )
    assert streamed.status_code == 413
    assert b"9023" in streamed.content
    no_token = httpx.post(
        f"{xta.url}/services/XTAService/ManagementPort",
        content=envelope(A + "CheckAccountActive"),
        headers={"Content-Type": "application/soap+xml"},
    )
    assert no_token.status_code == 401
    wrong_type = httpx.post(
        f"{xta.url}/services/XTAService/ManagementPort",
        content=envelope(A + "CheckAccountActive"),
        headers={**auth(SENDER), "Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415
    assert xta.count() == before


@pytest.mark.slow
def test_large_mtom_message_is_streamed_and_stored(xta: Xta) -> None:
    """A 20 MB message (a valid 0500 padded with comments) as MTOM attachment."""
    uid, body = xta.messages(SENDER, HOSTED).new()
    pad = b"".join(b"<!--" + b"p" * (MiB - 8) + b"-->\n" for _ in range(20))
    big = body.replace(b"?>", b"?>\n" + pad, 1) if body.startswith(b"<?xml") else pad + body
    assert len(big) > 20 * MiB
    answer = xta.send_mtom(big, uid)
    assert answer.fault is None, etree.tostring(answer.root)
    record = xta.journal.get_message(uid)
    assert record.payload_sha512 == hashlib.sha512(big).hexdigest()
    fetched = xta.call(
        "MsgBoxPort", envelope(M + "MsgBoxFetchRequest", _mailbox_fetch(HOSTED, uid)), HOSTED
    )
    assert list(fetched.attachments.values()) == [big]
