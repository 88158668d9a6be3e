"""xdomea containers (x-man zips) through the inbox over real sockets: uvicorn on 127.0.0.1, the
real journal (SQLite file and PostgreSQL) and blob store, fictitious 0503 messages of the Stadt
Paderborn with the primary documents of ``../shared/xoev/beispiele/primaerdokumente``.

The directory is the shipped OWL one plus a test-local ``landesarchiv-owl`` (a mailbox agency
on stadt-paderborn's inbox, which therefore takes the Aussonderung for it)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from sqlalchemy import create_engine, text
from test_inbox_support import AGENCIES_FILE, DEV_ENV, auth, pg_schema, table_counts

from connectors.directory import Channel, Directory
from connectors.inbox import ApiError, InboxConfig, InboxServer, InboxService, create_app
from connectors.journal import Journal
from connectors.journal.blobs import BlobStore
from connectors.senders import (
    HttpSender,
    MailboxSender,
    OutgoingMessage,
    PermanentSendError,
    SenderConfig,
)
from tests.xdomea_examples import ARCHIV as ARCHIV_OHNE_KENNUNG
from tests.xdomea_examples import PRIMARY_SOURCES, akte, kopf, messages
from xoev.code import Code
from xoev.container import container_name, read_container, write_container, xml_member_name
from xoev.message import xdomea_message_key
from xoev.xdomea.aussonderung import Aussonderung, build
from xoev.xdomea.records import Kopf

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
ARCHIV = "landesarchiv-owl"
ROOT_0503 = "Aussonderung.Aussonderung.0503"
LIMIT = 1 << 20  # max_container_bytes of the inbox under test
ZIP = "application/zip"
ARCHIV_ENTRY = """
  - id: landesarchiv-owl
    name: Landesarchiv NRW, Abteilung Ostwestfalen-Lippe
    behoerdenkennung: "LAV:NRW-OWL"
    roles: [Archiv]
    channel: mailbox
    mailbox_host: stadt-paderborn
    token_env: AMTSBOTE_TOKEN_LANDESARCHIV_OWL
"""
ARCHIV_KONTAKT = dataclasses.replace(
    ARCHIV_OHNE_KENNUNG, behoerdenschluessel=Code("NRW-OWL"), praefix=Code("LAV")
)


def _directory(folder: Path, endpoint: str) -> Directory:
    """The OWL directory with the Landesarchiv, dev tokens, stadt-paderborn at ``endpoint``."""
    text_ = AGENCIES_FILE.read_text(encoding="utf-8")
    text_ = re.sub(r"drop_dir: .*", f"drop_dir: {folder / 'drop'}", text_)
    # the shipped Landesarchiv (http) becomes a mailbox on the city's inbox here
    text_ = re.sub(r"  - id: landesarchiv-owl\n(?:    .*\n)+", "", text_) + ARCHIV_ENTRY
    path = folder / "agencies.yaml"
    path.write_text(text_, encoding="utf-8")
    base = Directory.load(path, environ=DEV_ENV)
    agencies = []
    for agency in base:
        changes: dict[str, Any] = {"concurrency": 8, "rate_limit": 100_000.0}
        if agency.id == HOME and agency.channel is Channel.HTTP:
            changes["endpoint"] = endpoint
        agencies.append(dataclasses.replace(agency, **changes))
    return Directory(agencies, roles=base.roles, environ=DEV_ENV)


@dataclass
class Inbox:
    url: str
    db_url: str
    journal: Journal
    directory: Directory
    service: InboxService
    spool: Path
    primary: dict[str, Path]

    def post(self, body: bytes | Any, sender: str = HOME, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/messages",
            content=body,
            headers={**auth(sender), "Content-Type": ZIP, "X-Empfaenger": ARCHIV, **headers},
            timeout=30,
        )

    def stored(self) -> dict[str, int]:
        counts = table_counts(self.db_url)
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                counts["attached"] = conn.execute(
                    text("SELECT count(*) FROM message_blobs")
                ).scalar_one()
        finally:
            engine.dispose()
        return counts


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def inbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_dir: Path
) -> Iterator[Inbox]:
    folder = tmp_path_factory.mktemp("zipinbox")
    if request.param == "sqlite":
        from contextlib import nullcontext

        database: Any = nullcontext(f"sqlite:///{folder / 'journal.sqlite'}")
    else:
        database = pg_schema(request.getfixturevalue("pg_url"))
    primary_dir = shared_dir / "xoev" / "beispiele" / "primaerdokumente"
    primary = {name: primary_dir / source for name, source in PRIMARY_SOURCES.items()}
    with database as db_url:
        journal = Journal(db_url, create=True)
        journal.__dict__["_blob_store"] = BlobStore(journal, folder / "blobs")  # not ./var
        port = free_port()
        directory = _directory(folder, f"http://127.0.0.1:{port}")
        spool = folder / "spool"
        app = create_app(
            HOME,
            journal=journal,
            directory=directory,
            config=InboxConfig(max_container_bytes=LIMIT, spool_dir=spool),
        )
        try:
            with InboxServer(app, port=port):
                yield Inbox(
                    f"http://127.0.0.1:{port}",
                    db_url,
                    journal,
                    directory,
                    app.state.inbox,
                    spool,
                    primary,
                )
        finally:
            journal.close()


def _kopf(prozess: str) -> Kopf:
    """From the Stadt Paderborn to the Landesarchiv, which has a Behördenkennung here."""
    return dataclasses.replace(kopf(from_city=True, prozess=prozess), empfaenger=ARCHIV_KONTAKT)


def _xml(prozess: str) -> bytes:
    return build(Aussonderung(kopf=_kopf(prozess), schriftgutobjekte=(akte(with_files=True),)))


def _container(tmp_path: Path, inbox: Inbox, prozess: str | None = None) -> tuple[str, Path]:
    prozess = prozess or str(uuid.uuid4())
    folder = tmp_path / prozess
    folder.mkdir()
    write_container(folder, _xml(prozess), inbox.primary)
    return prozess, folder / container_name(prozess, ROOT_0503)


def _sha(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def _spool_empty(inbox: Inbox) -> None:
    """No temporary file left — a streamed response removes its own after the last byte was
    sent (a background task), so give it a moment (bounded)."""
    import time

    deadline = time.monotonic() + 5
    while inbox.spool.exists() and list(inbox.spool.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not inbox.spool.exists() or list(inbox.spool.iterdir()) == []


# ------------------------------------------------------------------------------ accepting


def test_container_is_accepted_with_its_primary_files(inbox: Inbox, tmp_path: Path) -> None:
    prozess, path = _container(tmp_path, inbox)
    key = xdomea_message_key(prozess, "0503")
    before = inbox.stored()
    response = inbox.post(path.read_bytes())
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["nachrichtenUUID"] == key
    assert receipt["sha512"] == _sha(path)  # the container body's SHA-512
    assert receipt["recipient"] == ARCHIV
    record = inbox.journal.get_message(key)
    assert record.sender_agency == HOME and record.message_type.endswith("0503")
    assert record.payload_sha512 == hashlib.sha512(_xml(prozess)).hexdigest()
    assert inbox.journal.payload(key) == _xml(prozess)
    files = {f.name: f.digest for f in inbox.journal.blobs.files_of(key)}
    assert files == {name: _sha(src) for name, src in inbox.primary.items()}
    after = inbox.stored()
    assert after["messages"] == before["messages"] + 1
    assert after["attached"] == before["attached"] + len(inbox.primary)
    _spool_empty(inbox)

    again = inbox.post(path.read_bytes())
    assert again.status_code == 200, again.text
    assert again.json() == receipt
    assert inbox.stored() == after
    _spool_empty(inbox)


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path.read_bytes()


def _symlink() -> zipfile.ZipInfo:
    link = zipfile.ZipInfo("link.pdf")
    link.create_system = 3
    link.external_attr = (0o120777) << 16
    return link


HOSTILE = {
    # case: (extra members, dropped primary file, ProzessID of the member names, rule, member)
    "zip-bomb-ratio": ([("zeros.bin", bytes(20 << 20))], None, None, "zip-bomb:ratio", "zeros.bin"),
    "traversal": ([("../evil.pdf", b"x")], None, None, "member:traversal", "../evil.pdf"),
    "duplicate": (["dup"], None, None, "member:duplicate", "first"),
    "symlink": ([(_symlink(), b"/etc/passwd")], None, None, "member:symlink", "link.pdf"),
    "missing-primary": ([], "first", None, "files:missing", "first"),
    "unreferenced-primary": (
        [("untergeschoben.pdf", b"%PDF-1.4")],
        None,
        None,
        "files:unreferenced",
        "untergeschoben.pdf",
    ),
    "prozessid-mismatch": ([], None, "other", "xml:prozessid", "xml"),
    "xxe-in-xml": ([], None, None, "xml:unusable", "xml"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_container_is_refused_and_nothing_stored(
    inbox: Inbox, tmp_path: Path, case: str
) -> None:
    extra, drop, other, rule, member = HOSTILE[case]
    prozess = str(uuid.uuid4())
    named = str(uuid.uuid4()) if other else prozess
    first, first_src = next(iter(inbox.primary.items()))
    xml = _xml(prozess)
    if case == "xxe-in-xml":
        xml = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    members: list[tuple[str | zipfile.ZipInfo, bytes]] = [(xml_member_name(named, ROOT_0503), xml)]
    members += [(n, p.read_bytes()) for n, p in inbox.primary.items() if n != (drop and first)]
    for item in extra:
        members.append((first, first_src.read_bytes()) if item == "dup" else item)
    body = _zip(tmp_path / "c.zip", members)
    before = inbox.stored()
    response = inbox.post(body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "invalid_container" and answer["rule"] == rule
    expected = {"first": first, "xml": xml_member_name(named, ROOT_0503)}.get(member, member)
    assert answer["member"] == expected
    assert f"member {expected!r}" in answer["detail"] and f"(rule {rule})" in answer["detail"]
    assert container_name(named, ROOT_0503) in answer["detail"]  # which container
    assert str(inbox.spool) not in answer["detail"]  # no server paths
    assert inbox.stored() == before
    assert inbox.journal.blobs.files_of(xdomea_message_key(prozess, "0503")) == ()
    _spool_empty(inbox)


def test_no_message_xml_and_not_a_zip(inbox: Inbox, tmp_path: Path) -> None:
    before = inbox.stored()
    response = inbox.post(_zip(tmp_path / "c.zip", [("readme.txt", b"hello")]))
    assert response.status_code == 422 and response.json()["rule"] == "xml:missing"
    response = inbox.post(b"PK\x03\x04 no zip at all")
    assert response.status_code == 422 and response.json()["rule"] == "zip:format"
    assert inbox.stored() == before
    _spool_empty(inbox)


def test_container_in_another_agencys_name_is_refused(inbox: Inbox, tmp_path: Path) -> None:
    prozess, path = _container(tmp_path, inbox)
    before = inbox.stored()
    response = inbox.post(path.read_bytes(), sender="kreis-paderborn")
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "author_mismatch"
    assert inbox.stored() == before
    assert inbox.journal.blobs.files_of(xdomea_message_key(prozess, "0503")) == ()
    _spool_empty(inbox)


def test_repeat_with_other_primary_files_is_a_conflict(inbox: Inbox, tmp_path: Path) -> None:
    prozess, path = _container(tmp_path, inbox)
    assert inbox.post(path.read_bytes()).status_code == 202
    key = xdomea_message_key(prozess, "0503")
    held = inbox.journal.blobs.files_of(key)
    first = next(iter(inbox.primary))
    altered = tmp_path / "altered.pdf"
    altered.write_bytes(inbox.primary[first].read_bytes() + b"\n%%altered")
    other = tmp_path / "other"
    other.mkdir()
    write_container(other, _xml(prozess), {**inbox.primary, first: altered})
    before = inbox.stored()
    response = inbox.post((other / path.name).read_bytes())
    assert response.status_code == 409, response.text
    assert first in response.json()["detail"]
    assert inbox.stored() == before and inbox.journal.blobs.files_of(key) == held


def test_container_above_the_limit_is_413(inbox: Inbox) -> None:
    before = inbox.stored()
    body = bytes(LIMIT + 1)
    declared = inbox.post(body)
    assert declared.status_code == 413 and declared.json()["error"] == "too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the streamed size counts
        for _ in range(4):
            yield bytes(LIMIT // 2)

    streamed = inbox.post(chunked())
    assert streamed.status_code == 413 and "stopped reading" in streamed.json()["detail"]
    assert inbox.stored() == before
    _spool_empty(inbox)


# ------------------------------------------------------------------------------ senders, mailbox


def _outgoing(inbox: Inbox, prozess: str, path: Path) -> OutgoingMessage:
    return OutgoingMessage(
        payload=_xml(prozess),
        nachrichten_uuid=xdomea_message_key(prozess, "0503"),
        recipient=ARCHIV,
        sender=HOME,
        content_type=ZIP,
        file=path,
    )


def test_outgoing_message_with_a_file(inbox: Inbox, tmp_path: Path) -> None:
    prozess, path = _container(tmp_path, inbox)
    message = _outgoing(inbox, prozess, path)
    assert message.sha512 == _sha(path) and message.size == path.stat().st_size
    assert b"".join(message.iter_file()) == path.read_bytes()
    with pytest.raises(ValueError, match="application/zip"):
        dataclasses.replace(message, content_type="application/xml")
    with pytest.raises(ValueError, match="no file"):
        dataclasses.replace(message, file=tmp_path / "missing.zip")


def test_senders_stream_the_container_and_check_the_receipt(inbox: Inbox, tmp_path: Path) -> None:
    config = SenderConfig(rate_limit=False, read_timeout=30)
    prozess, path = _container(tmp_path, inbox)
    message = _outgoing(inbox, prozess, path)
    with MailboxSender(inbox.directory.get(ARCHIV), inbox.directory, config=config) as sender:
        receipt = sender.send(message)
        assert receipt.sha512 == _sha(path) and receipt.state == "delivered"
        assert sender.send(message).received_at == receipt.received_at  # repeat: 200
    files = inbox.journal.blobs.files_of(message.nachrichten_uuid)
    assert {f.name for f in files} == set(inbox.primary)

    prozess2, path2 = _container(tmp_path, inbox)
    message2 = _outgoing(inbox, prozess2, path2)
    sender2 = HttpSender(
        inbox.directory.get(ARCHIV), inbox.directory, endpoint=inbox.url, config=config
    )

    async def send_async() -> Any:
        async with sender2:
            return await sender2.asend(message2)

    assert asyncio.run(send_async()).sha512 == _sha(path2)
    # the receipt check: a container whose bytes differ from what the inbox keeps for the key
    # answers with the SHA-512 of the body sent — so a file swapped after hashing is caught
    swapped = dataclasses.replace(message2)
    object.__setattr__(swapped, "_file_digest", ("0" * 128, path2.stat().st_size))
    with (
        HttpSender(
            inbox.directory.get(ARCHIV), inbox.directory, endpoint=inbox.url, config=config
        ) as sender3,
        pytest.raises(PermanentSendError, match="SHA-512"),
    ):
        sender3.send(swapped)


def test_mailbox_fetch_returns_the_container(inbox: Inbox, tmp_path: Path) -> None:
    prozess, path = _container(tmp_path, inbox)
    assert inbox.post(path.read_bytes()).status_code == 202
    key = xdomea_message_key(prozess, "0503")
    listed = httpx.get(f"{inbox.url}/v1/mailbox", headers=auth(ARCHIV)).json()
    assert key in {m["nachrichtenUUID"] for m in listed["messages"]}
    response = httpx.get(f"{inbox.url}/v1/mailbox/{key}", headers=auth(ARCHIV))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ZIP
    assert path.name in response.headers["content-disposition"]
    assert response.headers["X-Content-SHA512"] == hashlib.sha512(response.content).hexdigest()
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / path.name).write_bytes(response.content)
    info, xml, files = read_container(fetched / path.name)
    assert info.nachrichten_uuid == key and xml == _xml(prozess)
    assert {n: m.sha512 for n, m in files.items()} == {n: _sha(p) for n, p in inbox.primary.items()}
    _spool_empty(inbox)
    # another agency's mailbox stays closed
    assert httpx.get(f"{inbox.url}/v1/mailbox/{key}", headers=auth("ihk-owl")).status_code == 404


# ------------------------------------------------------------------------------ other channels


def test_accept_file_takes_containers_and_xml(inbox: Inbox, tmp_path: Path) -> None:
    service = inbox.service
    sender = inbox.directory.get(HOME)
    prozess, path = _container(tmp_path, inbox)
    status, receipt = service.accept_file(path, sender, source="transfer:/in")
    assert status == 202 and receipt["sha512"] == _sha(path)
    key = xdomea_message_key(prozess, "0503")
    assert len(inbox.journal.blobs.files_of(key)) == len(inbox.primary)
    renamed = tmp_path / "eingang.zip"  # no x-man name: taken from the XML member
    renamed.write_bytes(path.read_bytes())
    assert service.accept_file(renamed, sender, source="transfer:/in")[0] == 200
    assert path.exists() and renamed.exists()  # the caller's files stay

    # a 0501 (no primary files) as plain XML from the transfer directory
    anbietung = tmp_path / "anbietung.xml"
    prozess_0501 = str(uuid.uuid4())
    anbietung.write_bytes(build(dataclasses.replace(messages()["0501"], kopf=_kopf(prozess_0501))))
    status, receipt = service.accept_file(anbietung, sender, source="transfer:/in")
    assert status == 202 and receipt["nachrichtenUUID"] == xdomea_message_key(prozess_0501, "0501")
    assert receipt["recipient"] == ARCHIV
    unaddressed = tmp_path / "ohne-empfaenger.xml"  # Empfaenger without Behördenkennung
    unaddressed.write_bytes(
        build(
            dataclasses.replace(
                messages()["0501"], kopf=kopf(from_city=True, prozess=str(uuid.uuid4()))
            )
        )
    )
    with pytest.raises(ApiError) as refused:
        service.accept_file(unaddressed, sender, source="transfer:/in")
    assert refused.value.code == "no_recipient"
    with pytest.raises(ApiError) as other:
        service.accept_file(tmp_path / "x.pdf", sender, source="transfer:/in")
    assert other.value.status == 400
    _spool_empty(inbox)
