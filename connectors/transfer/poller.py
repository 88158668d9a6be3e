"""Pollers: pick up what the partner wrote into a transfer area and hand it to a callback.

:meth:`poll_once` lists the root and the folder of each receivable type
(:meth:`TransferLayout.receive_folders`), and for at most ``max_files`` complete files calls
``accept(path, source=…)`` with a local path (the file itself for a directory on disk; a temporary
file the WebDAV download was streamed into — never the whole file in memory — for WebDAV):

* ``accept`` returns → the file is moved to ``.done/`` (or deleted, ``layout.done=None``);
* ``accept`` raises :class:`~connectors.transfer.layout.Refused`, an
  :class:`xoev.exceptions.ContainerError`, or an exception with a 4xx ``status_code`` (other than
  408/425/429) → the file is moved to ``.rejected/`` beside ``<name>.reason.txt``;
* any other exception → the file stays for the next poll (counted as ``failed``).

Delivery is at least once: a crash (or a failed move) between ``accept`` returning and the move
re-delivers the file on the next poll, so the receiver must deduplicate (the inbox keys xdomea
messages by ProzessID and type). A file is complete when its name does not start with ``.``
(writers publish under a hidden temporary name and rename) and it has not changed for
``min_age`` seconds (x-man writes into its transfer directory on disk without a temporary
name, like the x-man reader itself, which waits until a file stops changing).

Listing the root fails with :class:`~connectors.transfer.layout.TransferError` (``transient``
tells whether to retry); a missing type folder is simply empty.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from xoev.exceptions import ContainerError

from .dav import DavClient
from .layout import REASON_SUFFIX, Disposition, Refused, TransferError, TransferLayout

__all__ = ["AcceptFn", "PollResult", "TransferDirPoller", "WebDavPoller"]

_NOT_REFUSALS = frozenset({408, 425, 429})


class AcceptFn(Protocol):
    def __call__(self, path: Path, *, source: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PollResult:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()
    """One line per failed file: name and the exception (left for the next poll)."""


def refusal(exc: BaseException) -> str | None:
    """The reason when ``exc`` refuses a file for good; None when it may be retried."""
    if isinstance(exc, Refused | ContainerError):
        return f"{type(exc).__name__}: {exc}"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in _NOT_REFUSALS:
        return f"{type(exc).__name__} (status {status}): {exc}"
    return None


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    is_dir: bool
    modified: datetime | None


class _Poller:
    def __init__(
        self,
        accept: AcceptFn | Callable[..., Any],
        *,
        layout: TransferLayout | None = None,
        max_files: int = 100,
        min_age: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_files < 1:
            raise ValueError(f"max_files must be >= 1, got {max_files}")
        self.accept, self.layout = accept, layout or TransferLayout()
        self.max_files, self.min_age, self._clock = max_files, min_age, clock

    # backend
    def _list(self, folder: str) -> list[_Entry] | None:
        raise NotImplementedError

    def _fetch(self, rel: str) -> contextlib.AbstractContextManager[Path]:
        raise NotImplementedError

    def _source(self, rel: str) -> str:
        raise NotImplementedError

    def _move(self, rel: str, folder: str) -> None:
        raise NotImplementedError

    def _delete(self, rel: str) -> None:
        raise NotImplementedError

    def _write_reason(self, folder: str, name: str, text: str) -> None:
        raise NotImplementedError

    def poll_once(self) -> PollResult:
        accepted = rejected = failed = 0
        errors: list[str] = []
        taken = 0
        now = self._clock()
        for index, folder in enumerate(self.layout.receive_folders()):
            entries = self._list(folder)
            if entries is None:
                if index == 0:
                    raise TransferError(
                        "the transfer area's root does not exist", url=self._source("")
                    )
                continue
            for entry in sorted(entries, key=lambda e: e.name):
                if taken >= self.max_files:
                    break
                if entry.is_dir:
                    continue
                disposition, why = self.layout.disposition(folder, entry.name)
                if disposition is Disposition.IGNORE:
                    continue
                if entry.modified is not None and now - entry.modified.timestamp() < self.min_age:
                    continue  # may still be written
                taken += 1
                rel = f"{folder}/{entry.name}" if folder else entry.name
                try:
                    if disposition is Disposition.REJECT:
                        self._reject(rel, entry.name, why)
                        rejected += 1
                    elif self._deliver(rel, entry.name):
                        accepted += 1
                    else:
                        rejected += 1
                except Exception as exc:  # left for the next poll
                    failed += 1
                    errors.append(f"{rel}: {type(exc).__name__}: {exc}")
        return PollResult(accepted, rejected, failed, tuple(errors))

    def _deliver(self, rel: str, name: str) -> bool:
        """True when accepted (and moved to done), False when refused (moved to rejected)."""
        with self._fetch(rel) as path:
            refused: str | None = None
            try:
                self.accept(path, source=self._source(rel))
            except Exception as exc:
                refused = refusal(exc)
                if refused is None:
                    raise
        if refused is not None:
            self._reject(rel, name, refused)
            return False
        if self.layout.done is None:
            self._delete(rel)
        else:
            self._move(rel, self.layout.done)
        return True

    def _reject(self, rel: str, name: str, reason: str) -> None:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        text = f"{name}\nrejected {when} by amtsbote\n{reason}\n"
        self._write_reason(self.layout.rejected, name, text)
        self._move(rel, self.layout.rejected)


class TransferDirPoller(_Poller):
    """Polls a transfer directory on the file system (``root``)."""

    def __init__(
        self, root: Path | str, accept: AcceptFn | Callable[..., Any], **options: Any
    ) -> None:
        super().__init__(accept, **options)
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"TransferDirPoller({self.root})"

    def _list(self, folder: str) -> list[_Entry] | None:
        path = self.root / folder if folder else self.root
        try:
            with os.scandir(path) as it:
                return [
                    _Entry(e.name, e.is_dir(), datetime.fromtimestamp(e.stat().st_mtime, UTC))
                    for e in it
                ]
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise TransferError(
                f"cannot list: {exc.strerror or exc}", url=str(path), transient=True
            ) from exc

    @contextlib.contextmanager
    def _fetch(self, rel: str) -> Iterator[Path]:
        yield self.root / rel

    def _source(self, rel: str) -> str:
        return str(self.root / rel) if rel else str(self.root)

    def _move(self, rel: str, folder: str) -> None:
        target_dir = self.root / folder
        target_dir.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / rel, target_dir / Path(rel).name)

    def _delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def _write_reason(self, folder: str, name: str, text: str) -> None:
        target_dir = self.root / folder
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target_dir / f".{name}{REASON_SUFFIX}.part"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target_dir / f"{name}{REASON_SUFFIX}")


class WebDavPoller(_Poller):
    """Polls a transfer area on WebDAV (``root`` = URL of the root collection) through an
    injected ``httpx.Client`` and basic ``auth``; downloads go to ``work_dir`` (default: the
    system's temporary directory) and are removed after the callback."""

    def __init__(
        self,
        root: str,
        accept: AcceptFn | Callable[..., Any],
        *,
        client: httpx.Client,
        auth: tuple[str, str] | httpx.Auth | None = None,
        work_dir: Path | str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(accept, **options)
        self.dav = DavClient(root, client=client, auth=auth)
        self.work_dir = Path(work_dir) if work_dir is not None else None

    def __repr__(self) -> str:
        return f"WebDavPoller({self.dav.root})"

    def _list(self, folder: str) -> list[_Entry] | None:
        found = self.dav.list(folder)
        if found is None:
            return None
        return [_Entry(e.name, e.is_dir, e.modified) for e in found]

    @contextlib.contextmanager
    def _fetch(self, rel: str) -> Iterator[Path]:
        tmp = Path(tempfile.mkdtemp(prefix="amtsbote-dav-", dir=self.work_dir))
        try:
            target = tmp / Path(rel).name
            if self.dav.download(rel, target) is None:
                raise TransferError(
                    "vanished before it was read",
                    url=self.dav.url(rel),
                    status_code=404,
                    transient=True,
                )
            yield target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _source(self, rel: str) -> str:
        return self.dav.url(rel)

    def _move(self, rel: str, folder: str) -> None:
        self.dav.mkcol(folder)
        self.dav.move(rel, f"{folder}/{Path(rel).name}", overwrite=True)

    def _delete(self, rel: str) -> None:
        self.dav.delete(rel)

    def _write_reason(self, folder: str, name: str, text: str) -> None:
        self.dav.mkcol(folder)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", suffix=REASON_SUFFIX, dir=self.work_dir, delete=False
        ) as out:
            out.write(text)
        try:
            part = f"{folder}/.{name}{REASON_SUFFIX}.part"
            self.dav.upload(part, Path(out.name))
            self.dav.move(part, f"{folder}/{name}{REASON_SUFFIX}", overwrite=True)
        finally:
            Path(out.name).unlink(missing_ok=True)
