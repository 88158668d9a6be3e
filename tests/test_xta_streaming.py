"""Client side streaming of XTA 2 (issue 11, point 5): a large xdomea container goes out through
:class:`XtaSender` read from its file in chunks and comes back through
``XtaClient.get_message(spool=...)`` written to disk while it arrives — never whole in memory.

Real sockets: the city's inbox (uvicorn on 127.0.0.1, SQLite journal) with the Landesarchiv as a
mailbox it hosts (the directory of ``test_inbox_containers``); the city sends its 0503 to the
archive by XTA and the archive fetches it from its msgBox. Streaming is shown structurally: the
request body handed to httpx is a generator with a ``Content-Length`` (no ``bytes``), and the
tracemalloc peak of sending and of fetching (client and the in-process server together)
stays below a quarter of the payload's size. Plus: the server
takes a chunked MTOM request (no Content-Length) too."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
from conftest import free_port
from lxml import etree
from test_inbox_containers import ARCHIV, HOME, _directory, _xml
from test_inbox_support import DEV_ENV, auth
from xta_support import M, author_header, envelope

from connectors.directory import Channel, Directory
from connectors.inbox import InboxConfig, InboxServer, create_app
from connectors.journal import Journal
from connectors.journal.blobs import BlobStore
from connectors.senders import OutgoingMessage, XtaSender
from connectors.senders.base import CONTAINER_TYPE
from connectors.xta.client import FetchedMessage, XtaClient
from connectors.xta.metadata import message_id_for
from connectors.xta.mtom import OutgoingPart, mtom_body
from tests.xdomea_examples import PRIMARY_SOURCES
from xoev.container import write_container
from xoev.message import inspect_message

pytestmark = pytest.mark.integration

MiB = 1 << 20
BIG = 64 * MiB


@dataclass
class City:
    url: str
    directory: Directory
    journal: Journal
    primary: dict[str, Path]

    def xta_directory(self) -> Directory:
        """The sending side: the archive reached by XTA on the city's inbox (dev tokens)."""
        agencies = [
            a
            if a.id != ARCHIV
            else dataclasses.replace(
                a,
                channel=Channel.XTA,
                mailbox_host=None,
                xta_url=self.url + "/services/XTAService",
            )
            for a in self.directory
        ]
        return Directory(agencies, roles=self.directory.roles, environ=DEV_ENV)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Iterator[City]:
    folder = tmp_path_factory.mktemp("xta-streaming")
    journal = Journal(f"sqlite:///{folder / 'journal.sqlite'}", create=True)
    journal.__dict__["_blob_store"] = BlobStore(journal, folder / "blobs")
    port = free_port()
    directory = _directory(folder, f"http://127.0.0.1:{port}")
    app = create_app(
        HOME,
        journal=journal,
        directory=directory,
        config=InboxConfig(spool_dir=folder / "spool"),
    )
    source = shared_dir / "xoev" / "beispiele" / "primaerdokumente"
    primary = {name: source / file for name, file in PRIMARY_SOURCES.items()}
    try:
        with InboxServer(app, port=port):
            yield City(f"http://127.0.0.1:{port}", directory, journal, primary)
    finally:
        journal.close()


def _big_container(tmp_path: Path, city: City) -> tuple[Path, str, Path]:
    """A 0503 container whose first primary file is ``BIG`` random bytes (stored, so the zip
    is about as large): ``(container, name of the big member, the big file)``."""
    prozess = str(uuid.uuid4())
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for _ in range(BIG // MiB):
            out.write(os.urandom(MiB))
    files = dict(city.primary)
    name = next(iter(files))
    files[name] = big
    folder = tmp_path / "out"
    folder.mkdir()
    write_container(folder, _xml(prozess), files)
    [container] = folder.glob("*.zip")
    return container, name, big


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    with stream:
        while block := stream.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def test_a_large_container_is_streamed_out_and_spooled_back(city: City, tmp_path: Path) -> None:
    container, member, big = _big_container(tmp_path, city)
    assert container.stat().st_size > BIG
    xml = next(
        zipfile.Path(container, n).read_bytes()
        for n in zipfile.ZipFile(container).namelist()
        if n.endswith(".xml")
    )
    uid = inspect_message(xml).nachrichten_uuid
    assert uid is not None
    message = OutgoingMessage(
        payload=xml,
        nachrichten_uuid=uid,
        recipient=ARCHIV,
        sender=HOME,
        content_type=CONTAINER_TYPE,
        file=container,
    )
    assert message.sha512  # hashed before tracing (computed once, streaming)

    bodies: list[tuple[bool, str | None]] = []

    def record(request: httpx.Request) -> None:
        try:
            request.content  # noqa: B018 - bytes when the body was given whole
            whole = True
        except httpx.RequestNotRead:  # a generator, consumed while sending
            whole = False
        bodies.append((whole, request.headers.get("content-length")))

    directory = city.xta_directory()
    http = httpx.Client(timeout=60, event_hooks={"request": [record]})
    sender = XtaSender(directory.get(ARCHIV), directory, client=http)
    tracemalloc.start()
    try:
        receipt = sender.send(message)
        _, send_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sender.close()
        http.close()
    assert receipt.state == "delivered"
    # the server runs in this process: its allocations count too; both stay far below 64 MiB
    assert send_peak < BIG // 4, send_peak
    whole, length = bodies[0]  # sendMessage: a generator behind httpx, with its length
    assert not whole
    assert length is not None and int(length) > container.stat().st_size

    spool = tmp_path / "spool"
    with httpx.Client(timeout=60) as http:
        client = XtaClient(
            city.url + "/services/XTAService",
            author=city.directory.get(ARCHIV).behoerdenkennung,
            client=http,
            http_headers=auth(ARCHIV),
        )
        tracemalloc.start()
        try:
            fetched = client.get_message(message_id_for(uid), spool=spool)
            _, fetch_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert fetch_peak < BIG // 4, fetch_peak  # written to the spool while reading
        assert fetched.path is not None and fetched.path.parent == spool
        assert list(spool.iterdir()) == [fetched.path]  # the envelope left no file behind
        assert fetched.content_type == CONTAINER_TYPE and fetched.nachrichten_uuid == uid
        assert fetched.size == fetched.path.stat().st_size
        # the server rebuilds the container from journal and blobs: the big member is intact
        with zipfile.ZipFile(fetched.path) as archive:
            assert _sha256(archive.open(member)) == _sha256(big.open("rb"))
        client.close(message_id_for(uid))
    fetched.path.unlink()


def test_the_server_takes_a_chunked_mtom_request(city: City) -> None:
    """No Content-Length: httpx sends a generator with ``Transfer-Encoding: chunked``."""
    body = mtom_body(
        envelope(
            M + "MsgBoxStatusListRequest",
            '<osci:MsgBoxStatusListRequest maxListItems="5"/>',
            headers=author_header(city.directory.get(ARCHIV).behoerdenkennung),
        ),
        [OutgoingPart("unused@test", "application/octet-stream", data=b"x" * 3 * MiB)],
    )
    with httpx.Client(timeout=30) as http:
        response = http.post(
            city.url + "/services/XTAService/MsgBoxPort",
            content=body.chunks,
            headers={**auth(ARCHIV), "Content-Type": body.content_type},
        )
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert b"MsgBoxResponse" in response.content


def test_payload_or_file_and_the_fetched_message_shapes(tmp_path: Path) -> None:
    client = XtaClient(
        "http://127.0.0.1:9/services/XTAService",
        author="MELDID:1",
        client=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))),
    )
    file = tmp_path / "c.zip"
    file.write_bytes(b"PK")
    metadata = etree.Element("m")
    for payload, kw in ((None, {}), (b"<x/>", {"file": file})):
        with pytest.raises(ValueError, match="either payload bytes or a file"):
            client.send_message(payload, metadata, **kw)
    small = FetchedMessage("urn:uuid:1", None, b"<x/>", "application/xml", None)
    assert small.payload == b"<x/>" and small.path is None and small.size == 4
    spooled = FetchedMessage("urn:uuid:1", None, content_type=CONTAINER_TYPE, path=file)
    assert spooled.payload == b"PK" and spooled.size == 2 and str(file) in repr(spooled)
    assert spooled != small
    with pytest.raises(ValueError, match="either payload bytes or a spooled path"):
        FetchedMessage("urn:uuid:1", None)
    part = OutgoingPart("a@b", CONTAINER_TYPE, path=file)
    body = mtom_body(b"<e/>", [part])
    assert len(b"".join(body.chunks)) == body.length
