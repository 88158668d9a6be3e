"""Transfer areas in x-man's layout: a directory on disk and a real WebDAV server (wsgidav on
cheroot, 127.0.0.1, basic auth; once with TLS from a test CA)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port

from connectors.directory import Agency, Channel, Directory
from connectors.senders import (
    OutgoingMessage,
    PermanentSendError,
    TransferDirSender,
    TransientSendError,
    WebDavSender,
    sender_for,
)
from connectors.transfer import Refused, TransferDirPoller, TransferLayout, WebDavPoller
from tests.test_senders import _write_pki
from tests.xdomea_examples import PROZESS, messages
from xoev.container import read_container
from xoev.xdomea.aussonderung import build

pytestmark = pytest.mark.integration

ROOT_0501 = "Aussonderung.Anbieteverzeichnis.0501"
ROOT_0502 = "Aussonderung.Bewertungsverzeichnis.0502"
ENV = {"DAV_USER": "stadt", "DAV_PASSWORD": "geheim", "T_STADT": "t1", "T_ARCHIV": "t2"}


def _stadt() -> Agency:
    return Agency(
        id="stadt",
        name="Stadt",
        behoerdenkennung="MELDID:05774032",
        roles=("Gewerbeamt",),
        channel=Channel.FILE,
        drop_dir=Path("/nonexistent"),
        token_env="T_STADT",
    )


def _directory(archiv: Agency) -> Directory:
    return Directory([_stadt(), archiv], environ=ENV)


def _message(payload: bytes | None = None, *, file: Path | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        payload=payload or build(messages()["0501"]),
        nachrichten_uuid=str(uuid.uuid4()),
        recipient="archiv",
        sender="stadt",
        file=file,
        content_type="application/zip" if file else "application/xml",
    )


def _container(tmp: Path, code: str = "0502") -> Path:
    """A container as the archive writes it (built with write_container)."""
    from xoev.container import write_container

    tmp.mkdir(parents=True, exist_ok=True)
    members = write_container(tmp, build(messages()[code]))
    return next(iter(members.values())).container


# ------------------------------------------------------------------------------ file system


@pytest.fixture
def local(tmp_path: Path) -> tuple[Directory, Path]:
    root = tmp_path / "transfer"
    archiv = Agency(
        id="archiv",
        name="Landesarchiv",
        behoerdenkennung="LAV:05",
        roles=("Archiv",),
        channel=Channel.TRANSFER_DIR,
        transfer_dir=root,
        token_env="T_ARCHIV",
    )
    return _directory(archiv), root


def test_dir_send_builds_the_container_in_the_root_idempotently(local: Any) -> None:
    directory, root = local
    sender = sender_for("archiv", directory)
    assert isinstance(sender, TransferDirSender)
    message = _message()
    receipt = sender.send(message)
    target = root / f"{PROZESS}_{ROOT_0501}.zip"
    assert receipt.state == "delivered"
    assert receipt.sha512 == hashlib.sha512(target.read_bytes()).hexdigest()
    assert read_container(target).xml == message.payload
    assert sorted(p.name for p in root.iterdir()) == [target.name]  # no .part left
    assert sender.send(message) == receipt  # resend: same receipt
    assert asyncio.run(sender.asend(message)) == receipt


def test_dir_send_file_and_conflicts(local: Any, tmp_path: Path) -> None:
    directory, root = local
    sender = sender_for("archiv", directory)
    container = _container(tmp_path / "out", "0505")
    receipt = sender.send(_message(file=container))
    assert (root / container.name).read_bytes() == container.read_bytes()
    assert receipt.sha512 == hashlib.sha512(container.read_bytes()).hexdigest()
    other = tmp_path / "other" / container.name
    other.parent.mkdir()
    other.write_bytes(b"other bytes")
    with pytest.raises(PermanentSendError, match="already exists with other content"):
        sender.send(_message(file=other))
    with pytest.raises(PermanentSendError, match="cannot build the container"):
        sender.send(_message(build(messages()["0503"])))  # names primary files it lacks
    plain = _message(b"<x:nachricht xmlns:x='urn:example'/>")
    sender.send(plain)
    assert (root / f"{plain.nachrichten_uuid}.xml").read_bytes() == plain.payload


def test_dir_send_full_disk_is_transient(local: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    directory, _ = local

    def full(*_: Any, **__: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(TransientSendError, match="ENOSPC"):
        sender_for("archiv", directory).send(_message())


def test_dir_poller_accepts_rejects_and_ignores(local: Any, tmp_path: Path) -> None:
    directory, root = local
    sender_for("archiv", directory).send(_message())  # our 0501: the partner's to read
    folder = root / ROOT_0502
    folder.mkdir(parents=True)
    good = _container(tmp_path / "a", "0502")
    os.link(good, folder / good.name)
    (root / f".{good.name}.abc.part").write_bytes(b"half")  # an upload in progress
    (root / "notes.txt").write_text("hi")  # not of the layout
    calls: list[tuple[Path, str]] = []

    def accept(path: Path, *, source: str) -> None:
        read_container(path)
        calls.append((path, source))

    result = TransferDirPoller(root, accept, min_age=0).poll_once()
    assert (result.accepted, result.rejected, result.failed) == (1, 1, 0)
    assert calls == [(folder / good.name, str(folder / good.name))]
    assert (root / ".done" / good.name).is_file() and not (folder / good.name).exists()
    assert (root / ".rejected" / "notes.txt").is_file()
    assert "notes.txt" in (root / ".rejected" / "notes.txt.reason.txt").read_text()
    assert (root / f"{PROZESS}_{ROOT_0501}.zip").is_file()  # ours stays
    assert (root / f".{good.name}.abc.part").is_file()  # ignored
    assert TransferDirPoller(root, accept, min_age=0).poll_once().accepted == 0


def test_dir_poller_refused_transient_and_bounded(local: Any, tmp_path: Path) -> None:
    _, root = local
    root.mkdir()
    names = []
    for code in ("0502", "0504", "0506"):
        c = _container(tmp_path / code, code)
        os.link(c, root / c.name)
        names.append(c.name)

    class Http422(Exception):
        status_code = 422

    outcomes: list[BaseException | None] = [
        Refused("wrong sender"),
        RuntimeError("db down"),
        Http422(),
        None,
    ]

    def accept(path: Path, *, source: str) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    result = TransferDirPoller(root, accept, min_age=0, max_files=2).poll_once()
    assert (result.accepted, result.rejected, result.failed) == (0, 1, 1)
    assert "RuntimeError: db down" in result.errors[0]
    reason = (root / ".rejected" / f"{sorted(names)[0]}.reason.txt").read_text()
    assert "Refused: wrong sender" in reason
    result = TransferDirPoller(root, accept, min_age=0).poll_once()
    assert (result.accepted, result.rejected, result.failed) == (1, 1, 0)
    assert "status 422" in (root / ".rejected" / f"{sorted(names)[1]}.reason.txt").read_text()
    assert (root / ".done" / sorted(names)[2]).is_file()
    assert [p.name for p in root.iterdir() if p.is_file()] == []


def test_dir_poller_waits_for_files_still_being_written(local: Any, tmp_path: Path) -> None:
    _, root = local
    root.mkdir()
    c = _container(tmp_path / "x")
    os.link(c, root / c.name)
    os.utime(root / c.name)  # just modified
    assert (
        TransferDirPoller(root, lambda p, *, source: None, min_age=60).poll_once()
        == TransferDirPoller(root, lambda p, *, source: None, min_age=60).poll_once()
    )
    assert (root / c.name).exists()


def test_container_errors_refuse(local: Any) -> None:
    _, root = local
    root.mkdir()
    bad = root / f"{PROZESS}_{ROOT_0502}.zip"
    bad.write_bytes(b"not a zip")
    result = TransferDirPoller(
        root, lambda p, *, source: read_container(p) and None, min_age=0
    ).poll_once()
    assert result.rejected == 1
    assert "ContainerFormatError" in (root / ".rejected" / f"{bad.name}.reason.txt").read_text()


# ------------------------------------------------------------------------------ WebDAV server


class DavServer:
    def __init__(self, root: Path, *, tls: dict[str, Path] | None = None) -> None:
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "provider_mapping": {"/transfer": str(root)},
            "simple_dc": {"user_mapping": {"*": {"stadt": {"password": "geheim"}}}},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "verbose": 0,
            "logging": {"enable": False, "enable_loggers": []},
            "lock_storage": True,
            "property_manager": True,
            "dir_browser": {"enable": False},
        }
        self.server = wsgi.Server(("127.0.0.1", self.port), WsgiDAVApp(config), numthreads=4)
        scheme = "http"
        if tls is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self.server.ssl_adapter = BuiltinSSLAdapter(
                str(tls["server_cert"]), str(tls["server_key"])
            )
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}/transfer"
        self.thread = threading.Thread(target=self.server.safe_start, daemon=True)

    def __enter__(self) -> DavServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.ready:
            if time.monotonic() > deadline:
                raise RuntimeError("wsgidav did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(5)


def _dav_directory(url: str, ca: Path | None = None) -> Directory:
    archiv = Agency(
        id="archiv",
        name="Landesarchiv",
        behoerdenkennung="LAV:05",
        roles=("Archiv",),
        channel=Channel.WEBDAV,
        webdav_url=url,
        webdav_user_env="DAV_USER",
        webdav_password_env="DAV_PASSWORD",
        webdav_ca=ca,
        token_env="T_ARCHIV",
    )
    return _directory(archiv)


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[DavServer]:
    with DavServer(tmp_path / "share") as server:
        yield server


def test_webdav_send_idempotent_and_conflict(dav: DavServer, tmp_path: Path) -> None:
    sender = sender_for("archiv", _dav_directory(dav.url))
    assert isinstance(sender, WebDavSender)
    with sender:
        message = _message()
        receipt = sender.send(message)
        target = dav.root / f"{PROZESS}_{ROOT_0501}.zip"
        assert receipt.sha512 == hashlib.sha512(target.read_bytes()).hexdigest()
        assert read_container(target).xml == message.payload
        assert [p.name for p in dav.root.iterdir()] == [target.name]  # .part moved away
        assert sender.send(message) == receipt
        other = tmp_path / "o" / target.name
        other.parent.mkdir()
        other.write_bytes(b"something else")
        with pytest.raises(PermanentSendError, match="already exists with other content"):
            sender.send(_message(file=other))


def test_webdav_asend(dav: DavServer, tmp_path: Path) -> None:
    container = _container(tmp_path / "c", "0505")

    async def run() -> Any:
        async with WebDavSender(_dav_directory(dav.url).get("archiv"), environ=ENV) as sender:
            message = _message(file=container)
            return await sender.asend(message), await sender.asend(message)

    first, again = asyncio.run(run())
    assert first == again
    assert (dav.root / container.name).read_bytes() == container.read_bytes()


def test_webdav_wrong_password_is_permanent_and_down_is_transient(dav: DavServer) -> None:
    agency = _dav_directory(dav.url).get("archiv")
    with (
        WebDavSender(agency, environ={**ENV, "DAV_PASSWORD": "falsch"}) as sender,
        pytest.raises(PermanentSendError, match="401") as info,
    ):
        sender.send(_message())
    assert info.value.status_code == 401
    down = _dav_directory(f"http://127.0.0.1:{free_port()}/transfer").get("archiv")
    with WebDavSender(down, environ=ENV) as sender, pytest.raises(TransientSendError) as info2:
        sender.send(_message())
    assert isinstance(info2.value.__cause__, Exception)


def test_webdav_poller(dav: DavServer, tmp_path: Path) -> None:
    folder = dav.root / ROOT_0502
    folder.mkdir()
    good = _container(tmp_path / "a", "0502")
    os.link(good, folder / good.name)
    (dav.root / f".{good.name}.x.part").write_bytes(b"half")
    bad = _container(tmp_path / "b", "0504")
    os.link(bad, dav.root / bad.name)
    seen: list[tuple[bytes, str]] = []

    def accept(path: Path, *, source: str) -> None:
        if "0504" in path.name:
            raise Refused("not expected")
        seen.append((path.read_bytes(), source))

    with httpx.Client(timeout=10) as client:
        poller = WebDavPoller(dav.url, accept, client=client, auth=("stadt", "geheim"), min_age=0)
        result = poller.poll_once()
    assert (result.accepted, result.rejected, result.failed) == (1, 1, 0)
    assert seen == [(good.read_bytes(), f"{dav.url}/{ROOT_0502}/{good.name}")]
    assert (dav.root / ".done" / good.name).read_bytes() == good.read_bytes()
    assert (
        "Refused: not expected" in (dav.root / ".rejected" / f"{bad.name}.reason.txt").read_text()
    )
    assert (dav.root / ".rejected" / bad.name).is_file()
    assert (dav.root / f".{good.name}.x.part").is_file()


def test_webdav_tls_with_ca(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = _write_pki(tmp_path / "pki")
    with DavServer(tmp_path / "share", tls=pki) as server:
        assert server.url.startswith("https://")
        with WebDavSender(
            _dav_directory(server.url, pki["ca"]).get("archiv"), environ=ENV
        ) as sender:
            receipt = sender.send(_message())
        assert (server.root / f"{PROZESS}_{ROOT_0501}.zip").is_file()
        assert receipt.state == "delivered"
        with (
            WebDavSender(_dav_directory(server.url).get("archiv"), environ=ENV) as untrusted,
            pytest.raises(PermanentSendError),
        ):
            untrusted.send(_message())


@pytest.mark.slow
def test_large_file_streams_with_bounded_memory(dav: DavServer, tmp_path: Path) -> None:
    big = tmp_path / "big" / f"{uuid.uuid4()}_Aussonderung.Aussonderung.0503.zip"
    big.parent.mkdir()
    with open(big, "wb") as out:
        for _ in range(50):
            out.write(os.urandom(1 << 20))
    digest = hashlib.sha512(big.read_bytes()).hexdigest()
    tracemalloc.start()
    try:
        with WebDavSender(_dav_directory(dav.url).get("archiv"), environ=ENV) as sender:
            receipt = sender.send(_message(file=big))
        # the partner answers with a big file in its folder: the poller streams it down
        os.replace(
            dav.root / big.name,
            dav.root / big.name.replace("_Aussonderung.Aussonderung.0503", f"_{ROOT_0502}"),
        )
        got: list[str] = []

        def accept(path: Path, *, source: str) -> None:
            h = hashlib.sha512()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            got.append(h.hexdigest())

        with httpx.Client(timeout=30) as client:
            result = WebDavPoller(
                dav.url, accept, client=client, auth=("stadt", "geheim"), min_age=0
            ).poll_once()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert receipt.sha512 == digest and got == [digest] and result.accepted == 1
    assert peak < 20 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_layout_can_delete_processed_files_and_use_own_type_folders(
    local: Any, tmp_path: Path
) -> None:
    _, root = local
    (root / "bewertung").mkdir(parents=True)
    c = _container(tmp_path / "x", "0502")
    os.link(c, root / "bewertung" / c.name)
    layout = TransferLayout(done=None, type_folders={"0502": "bewertung"})
    result = TransferDirPoller(
        root, lambda p, *, source: None, layout=layout, min_age=0
    ).poll_once()
    assert result.accepted == 1
    assert not (root / "bewertung" / c.name).exists() and not (root / ".done").exists()
