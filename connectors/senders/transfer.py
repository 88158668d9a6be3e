"""Delivery into an x-man transfer directory on the file system (channel ``transfer-dir``).

What is written (:func:`prepare`, shared with :mod:`connectors.senders.webdav`):

* a message with ``file`` (a container on disk): that file, under its own name;
* an xdomea message without ``file``: a container built from the payload with
  :func:`xoev.container.write_container` (x-man exchanges zips only) — deterministic, so the same
  payload gives the same bytes again;
* any other payload: ``<nachrichtenUUID>.xml``.

The file lands in the root of the transfer directory (:class:`~connectors.transfer.TransferLayout`
``send_folder``), published like :mod:`connectors.senders.filedrop`: streamed in 1 MiB chunks into
``.<name>.<random>.part``, ``fsync``, ``os.link`` to the name (never replaces), directory
``fsync``. Idempotent: the name holding the same bytes gives the same receipt (``received_at`` =
modification time); other bytes are a :class:`PermanentSendError`. Receipt state ``delivered``,
``sha512`` of the bytes written. OS errors are translated by errno as in the file drop (ENOSPC,
EIO, … transient; EACCES, … permanent).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xoev.container import CHUNK, write_container
from xoev.exceptions import (
    ContainerError,
    ContainerMismatchError,
    UnusableInputError,
    XoevError,
)

from ..directory import Agency, Directory
from ..transfer.layout import TransferError, TransferLayout, check_file_name
from .base import BlockingSender, OutgoingMessage, Receipt, SenderConfig
from .exceptions import PermanentSendError, SenderConfigError, SendError, TransientSendError
from .filedrop import _TRANSIENT_ERRNOS, STATE_DELIVERED, fsync_dir, publish

__all__ = ["TransferDirSender", "file_sha512", "prepare"]


def file_sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def prepare(message: OutgoingMessage) -> Iterator[tuple[str, Path]]:
    """The file name and a local file holding the bytes to deliver (temporary files removed on
    exit). A container that cannot be built is a permanent
    :class:`~connectors.transfer.TransferError`."""
    if message.file is not None:
        source = Path(message.file)
        if why := check_file_name(source.name):
            raise TransferError(f"container file name: {why}")
        if not source.is_file():
            raise TransferError(f"container file {source.name} does not exist")
        yield source.name, source
        return
    work = Path(tempfile.mkdtemp(prefix="amtsbote-transfer-"))
    try:
        try:
            members = write_container(work, message.payload)
        except (ContainerError, UnusableInputError) as exc:
            xdomea = not isinstance(exc, ContainerMismatchError) or exc.rule != "xml:header"
            if isinstance(exc, ContainerError) and xdomea:
                raise TransferError(f"cannot build the container: {exc}") from exc
            # not xdomea (another XÖV standard, or no XML at all): delivered as it is
            name = f"{message.nachrichten_uuid}.xml"
            (work / name).write_bytes(message.payload)
            yield name, work / name
        except XoevError as exc:
            raise TransferError(f"cannot build the container: {exc}") from exc
        else:
            container = next(iter(members.values())).container
            yield container.name, container
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mtime_receipt(message: OutgoingMessage, sha512: str, ns: int, **raw: Any) -> Receipt:
    received_at = datetime.fromtimestamp(ns // 1_000_000_000, UTC) + timedelta(
        microseconds=(ns % 1_000_000_000) // 1000
    )
    return make_receipt(message, sha512, received_at, **raw)


def make_receipt(
    message: OutgoingMessage, sha512: str, received_at: datetime, **raw: Any
) -> Receipt:
    data: dict[str, Any] = {
        "nachrichtenUUID": message.nachrichten_uuid,
        "received_at": received_at.isoformat(),
        "sha512": sha512,
        "state": STATE_DELIVERED,
        **raw,
    }
    return Receipt(message.nachrichten_uuid, received_at, sha512, STATE_DELIVERED, data)


class TransferDirSender(BlockingSender):
    """Writes messages for ``recipient`` into its ``transfer_dir`` (or ``root`` given here)."""

    def __init__(
        self,
        recipient: Agency,
        directory: Directory | None = None,
        *,
        root: Path | str | None = None,
        layout: TransferLayout | None = None,
        config: SenderConfig | None = None,
    ) -> None:
        target = root if root is not None else recipient.transfer_dir
        if target is None:
            raise SenderConfigError(recipient.id, "transfer_dir", "no transfer directory")
        self._recipient, self._directory = recipient, directory
        self.root = Path(target)
        self.layout = layout or TransferLayout()
        self.folder = self.root / self.layout.send_folder if self.layout.send_folder else self.root
        self.config = config or SenderConfig()

    @property
    def recipient(self) -> Agency:
        return self._recipient

    def __repr__(self) -> str:
        return f"TransferDirSender({self._recipient.id} into {self.folder})"

    def send(self, message: OutgoingMessage) -> Receipt:
        check_addressing(self, message, url=str(self.folder))
        try:
            with prepare(message) as (name, source):
                return self._publish(message, name, source)
        except SendError:
            raise
        except TransferError as exc:
            cls = TransientSendError if exc.transient else PermanentSendError
            raise self._error(cls, message, exc.reason) from exc
        except OSError as exc:
            cls = TransientSendError if exc.errno in _TRANSIENT_ERRNOS else PermanentSendError
            code = errno.errorcode.get(exc.errno or 0, "OSError")
            where = f" ({Path(exc.filename).name})" if exc.filename else ""
            raise self._error(cls, message, f"{code}: {exc.strerror or exc}{where}") from exc

    # -- internals

    def _publish(self, message: OutgoingMessage, name: str, source: Path) -> Receipt:
        target = self.folder / name
        sha512 = file_sha512(source)
        existing = self._existing(message, target, sha512)
        if existing is not None:
            return existing
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.{secrets.token_hex(6)}.part"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
            self.config.file_mode,
        )
        try:
            try:
                os.fchmod(fd, self.config.file_mode)
                with open(source, "rb") as stream:
                    while chunk := stream.read(CHUNK):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            published = publish(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if not published:
            existing = self._existing(message, target, sha512)
            if existing is not None:
                return existing
        fsync_dir(self.folder)
        return mtime_receipt(
            message, sha512, target.stat().st_mtime_ns, path=str(target), name=name
        )

    def _existing(self, message: OutgoingMessage, target: Path, sha512: str) -> Receipt | None:
        try:
            ns = target.stat().st_mtime_ns
            there = file_sha512(target)
        except FileNotFoundError:
            return None
        if there != sha512:
            raise self._error(
                PermanentSendError,
                message,
                f"{target.name} already exists with other content (SHA-512 {there[:16]}…, "
                f"this message {sha512[:16]}…)",
            )
        return mtime_receipt(message, sha512, ns, path=str(target), name=target.name)

    def _error(self, cls: type[SendError], message: OutgoingMessage, reason: str) -> SendError:
        return cls(
            reason,
            recipient=self._recipient.id,
            nachrichten_uuid=message.nachrichten_uuid,
            url=str(self.folder),
        )


def check_addressing(sender: Any, message: OutgoingMessage, *, url: str) -> None:
    """PermanentSendError unless ``message`` is for the sender's recipient from a known agency."""
    recipient: Agency = sender.recipient
    directory: Directory | None = sender._directory
    reason = None
    if message.recipient != recipient.id:
        reason = (
            f"message is addressed to {message.recipient!r}; this sender delivers to "
            f"{recipient.id!r}"
        )
    elif directory is not None and message.sender not in directory:
        reason = f"unknown sender agency {message.sender!r}"
    if reason is not None:
        raise PermanentSendError(
            reason, recipient=recipient.id, nachrichten_uuid=message.nachrichten_uuid, url=url
        )
