"""File drop: whole files only, fsync'd, idempotent, conflicts refused."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
import uuid
from pathlib import Path

import pytest

from connectors.directory import Agency, Channel, Directory
from connectors.senders import (
    FileDropSender,
    OutgoingMessage,
    PermanentSendError,
    TransientSendError,
    is_transient,
    sender_for,
)
from connectors.senders import filedrop as filedrop_module

XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<nachricht>Gewerbemeldung</nachricht>\n'


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    return tmp_path / "finanzamt" / "eingang"  # created on first delivery


@pytest.fixture
def directory(drop: Path) -> Directory:
    agencies = [
        Agency(
            id="finanzamt",
            name="Finanzamt",
            behoerdenkennung="BUFA:5339",
            roles=("FA",),
            channel=Channel.FILE,
            drop_dir=drop,
            token_env="T_FA",
        ),
        Agency(
            id="gewerbeamt",
            name="Gewerbeamt",
            behoerdenkennung="MELDID:05774032",
            roles=("GA",),
            channel=Channel.HTTP,
            endpoint="http://127.0.0.1:8701",
            token_env="T_GA",
        ),
    ]
    return Directory(agencies, environ={})


def msg(payload: bytes = XML, key: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        payload=payload,
        nachrichten_uuid=key or str(uuid.uuid4()),
        recipient="finanzamt",
        sender="gewerbeamt",
    )


def test_drop_writes_the_whole_file_under_its_uuid(directory: Directory, drop: Path) -> None:
    sender = sender_for("finanzamt", directory)
    assert isinstance(sender, FileDropSender)
    m = msg()
    receipt = sender.send(m)
    target = drop / f"{m.nachrichten_uuid}.xml"
    assert target.read_bytes() == XML
    assert os.listdir(drop) == [target.name]  # no temporary file left behind
    assert receipt.nachrichten_uuid == m.nachrichten_uuid
    assert receipt.sha512 == hashlib.sha512(XML).hexdigest()
    assert receipt.state == "delivered"
    assert receipt.raw["path"] == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_data_is_fsynced_before_publishing_and_the_directory_after(
    directory: Directory, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = msg()
    target = drop / f"{m.nachrichten_uuid}.xml"
    events: list[tuple[str, bool, bytes | None]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        content = path.read_bytes() if path.is_file() else None
        events.append((str(path), target.exists(), content))
        real_fsync(fd)

    monkeypatch.setattr(filedrop_module.os, "fsync", recording_fsync)
    FileDropSender(directory.get("finanzamt"), directory).send(m)
    assert len(events) == 2
    (file_path, published_then, content), (dir_path, published_after, _) = events
    # 1. the temporary file, complete, before it got its final name; hidden from *.xml readers
    assert Path(file_path).parent == drop
    assert Path(file_path).name.startswith(f".{m.nachrichten_uuid}.")
    assert not Path(file_path).name.endswith(".xml")
    assert content == XML and published_then is False
    # 2. the directory, once the final name exists
    assert dir_path == str(drop) and published_after is True


def test_publishing_never_replaces_an_existing_file(
    directory: Directory, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent writer publishes the same name first (between our check and our link)."""
    m = msg()
    target = drop / f"{m.nachrichten_uuid}.xml"
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_bytes(b"<other/>")
        real_link(src, dst)

    monkeypatch.setattr(filedrop_module.os, "link", racing_link)
    with pytest.raises(PermanentSendError, match="already exists with other content"):
        FileDropSender(directory.get("finanzamt"), directory).send(m)
    assert target.read_bytes() == b"<other/>"
    assert os.listdir(drop) == [target.name]


def test_without_hard_links_rename_is_used(
    directory: Directory, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(filedrop_module.os, "link", no_links)
    m = msg()
    FileDropSender(directory.get("finanzamt"), directory).send(m)
    assert os.listdir(drop) == [f"{m.nachrichten_uuid}.xml"]


def test_same_message_twice_gives_the_same_receipt(directory: Directory, drop: Path) -> None:
    sender = FileDropSender(directory.get("finanzamt"), directory)
    m = msg()
    first = sender.send(m)
    again = sender.send(m)
    assert again == first and again.raw == first.raw
    assert len(os.listdir(drop)) == 1


def test_same_uuid_other_content_is_a_permanent_conflict(directory: Directory, drop: Path) -> None:
    sender = FileDropSender(directory.get("finanzamt"), directory)
    m = msg()
    sender.send(m)
    other = msg(XML.replace(b"Gewerbemeldung", b"Abmeldung"), key=m.nachrichten_uuid)
    with pytest.raises(PermanentSendError) as info:
        sender.send(other)
    err = info.value
    assert not is_transient(err)
    assert err.recipient == "finanzamt" and err.nachrichten_uuid == m.nachrichten_uuid
    assert err.url == str(drop)
    assert "nachrichtenUUID reused" in str(err)
    assert (drop / f"{m.nachrichten_uuid}.xml").read_bytes() == XML  # untouched


def test_async_variant(directory: Directory, drop: Path) -> None:
    sender = FileDropSender(directory.get("finanzamt"), directory)
    messages = [msg() for _ in range(5)]

    async def run() -> list[str]:
        receipts = await asyncio.gather(*(sender.asend(m) for m in messages))
        return [r.nachrichten_uuid for r in receipts]

    assert asyncio.run(run()) == [m.nachrichten_uuid for m in messages]
    assert sorted(os.listdir(drop)) == sorted(f"{m.nachrichten_uuid}.xml" for m in messages)


def test_os_errors_are_classified(
    directory: Directory, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = FileDropSender(directory.get("finanzamt"), directory)

    def full_disk(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filedrop_module.os, "write", full_disk)
    with pytest.raises(TransientSendError, match="ENOSPC: No space left on device"):
        sender.send(msg())
    monkeypatch.undo()
    assert os.listdir(drop) == []  # the partial temporary file was removed

    blocker = drop.parent / "blocked"
    blocker.write_text("a file, not a directory")
    blocked = FileDropSender(directory.get("finanzamt"), directory, drop_dir=blocker / "sub")
    with pytest.raises(PermanentSendError, match="ENOTDIR") as info:
        blocked.send(msg())
    assert isinstance(info.value.__cause__, OSError)


def test_misaddressed_and_unknown_sender(directory: Directory, drop: Path) -> None:
    sender = FileDropSender(directory.get("finanzamt"), directory)
    wrong = OutgoingMessage(
        payload=XML, nachrichten_uuid=str(uuid.uuid4()), recipient="gewerbeamt", sender="gewerbeamt"
    )
    with pytest.raises(PermanentSendError, match="addressed to 'gewerbeamt'"):
        sender.send(wrong)
    stranger = OutgoingMessage(
        payload=XML, nachrichten_uuid=str(uuid.uuid4()), recipient="finanzamt", sender="nobody"
    )
    with pytest.raises(PermanentSendError, match="unknown sender agency 'nobody'"):
        sender.send(stranger)
    assert not drop.exists()
