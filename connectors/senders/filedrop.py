"""Drop delivery: ``<nachrichtenUUID>.xml`` appears whole in the recipient's directory, or not
at all.

Steps: write the payload to a hidden temporary file in the target directory
(``.<uuid>.<random>.part``, so a reader globbing ``*.xml`` never sees it), ``fsync`` it, publish it
under ``<uuid>.xml`` atomically, remove the temporary name and ``fsync`` the directory so the new
entry survives a crash. Publishing uses ``os.link`` — an atomic rename that never replaces an
existing file, so two writers racing with different content cannot overwrite each other; where the
file system has no hard links, ``os.rename`` after a fresh existence check is used instead.

Idempotent: if ``<uuid>.xml`` already holds the same bytes, the same receipt comes back (its
``received_at`` is the file's modification time); other bytes under that name are a
:class:`PermanentSendError`. The receipt's ``state`` is ``delivered``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..directory import Agency, Directory
from .base import BlockingSender, OutgoingMessage, Receipt, SenderConfig
from .exceptions import PermanentSendError, SenderConfigError, SendError, TransientSendError

__all__ = ["STATE_DELIVERED", "FileDropSender"]

STATE_DELIVERED = "delivered"
#: errno values after which trying again later may succeed.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.EIO,
        errno.ESTALE,
        errno.EMFILE,
        errno.ENFILE,
        errno.ETIMEDOUT,
    }
)
#: errno values of os.link meaning "this file system has no hard links".
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK})


class FileDropSender(BlockingSender):
    """Writes messages for ``recipient`` into its ``drop_dir`` (or ``drop_dir`` given here)."""

    def __init__(
        self,
        recipient: Agency,
        directory: Directory | None = None,
        *,
        drop_dir: Path | str | None = None,
        config: SenderConfig | None = None,
    ) -> None:
        target = drop_dir if drop_dir is not None else recipient.drop_dir
        if target is None:
            raise SenderConfigError(recipient.id, "drop_dir", "no drop directory")
        self._recipient = recipient
        self._directory = directory
        self.drop_dir = Path(target)
        self.config = config or SenderConfig()

    @property
    def recipient(self) -> Agency:
        return self._recipient

    def __repr__(self) -> str:
        return f"FileDropSender({self._recipient.id} into {self.drop_dir})"

    def path_for(self, message: OutgoingMessage) -> Path:
        return self.drop_dir / f"{message.nachrichten_uuid}.xml"

    def send(self, message: OutgoingMessage) -> Receipt:
        if message.recipient != self._recipient.id:
            raise self._error(
                PermanentSendError,
                message,
                f"message is addressed to {message.recipient!r}; this sender delivers to "
                f"{self._recipient.id!r}",
            )
        if self._directory is not None and message.sender not in self._directory:
            raise self._error(
                PermanentSendError, message, f"unknown sender agency {message.sender!r}"
            )
        if message.file is not None:
            raise self._error(
                PermanentSendError,
                message,
                "a drop directory takes XML only; a container (file) needs channel http/mailbox",
            )
        target = self.path_for(message)
        try:
            return self._drop(message, target)
        except SendError:
            raise
        except OSError as exc:
            raise self._os_error(message, exc) from exc

    # -- internals

    def _drop(self, message: OutgoingMessage, target: Path) -> Receipt:
        existing = self._existing(message, target)
        if existing is not None:
            return existing
        self.drop_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.drop_dir / f".{message.nachrichten_uuid}.{secrets.token_hex(6)}.part"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
            self.config.file_mode,
        )
        try:
            try:
                os.fchmod(fd, self.config.file_mode)  # not narrowed by the umask
                view = memoryview(message.payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            published = self._publish(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if not published:  # someone else published first
            existing = self._existing(message, target)
            if existing is not None:
                return existing
        self._fsync_dir()
        receipt = self._receipt(message, target)
        if receipt is None:  # pragma: no cover - the file was removed in between
            raise self._error(TransientSendError, message, f"{target.name} vanished after writing")
        return receipt

    def _publish(self, tmp: Path, target: Path) -> bool:
        return publish(tmp, target)

    def _fsync_dir(self) -> None:
        fsync_dir(self.drop_dir)

    def _existing(self, message: OutgoingMessage, target: Path) -> Receipt | None:
        """The receipt for an already dropped identical message; None if there is none; a
        conflict error if another payload has the name."""
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            return None
        if data != message.payload:
            raise self._error(
                PermanentSendError,
                message,
                f"{target.name} already exists with other content (SHA-512 "
                f"{hashlib.sha512(data).hexdigest()[:16]}…, this message "
                f"{message.sha512[:16]}…): nachrichtenUUID reused",
            )
        return self._receipt(message, target)

    def _receipt(self, message: OutgoingMessage, target: Path) -> Receipt | None:
        try:
            ns = target.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        received_at = datetime.fromtimestamp(ns // 1_000_000_000, UTC) + timedelta(
            microseconds=(ns % 1_000_000_000) // 1000
        )
        raw: dict[str, Any] = {
            "nachrichtenUUID": message.nachrichten_uuid,
            "received_at": received_at.isoformat(),
            "sha512": message.sha512,
            "state": STATE_DELIVERED,
            "path": str(target),
        }
        return Receipt(
            nachrichten_uuid=message.nachrichten_uuid,
            received_at=received_at,
            sha512=message.sha512,
            state=STATE_DELIVERED,
            raw=raw,
        )

    def _error(self, cls: type[SendError], message: OutgoingMessage, reason: str) -> SendError:
        return cls(
            reason,
            recipient=self._recipient.id,
            nachrichten_uuid=message.nachrichten_uuid,
            url=str(self.drop_dir),
        )

    def _os_error(self, message: OutgoingMessage, exc: OSError) -> SendError:
        cls = TransientSendError if exc.errno in _TRANSIENT_ERRNOS else PermanentSendError
        name = errno.errorcode.get(exc.errno or 0, "OSError")
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        return self._error(cls, message, f"{name}: {exc.strerror or exc}{where}")


def publish(tmp: Path, target: Path) -> bool:
    """Give ``tmp`` the name ``target`` atomically, never replacing a file (``os.link``; where
    the file system has no hard links, ``os.rename`` after an existence check); False if
    ``target`` already exists."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    if target.exists():
        return False
    os.rename(tmp, target)
    return True


def fsync_dir(path: Path) -> None:
    """``fsync`` a directory, so that a new entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
