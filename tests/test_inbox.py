"""The inbox service over real sockets: uvicorn in a thread on 127.0.0.1, the real journal (SQLite
file and PostgreSQL), the real directory with development tokens, valid messages built from the
bundled Paderborn samples and the senders of ``connectors.senders`` as clients where they fit.

The inbox under test is stadt-paderborn's, which hosts the mailbox of ihk-owl."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from test_inbox_support import (
    AGENCIES_FILE,
    Messages,
    auth,
    make_directory,
    pg_schema,
    readdress,
    sample,
    table_counts,
    xml_headers,
)

from connectors.directory import Directory
from connectors.inbox import (
    ApiError,
    InboxConfig,
    InboxConfigError,
    InboxServer,
    InboxServerError,
    create_app,
    home_agency,
    journal_url_for,
)
from connectors.journal import DeliveryState, Direction, Journal, MessageRecord
from connectors.senders import (
    HttpSender,
    MailboxSender,
    PermanentSendError,
    SenderConfig,
)
from flows.cli import main as cli_main
from xoev.message import MessageInfo

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
LIMIT = 64 * 1024
#: A name from the 0500 sample: must never show up in logs.
PERSONAL = "Valentina"


@dataclass
class Inbox:
    url: str
    db_url: str
    journal: Journal
    observer: Journal
    """A second journal on the same database: sees only what is committed."""
    directory: Directory
    hook_calls: list[tuple[MessageRecord, MessageInfo, bool, bool]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    """nachrichtenUUIDs for which the hook raises."""

    def messages(self, author: str, reader: str) -> Messages:
        return Messages(self.directory.get(author), self.directory.get(reader))

    def count(self) -> dict[str, int]:
        return table_counts(self.db_url)

    def post(self, body: bytes, sender: str = "kreis-paderborn", **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/messages", content=body, headers=xml_headers(sender, **headers)
        )

    def sender(self, recipient: str, cls: type[HttpSender] = HttpSender) -> HttpSender:
        return cls(
            self.directory.get(recipient),
            self.directory,
            config=SenderConfig(rate_limit=False, read_timeout=10),
        )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def inbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Inbox]:
    with _database(request, tmp_path_factory) as db_url:
        journal = Journal(db_url, create=True)
        observer = Journal(db_url)
        port = free_port()
        directory = make_directory({HOME: f"http://127.0.0.1:{port}"})
        state = Inbox(f"http://127.0.0.1:{port}", db_url, journal, observer, directory)

        def hook(record: MessageRecord, info: MessageInfo, created: bool) -> None:
            # Runs after the commit: a separate connection must see the message already.
            visible = state.observer.get_message(record.nachrichten_uuid).id == record.id
            state.hook_calls.append((record, info, created, visible))
            if record.nachrichten_uuid in state.failing:
                raise RuntimeError(f"hook broke on a message about {PERSONAL} Rojas Fuentes")

        app = create_app(
            HOME,
            journal=journal,
            directory=directory,
            config=InboxConfig(max_body_bytes=LIMIT),
            on_accepted=hook,
        )
        try:
            with InboxServer(app, port=port):
                yield state
        finally:
            observer.close()
            journal.close()


def _database(request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> Any:
    if request.param == "sqlite":
        from contextlib import nullcontext

        return nullcontext(f"sqlite:///{tmp.mktemp('inbox') / 'journal.sqlite'}")
    return pg_schema(request.getfixturevalue("pg_url"))


def _hook_call(inbox: Inbox, nachrichten_uuid: str) -> list[tuple[Any, ...]]:
    return [c for c in inbox.hook_calls if c[0].nachrichten_uuid == nachrichten_uuid]


# ------------------------------------------------------------------------ accepting messages


def test_valid_message_is_committed_then_acknowledged(inbox: Inbox) -> None:
    uid, body = inbox.messages("kreis-paderborn", HOME).new()
    before = inbox.count()
    response = inbox.post(body, **{"X-Nachrichten-UUID": uid, "X-Empfaenger": HOME})
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["nachrichtenUUID"] == uid
    assert receipt["sha512"] == hashlib.sha512(body).hexdigest()
    assert receipt["state"] == "delivered"
    assert receipt["recipient"] == HOME
    assert datetime.fromisoformat(receipt["received_at"]).tzinfo is not None
    # stored, byte for byte, by a committed transaction (the observer is another connection)
    assert inbox.observer.payload(uid) == body
    record = inbox.observer.get_message(uid)
    assert (record.sender_agency, record.author, record.reader) == (
        "kreis-paderborn",
        "MELDID:05774000",
        "MELDID:05774032",
    )
    assert record.recorded_at.isoformat() == receipt["received_at"]
    [(hook_record, info, created, visible)] = _hook_call(inbox, uid)
    assert created and visible, "hook must run after the commit"
    assert hook_record.id == record.id and info.message_type == "0500"
    after = inbox.count()
    assert after["messages"] == before["messages"] + 1
    assert after["deliveries"] == before["deliveries"] + 1


def test_repeat_returns_the_same_receipt_and_stores_nothing_twice(inbox: Inbox) -> None:
    uid, body = inbox.messages("kreis-paderborn", HOME).new()
    first = inbox.post(body)
    before = inbox.count()
    second = inbox.post(body)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json() == first.json()
    assert inbox.count() == before
    assert [c[2] for c in _hook_call(inbox, uid)] == [True, False]


def test_same_uuid_other_payload_is_a_conflict(inbox: Inbox) -> None:
    uid, body = inbox.messages("kreis-paderborn", HOME).new()
    assert inbox.post(body).status_code == 202
    before = inbox.count()
    other = body.replace(b"Restaurant", b"Imbiss")
    response = inbox.post(other)
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert uid in response.json()["detail"]
    assert inbox.observer.payload(uid) == body
    assert inbox.count()["messages"] == before["messages"]


def test_a_uuid_is_unique_per_sender_and_another_senders_use_neither_blocks_nor_shows(
    inbox: Inbox, tmp_path: Path
) -> None:
    uid, genuine = inbox.messages("kreis-paderborn", HOME).new()
    _, squat = inbox.messages("ihk-owl", HOME).new(uid)  # ihk-owl takes the UUID first
    before = inbox.count()
    first = inbox.post(squat, sender="ihk-owl")
    assert first.status_code == 202, first.text
    second = inbox.post(genuine, sender="kreis-paderborn")
    assert second.status_code == 202, second.text  # not blocked by the squatter
    assert second.json()["nachrichtenUUID"] == uid
    assert second.json()["sha512"] == hashlib.sha512(genuine).hexdigest()
    assert inbox.count()["messages"] == before["messages"] + 2
    # repeats stay idempotent per sender; a changed payload is each sender's own conflict
    assert inbox.post(genuine, sender="kreis-paderborn").json() == second.json()
    assert inbox.post(squat, sender="ihk-owl").json() == first.json()
    changed = genuine.replace(b"Restaurant", b"Imbiss")
    assert inbox.post(changed, sender="kreis-paderborn").status_code == 409
    assert inbox.count()["messages"] == before["messages"] + 2
    # the genuine message is kept under kreis-paderborn's own key, and the hook got that key
    [record] = [
        c[0]
        for c in inbox.hook_calls
        if c[2] and c[0].sender_agency == "kreis-paderborn" and c[1].nachrichten_uuid == uid
    ]
    key = inbox.journal.inbound_key(uid, "kreis-paderborn")
    assert record.nachrichten_uuid == key != uid
    assert inbox.observer.payload(key) == genuine
    assert inbox.observer.payload(uid) == squat
    # the key is keyed by this installation's secret: another journal derives another one
    other = Journal(f"sqlite:///{tmp_path / 'other.sqlite'}", create=True)
    try:
        assert other.inbound_key(uid, "kreis-paderborn") != key
    finally:
        other.close()
    # each sender sees its own message; for a third the UUID is as unknown as a fresh one
    for sender, body in (("kreis-paderborn", genuine), ("ihk-owl", squat)):
        status = httpx.get(f"{inbox.url}/v1/messages/{uid}/status", headers=auth(sender))
        assert status.status_code == 200, status.text
        report = status.json()
        assert (report["nachrichtenUUID"], report["sender"]) == (uid, sender)
        assert report["sha512"] == hashlib.sha512(body).hexdigest()
    foreign = httpx.get(f"{inbox.url}/v1/messages/{uid}/status", headers=auth("hwk-owl"))
    fresh = uuid.uuid4()
    unknown = httpx.get(f"{inbox.url}/v1/messages/{fresh}/status", headers=auth("hwk-owl"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"] == unknown.json()["error"] == "not_found"
    assert foreign.json()["detail"].replace(uid, "U") == unknown.json()["detail"].replace(
        str(fresh), "U"
    )


def test_http_sender_gets_a_checked_receipt(inbox: Inbox) -> None:
    message = inbox.messages("kreis-paderborn", HOME).outgoing()
    with inbox.sender(HOME) as sender:
        receipt = sender.send(message)
        again = sender.send(message)
    assert receipt.nachrichten_uuid == message.nachrichten_uuid
    assert receipt.sha512 == message.sha512
    assert again == receipt


def test_xml_media_types(inbox: Inbox) -> None:
    factory = inbox.messages("kreis-paderborn", HOME)
    for media in ("text/xml", "application/xoev+xml", "application/xml; charset=utf-8"):
        _, body = factory.new()
        response = inbox.post(body, **{"Content-Type": media})
        assert response.status_code == 202, (media, response.text)


def test_hook_failure_keeps_the_message_and_the_answer(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    uid, body = inbox.messages("kreis-paderborn", HOME).new()
    inbox.failing.add(uid)
    with caplog.at_level(logging.INFO):
        response = inbox.post(body)
    assert response.status_code == 202
    assert inbox.observer.payload(uid) == body
    [event] = inbox.observer.events(nachrichten_uuid=uid, kind="inbox.hook_failed")
    assert event.detail == {"error_class": "RuntimeError", "created": True}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert uid in logged and "RuntimeError" in logged
    assert PERSONAL not in logged


# ------------------------------------------------------------------------ auth and addressing


def _refused(inbox: Inbox, response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data = response.json()
    assert data["error"] == code, data
    assert data["detail"]
    return dict(data)


def test_missing_and_wrong_tokens_are_401(inbox: Inbox) -> None:
    _, body = inbox.messages("kreis-paderborn", HOME).new()
    before = inbox.count()
    cases = [
        {"Content-Type": "application/xml"},
        {"Content-Type": "application/xml", "Authorization": "Bearer not-a-token"},
        {"Content-Type": "application/xml", "Authorization": "Basic a3JlaXM6cGFzcw=="},
        {"Content-Type": "application/xml", "Authorization": "Bearer"},
    ]
    for headers in cases:
        response = httpx.post(f"{inbox.url}/v1/messages", content=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] in ("unauthorized", "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    some = uuid.uuid4()
    for path in ("/v1/mailbox", f"/v1/mailbox/{some}", f"/v1/messages/{some}/status"):
        assert httpx.get(inbox.url + path).status_code == 401
    assert httpx.post(f"{inbox.url}/v1/mailbox/{uuid.uuid4()}/ack").status_code == 401
    assert inbox.count() == before


def test_sending_in_another_agencys_name_is_403(inbox: Inbox) -> None:
    # authored by kreis-paderborn, sent with hwk-owl's token
    _, body = inbox.messages("kreis-paderborn", HOME).new()
    before = inbox.count()
    data = _refused(inbox, inbox.post(body, sender="hwk-owl"), 403, "author_mismatch")
    assert "MELDID:05774000" in data["detail"] and "hwk-owl" in data["detail"]
    assert inbox.count() == before


def test_recipient_must_be_served_here(inbox: Inbox) -> None:
    factory = inbox.messages("kreis-paderborn", "it-nrw")
    before = inbox.count()
    _, body = factory.new()
    data = _refused(inbox, inbox.post(body), 422, "recipient_not_served")
    assert "it-nrw" in data["detail"] and "http://127.0.0.1:8704" in data["detail"]
    _, body = inbox.messages("kreis-paderborn", HOME).new()
    _refused(inbox, inbox.post(body, **{"X-Empfaenger": "nobody"}), 422, "unknown_recipient")
    _refused(inbox, inbox.post(body, **{"X-Empfaenger": "ihk-owl"}), 422, "recipient_mismatch")
    unknown_reader = readdress(body, reader="MELDID:99999999")
    data = _refused(inbox, inbox.post(unknown_reader), 422, "unknown_recipient")
    assert "MELDID:99999999" in data["detail"]
    assert inbox.count() == before


def test_uuid_header_must_match(inbox: Inbox) -> None:
    uid, body = inbox.messages("kreis-paderborn", HOME).new()
    before = inbox.count()
    other = str(uuid.uuid4())
    data = _refused(inbox, inbox.post(body, **{"X-Nachrichten-UUID": other}), 422, "uuid_mismatch")
    assert other in data["detail"] and uid in data["detail"]
    _refused(inbox, inbox.post(body, **{"X-Nachrichten-UUID": "12"}), 422, "invalid_header")
    assert inbox.count() == before
    assert inbox.post(body, **{"X-Nachrichten-UUID": uid.upper()}).status_code == 202


# ------------------------------------------------------------------------ validation


def test_invalid_message_gets_its_findings(inbox: Inbox) -> None:
    body = sample("invalid-ummeldung-ihk-0200.xml")  # stadt-paderborn → ihk-owl, 1 schema error
    body = readdress(body, nachrichten_uuid=str(uuid.uuid4()))
    before = inbox.count()
    data = _refused(inbox, inbox.post(body, sender=HOME), 422, "invalid_message")
    [finding] = [f for f in data["findings"] if f["severity"] == "error"]
    assert finding["rule"].startswith("xsd:")
    assert "familienname" in finding["message"]
    assert finding["line"] and finding["xpath"].endswith("beteiligtePerson")
    assert data["message_type"] == "0200" and data["standard"] == "XGewerbeanzeige"
    assert inbox.count() == before


def test_kosit_invalid_sample_is_refused_with_findings(inbox: Inbox, xgwa_samples: Path) -> None:
    body = readdress(
        (xgwa_samples / "xgwa2.2-invalid.xml").read_bytes(),
        nachrichten_uuid=str(uuid.uuid4()),
        author="MELDID:05774000",
        reader="MELDID:05774032",
    )
    before = inbox.count()
    data = _refused(inbox, inbox.post(body), 422, "invalid_message")
    assert data["findings"] and all({"line", "xpath", "rule"} <= set(f) for f in data["findings"])
    assert inbox.count() == before


def test_kosit_valid_sample_is_accepted(inbox: Inbox, xgwa_samples: Path) -> None:
    uid = str(uuid.uuid4())
    body = readdress(
        (xgwa_samples / "xgwa2.2-valid.xml").read_bytes(),
        nachrichten_uuid=uid,
        author="MELDID:05774000",
        reader="MELDID:05774032",
    )
    response = inbox.post(body)
    assert response.status_code == 202, response.text
    assert inbox.observer.payload(uid) == body


def test_unknown_document_is_422(inbox: Inbox, xgwa_samples: Path) -> None:
    before = inbox.count()
    response = inbox.post((xgwa_samples / "xy-unknown.xml").read_bytes())
    data = _refused(inbox, response, 422, "unknown_document")
    assert "xy" in data["detail"]
    assert inbox.count() == before


# ------------------------------------------------------------------------ hostile input

_LOL = [b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n']
_LOL += [
    b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)) * 10)
    for i in range(1, 10)
]
_LOL.append(b"]>\n<lolz>&lol9;</lolz>\n")

HOSTILE: list[tuple[str, bytes, int, str]] = [
    (
        "xxe",
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b"<r>&x;</r>",
        400,
        "external_entity",
    ),
    (
        "xxe-parameter-entity",
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><r/>',
        400,
        "external_entity",
    ),
    ("billion-laughs", b"".join(_LOL), 400, "entity_declaration"),
    (
        "external-dtd",
        b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://127.0.0.1:9/r.dtd">\n<r/>',
        400,
        "external_dtd",
    ),
    ("plain-doctype", b"<!DOCTYPE r>\n<r/>", 400, "doctype"),
    ("not-xml", b"this is not XML at all", 400, "not_xml"),
    ("binary", bytes(range(256)) * 64, 400, "not_xml"),
    ("truncated", sample()[:3000], 400, "not_xml"),
    ("empty", b"", 400, "not_xml"),
    (
        "bad-encoding",
        '<?xml version="1.0" encoding="UTF-8"?><r>Größe</r>'.encode("latin-1"),
        400,
        "encoding",
    ),
    ("too-deep", b"<a>" * 300 + b"</a>" * 300, 400, "too_deep"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_xml_is_refused_and_nothing_stored(
    inbox: Inbox, name: str, body: bytes, status: int, code: str
) -> None:
    before = inbox.count()
    data = _refused(inbox, inbox.post(body), status, code)
    assert "root:" not in json.dumps(data)  # /etc/passwd was not read
    assert inbox.count() == before
    assert not [c for c in inbox.hook_calls if c[0].nachrichten_uuid is None]


def test_wrong_content_type_is_415(inbox: Inbox) -> None:
    _, body = inbox.messages("kreis-paderborn", HOME).new()
    before = inbox.count()
    for media in ("application/json", "text/plain", "multipart/form-data; boundary=x"):
        _refused(inbox, inbox.post(body, **{"Content-Type": media}), 415, "unsupported_media_type")
    response = httpx.post(f"{inbox.url}/v1/messages", content=body, headers=auth("kreis-paderborn"))
    _refused(inbox, response, 415, "unsupported_media_type")
    assert inbox.count() == before


def _raw(url: str, head: bytes, parts: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Send a hand-made request and read the answer (the body is JSON)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, json.loads(rest[:length])


def _head(url: str, sender: str, extra: str) -> bytes:
    token = auth(sender)["Authorization"]
    return (
        f"POST /v1/messages HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
        f"Authorization: {token}\r\nContent-Type: application/xml\r\n{extra}\r\n"
    ).encode()


def test_oversize_by_content_length_is_refused_before_reading(inbox: Inbox) -> None:
    before = inbox.count()
    # Only the head is sent: the answer must come without the server waiting for the body.
    status, data = _raw(
        inbox.url, _head(inbox.url, "kreis-paderborn", f"Content-Length: {LIMIT + 1}\r\n"), []
    )
    assert (status, data["error"], data["limit"]) == (413, "too_large", LIMIT)
    assert str(LIMIT + 1) in data["detail"]
    assert inbox.count() == before


def test_oversize_streamed_body_is_cut_off_at_the_limit(inbox: Inbox) -> None:
    before = inbox.count()
    chunk = b"<a>" + b"x" * (16 * 1024 - 7) + b"</a>"
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 1)]
    # no terminating chunk: the server must stop reading by itself once the limit is passed
    status, data = _raw(
        inbox.url, _head(inbox.url, "kreis-paderborn", "Transfer-Encoding: chunked\r\n"), parts
    )
    assert (status, data["error"]) == (413, "too_large")
    assert inbox.count() == before


def test_health_and_openapi(inbox: Inbox) -> None:
    health = httpx.get(inbox.url + "/healthz")
    assert health.status_code == 200
    hosted = [a.id for a in inbox.directory.hosted_by(HOME)]
    assert "ihk-owl" in hosted
    assert health.json()["mailboxes"] == hosted
    spec = httpx.get(inbox.url + "/openapi.json").json()
    assert set(spec["paths"]) == {
        "/healthz",
        "/v1/messages",
        "/v1/messages/{nachrichten_uuid}/status",
        "/v1/mailbox",
        "/v1/mailbox/{nachrichten_uuid}",
        "/v1/mailbox/{nachrichten_uuid}/ack",
    }
    assert "agencyToken" in spec["components"]["securitySchemes"]
    post = spec["paths"]["/v1/messages"]["post"]
    assert "application/xml" in post["requestBody"]["content"]
    assert {"202", "200", "401", "409", "413", "415", "422"} <= set(post["responses"])
    unknown = httpx.get(inbox.url + "/nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


# ------------------------------------------------------------------------ mailbox flow


def test_mailbox_deposit_list_fetch_ack_and_status(inbox: Inbox) -> None:
    """stadt-paderborn deposits a message for ihk-owl (hosted here) with the MailboxSender;
    ihk-owl lists, fetches and acknowledges it; the sender sees ``fetched`` in its report."""
    factory = inbox.messages(HOME, "ihk-owl")
    message = factory.outgoing()
    uid = message.nachrichten_uuid
    with inbox.sender("ihk-owl", MailboxSender) as sender:
        receipt = sender.send(message)
    assert (receipt.state, receipt.raw["recipient"]) == ("delivered", "ihk-owl")

    listing = httpx.get(f"{inbox.url}/v1/mailbox", headers=auth("ihk-owl")).json()
    assert listing["agency"] == "ihk-owl"
    [entry] = [m for m in listing["messages"] if m["nachrichtenUUID"] == uid]
    assert entry["message_type"] == "abh.gewerbemeldung.0500"
    assert entry["author"] == "MELDID:05774032"
    assert entry["sender"] == HOME
    assert entry["size"] == len(message.payload)
    assert entry["received_at"] == receipt.raw["received_at"]
    # the mailbox is ihk-owl's alone
    mine = httpx.get(f"{inbox.url}/v1/mailbox", headers=auth(HOME)).json()
    assert uid not in {m["nachrichtenUUID"] for m in mine["messages"]}
    assert httpx.get(f"{inbox.url}/v1/mailbox", headers=auth("kreis-paderborn")).status_code == 403

    fetched = httpx.get(f"{inbox.url}/v1/mailbox/{uid}", headers=auth("ihk-owl"))
    assert fetched.status_code == 200
    assert fetched.content == message.payload
    assert fetched.headers["content-type"].startswith("application/xml")
    assert fetched.headers["X-Content-SHA512"] == message.sha512
    for other in (HOME, "kreis-paderborn"):  # another mailbox's message: as if unknown
        refused = httpx.get(f"{inbox.url}/v1/mailbox/{uid}", headers=auth(other))
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"
        refused = httpx.post(f"{inbox.url}/v1/mailbox/{uid}/ack", headers=auth(other))
        assert refused.status_code == 404
    unknown = uuid.uuid4()
    missing = httpx.get(f"{inbox.url}/v1/mailbox/{unknown}", headers=auth("ihk-owl"))
    assert missing.status_code == 404
    missing = httpx.post(f"{inbox.url}/v1/mailbox/{unknown}/ack", headers=auth("ihk-owl"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    ack = httpx.post(f"{inbox.url}/v1/mailbox/{uid}/ack", headers=auth("ihk-owl"))
    assert ack.status_code == 200
    assert ack.json()["state"] == "fetched"
    again = httpx.post(f"{inbox.url}/v1/mailbox/{uid}/ack", headers=auth("ihk-owl"))
    assert again.status_code == 200 and again.json() == ack.json()
    listing = httpx.get(f"{inbox.url}/v1/mailbox", headers=auth("ihk-owl")).json()
    assert uid not in {m["nachrichtenUUID"] for m in listing["messages"]}
    [delivery] = inbox.observer.deliveries(nachrichten_uuid=uid)
    assert (delivery.recipient, delivery.state) == ("ihk-owl", DeliveryState.FETCHED)

    status = httpx.get(f"{inbox.url}/v1/messages/{uid}/status", headers=auth(HOME))
    assert status.status_code == 200
    report = status.json()
    assert (report["sender"], report["state"]) == (HOME, "fetched")
    assert [(h["from"], h["to"], h["recipient"]) for h in report["history"]] == [
        (None, "delivered", "ihk-owl"),
        ("delivered", "fetched", "ihk-owl"),
    ]
    assert report["history"][1]["actor"] == "ihk-owl"
    assert report["history"][0]["at"] <= report["history"][1]["at"]
    # the status report is for the sender only; for anybody else the UUID is unknown
    nothing = httpx.get(f"{inbox.url}/v1/messages/{unknown}/status", headers=auth(HOME))
    assert nothing.status_code == 404
    for other in ("ihk-owl", "kreis-paderborn"):
        refused = httpx.get(f"{inbox.url}/v1/messages/{uid}/status", headers=auth(other))
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"


def test_mailbox_limit(inbox: Inbox) -> None:
    factory = inbox.messages("kreis-paderborn", "ihk-owl")
    for _ in range(3):
        _, body = factory.new()
        assert inbox.post(body).status_code == 202
    page = httpx.get(f"{inbox.url}/v1/mailbox?limit=2", headers=auth("ihk-owl")).json()
    assert page["count"] == 2 == len(page["messages"])
    times = [m["received_at"] for m in page["messages"]]
    assert times == sorted(times)
    bad = httpx.get(f"{inbox.url}/v1/mailbox?limit=0", headers=auth("ihk-owl"))
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    assert "limit" in bad.json()["detail"]


def test_bad_uuid_in_path_is_422(inbox: Inbox) -> None:
    response = httpx.get(f"{inbox.url}/v1/mailbox/not-a-uuid", headers=auth("ihk-owl"))
    assert response.status_code == 422
    assert "nachrichten_uuid" in response.json()["detail"]


# ------------------------------------------------------------------------ failures inside


def test_journal_down_is_503_and_the_sender_may_retry(tmp_path: Path) -> None:
    directory = make_directory()
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=directory)
    factory = Messages(directory.get("kreis-paderborn"), directory.get(HOME))
    with InboxServer(app) as server:
        _, body = factory.new()
        assert httpx.get(server.url + "/healthz").status_code == 200
        journal.close()  # the database is gone
        response = httpx.post(
            server.url + "/v1/messages", content=body, headers=xml_headers("kreis-paderborn")
        )
        health = httpx.get(server.url + "/healthz")
    assert response.status_code == 503
    assert response.json()["error"] == "journal_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert table_counts(f"sqlite:///{tmp_path / 'j.sqlite'}")["messages"] == 0


def test_a_missing_schema_bundle_is_a_500_that_says_retrying_does_not_help(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A known standard version whose bundle this installation lacks: 500 ``schema_missing``
    with an explanation and no ``Retry-After`` (a 503 made senders retry forever); the sender
    is not shown the server's paths, the log names what is missing; nothing is stored."""
    import dataclasses

    from xoev.registry import SchemaRegistry

    shipped = SchemaRegistry(use_env=False)
    unshipped = [
        dataclasses.replace(sv, schema=None, entry_name=sv.schema.name if sv.schema else None)
        for sv in shipped.versions()
        if sv.standard == "XGewerbeanzeige"
    ]
    assert unshipped
    registry = SchemaRegistry(use_env=False, packages=(), versions=unshipped)
    directory = make_directory()
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    journal = Journal(url, create=True)
    app = create_app(HOME, journal=journal, directory=directory, registry=registry)
    factory = Messages(directory.get("kreis-paderborn"), directory.get(HOME))
    with InboxServer(app) as server, caplog.at_level(logging.ERROR):
        _, body = factory.new()
        response = httpx.post(
            server.url + "/v1/messages", content=body, headers=xml_headers("kreis-paderborn")
        )
    journal.close()
    assert response.status_code == 500, response.text
    answer = response.json()
    assert answer["error"] == "schema_missing"
    assert (
        "XGewerbeanzeige 2.2" in answer["detail"] and "Retrying does not help" in answer["detail"]
    )
    assert "Retry-After" not in response.headers
    assert str(tmp_path) not in response.text and "/" not in answer["detail"]
    assert any("not found" in r.getMessage() for r in caplog.records)
    assert table_counts(url)["messages"] == 0


def test_a_reply_must_answer_a_message_sent_to_its_author(tmp_path: Path) -> None:
    """A Rückmeldung whose bezug names no message this agency sent to the replying agency is a
    422 ``unknown_reference`` and nothing is stored — the same for an unknown UUID and for one
    sent to another agency (nothing revealed); the answer to a real consultation is a 202."""
    from connectors.journal import MessageMeta
    from flows.simulated_xta import _reply
    from xoev.message import inspect_message

    directory = make_directory()
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    journal = Journal(url, create=True)
    home, kreis = directory.get(HOME), directory.get("kreis-paderborn")

    def sent_to(agency_id: str) -> str:
        payload = Messages(home, directory.get(agency_id)).outgoing().payload
        meta = MessageMeta.from_info(inspect_message(payload))
        journal.record_outbound(payload, meta, recipients=[agency_id], sender_agency=HOME)
        return meta.nachrichten_uuid

    to_kreis, to_ihk = sent_to("kreis-paderborn"), sent_to("ihk-owl")
    app = create_app(HOME, journal=journal, directory=directory)
    answers = {}
    bezugs = {"unknown": str(uuid.uuid4()), "another agency's": to_ihk, "ours": to_kreis}
    with InboxServer(app) as server:
        for name, bezug in bezugs.items():
            body, reply_uuid = _reply(bezug, responder=kreis, home=home)
            answers[name] = (
                httpx.post(
                    server.url + "/v1/messages",
                    content=body,
                    headers=xml_headers("kreis-paderborn"),
                ),
                reply_uuid,
            )
    inbound = {m.nachrichten_uuid for m in journal.messages(direction=Direction.INBOUND)}
    journal.close()
    for name in ("unknown", "another agency's"):
        response, reply_uuid = answers[name]
        assert response.status_code == 422, (name, response.text)
        assert response.json()["error"] == "unknown_reference"
        assert (
            "names no message stadt-paderborn sent to kreis-paderborn" in response.json()["detail"]
        )
        assert reply_uuid not in inbound
    # unknown and foreign read alike: the answer does not tell that the UUID exists
    unknown, foreign = (answers[n][0].json()["detail"] for n in ("unknown", "another agency's"))
    assert unknown.replace(bezugs["unknown"], "…") == foreign.replace(to_ihk, "…")
    response, reply_uuid = answers["ours"]
    assert response.status_code == 202, response.text
    assert inbound == {reply_uuid}


def test_refused_logins_are_logged_recorded_and_throttled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """401s are logged (address, code; never the token) and recorded as journal events; the
    address refused ``auth_failure_limit`` times gets 429 with Retry-After — even with a good
    token, until its window has passed — and no more events are written for it."""
    directory = make_directory()
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    config = InboxConfig(auth_failure_limit=5, auth_failure_window=30)
    app = create_app(HOME, journal=journal, directory=directory, config=config)
    factory = Messages(directory.get("kreis-paderborn"), directory.get(HOME))
    guess = "guess-" + "x" * 40
    with (
        InboxServer(app) as server,
        caplog.at_level(logging.WARNING, "connectors.inbox"),
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        statuses = []
        for _ in range(40):  # bounded: 40 guesses
            _, body = factory.new()
            r = http.post(
                server.url + "/v1/messages",
                content=body,
                headers={"Authorization": f"Bearer {guess}", "Content-Type": "application/xml"},
            )
            statuses.append(r.status_code)
        throttled = r
        _, body = factory.new()
        honest = http.post(
            server.url + "/v1/messages", content=body, headers=xml_headers("kreis-paderborn")
        )
    events = journal.events()
    journal.close()
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert throttled.json()["error"] == "too_many_failures"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 30
    assert honest.status_code == 429  # the address waits out its window, token or not
    refused = [e for e in events if e.kind == "inbox.auth_refused"]
    throttle = [e for e in events if e.kind == "inbox.auth_throttled"]
    assert len(refused) == 4 and len(throttle) == 1  # 5 recorded, then silence
    assert refused[0].detail == {"address": "127.0.0.1", "status": 401, "code": "invalid_token"}
    assert throttle[0].detail["limit"] == 5
    lines = [
        r.getMessage()
        for r in caplog.records
        if "401 invalid_token from 127.0.0.1" in r.getMessage()
    ]
    assert len(lines) == 5
    assert guess not in caplog.text


def test_an_element_bomb_is_413_and_costs_no_tree(tmp_path: Path) -> None:
    directory = make_directory()
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=directory)
    bomb = b"<r>" + b"<a/>" * 2_600_000 + b"</r>"  # ~10 MB, under max_body_bytes
    with InboxServer(app) as server:
        response = httpx.post(
            server.url + "/v1/messages",
            content=bomb,
            headers=xml_headers("kreis-paderborn"),
            timeout=60,
        )
    journal.close()
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "too_much_markup"
    assert "ParserConfig.max_tags" in response.json()["detail"]


def test_docs_work_offline_every_asset_from_the_inbox(tmp_path: Path) -> None:
    """``/docs`` names no other host: its scripts, styles and icon come from the inbox itself
    (a blank page on the administrations' offline networks otherwise)."""
    import re

    directory = make_directory()
    journal = Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=directory)
    with InboxServer(app) as server:
        page = httpx.get(server.url + "/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        refs += re.findall(r"""url: *["']([^"']+)["']""", page.text)
        assert refs, page.text
        assert not [r for r in refs if "//" in r], refs  # nothing from a CDN or another host
        for ref in refs:
            asset = httpx.get(server.url + ref)
            assert asset.status_code == 200 and asset.content, ref
        assert any(r.endswith("swagger-ui-bundle.js") for r in refs)
        assert (
            httpx.get(server.url + "/openapi.json")
            .json()["info"]["title"]
            .startswith("amtsbote inbox")
        )
    journal.close()


# ------------------------------------------------------------------------ configuration, CLI


def test_only_http_agencies_run_an_inbox(tmp_path: Path) -> None:
    directory = make_directory()
    with Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True) as journal:
        for agency, words in (
            ("ihk-owl", "channel mailbox"),
            ("finanzamt-paderborn", "channel file"),
            ("nobody", "no agency"),
        ):
            with pytest.raises(InboxConfigError, match=words):
                create_app(agency, journal=journal, directory=directory)


def test_inbox_config_is_checked() -> None:
    with pytest.raises(InboxConfigError, match="max_body_bytes"):
        InboxConfig(max_body_bytes=0)
    with pytest.raises(InboxConfigError, match="max_depth"):
        InboxConfig(max_depth=1000)
    with pytest.raises(InboxConfigError, match="mailbox_page_size"):
        InboxConfig(mailbox_page_size=5000)
    assert InboxConfig(max_body_bytes=1000).parser_config().max_bytes == 1000
    error = ApiError(422, "x", "y", line=3)
    assert error.to_dict() == {"error": "x", "detail": "y", "line": 3}


def test_which_journal_an_inbox_uses(tmp_path: Path) -> None:
    env = {"AMTSBOTE_DATA_DIR": str(tmp_path)}
    assert home_agency(env) == "stadt-paderborn"
    assert journal_url_for("stadt-paderborn", environ=env) == f"sqlite:///{tmp_path}/journal.sqlite"
    assert (
        journal_url_for("kreis-paderborn", environ=env)
        == f"sqlite:///{tmp_path}/inbox/kreis-paderborn.sqlite"
    )
    env_pg = {**env, "AMTSBOTE_DATABASE_URL": "postgresql+psycopg://u@h/db"}
    assert journal_url_for("stadt-paderborn", environ=env_pg) == "postgresql+psycopg://u@h/db"
    assert journal_url_for("kreis-paderborn", environ=env_pg).endswith("kreis-paderborn.sqlite")
    moved = {**env_pg, "AMTSBOTE_HOME_AGENCY": "kreis-paderborn"}
    assert journal_url_for("kreis-paderborn", environ=moved) == "postgresql+psycopg://u@h/db"
    assert journal_url_for("x", database_url="sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
    with pytest.raises(InboxConfigError, match="not an agency id"):
        journal_url_for("../etc", environ=env)


def test_cli_refuses_unusable_agencies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMTSBOTE_DATA_DIR", str(tmp_path / "data"))  # its key file lands here
    base = ["inbox", "serve", "--agencies", str(AGENCIES_FILE)]
    assert cli_main([*base, "--agency", "nobody"]) == 2
    assert "no agency with id 'nobody'" in capsys.readouterr().err
    assert cli_main([*base, "--agency", "ihk-owl"]) == 2
    assert "only agencies with channel http" in capsys.readouterr().err
    monkeypatch.setenv("AMTSBOTE_DEV_TOKENS", "1")  # past the token policy (test_tokens.py)
    url = f"sqlite:///{tmp_path / 'missing.sqlite'}"
    code = cli_main([*base, "--agency", HOME, "--database-url", url, "--no-migrate", "--port", "1"])
    assert code == 2
    assert "db upgrade" in capsys.readouterr().err


def test_inbox_server_lifecycle(tmp_path: Path) -> None:
    directory = make_directory()
    with Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True) as journal:
        app = create_app(HOME, journal=journal, directory=directory)
        server = InboxServer(app)
        with server:
            port = server.port
            assert port > 0 and server.running
            assert httpx.get(server.url + "/healthz").status_code == 200
            with pytest.raises(InboxServerError, match="cannot bind"):
                InboxServer(app, port=port).start()
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz")
        with InboxServer(app, port=port) as again:  # the same port again
            assert httpx.get(again.url + "/healthz").status_code == 200


def test_concurrent_repeats_of_one_message_store_it_once(inbox: Inbox) -> None:
    message = inbox.messages("kreis-paderborn", HOME).outgoing()
    before = inbox.count()
    results: list[Any] = []

    def send() -> None:
        with inbox.sender(HOME) as sender:
            try:
                results.append(sender.send(message))
            except PermanentSendError as exc:  # pragma: no cover - reported below
                results.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len({r.to_dict()["received_at"] for r in results}) == 1, results
    after = inbox.count()
    assert after["messages"] == before["messages"] + 1
    assert after["received_events"] == before["received_events"] + 1
