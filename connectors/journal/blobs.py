"""Primary documents outside the message rows: a content-addressed blob store under the data dir.

Files live at ``<root>/sha512/ab/cd/<hex>`` (``ab``, ``cd``: the digest's first two byte pairs),
named by the SHA-512 of the *plaintext*, so the same document is stored once however many
messages carry it (dedup). The journal records each blob in ``blobs`` and which message holds it
under which name in ``message_blobs`` (:mod:`.models`).

Writing streams: the source is read in chunks (never whole into memory), the SHA-512 computed on
the way, the result written to a temporary file in ``<root>/tmp``, ``fsync``-ed and renamed into
place while the journal row is written, under a lock per digest; a crash leaves at most a
temporary file or an unrecorded file, never a recorded half-written blob.

Encryption at rest: with a journal key (``AMTSBOTE_JOURNAL_KEY``) every new blob is encrypted in
chunks with AES-256-GCM under a per-blob key derived by HKDF from the journal key (format in
:mod:`.blobio`); keys rotate as for payloads (the first key encrypts, every key decrypts).
**Without a key blobs are stored as plain files.** A blob stored before a key was configured stays
as it was (dedup keeps the first copy).

Where: ``journal.blobs`` (the default store) lives beside a SQLite journal file (``<data
dir>/blobs`` for the default journal); for PostgreSQL in ``AMTSBOTE_DATA_DIR/blobs``. Back the
directory up with the database.

Errors (all :class:`~connectors.exceptions.JournalError`, defined in :mod:`.blobio`)::

    JournalError
    └── BlobError                    .digest where one blob is concerned
        ├── BlobNotFoundError        no such blob recorded (also JournalNotFoundError)
        ├── BlobIntegrityError       file missing, truncated, altered, SHA-512 mismatch
        ├── BlobKeyError             encrypted with a key that is not configured (JournalKeyError)
        ├── BlobTooLargeError        the stream exceeded ``max_size``; nothing stored
        ├── BlobConflictError        a message's file name taken by other content
        └── BlobStorageError         the file system refused (disk full, permissions)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import RowMapping, Table, select, text, update

from ..config import Settings
from ..exceptions import JournalValueError
from .blobio import (
    CHUNK_SIZE,
    BlobConflictError,
    BlobError,
    BlobIntegrityError,
    BlobKeyError,
    BlobNotFoundError,
    BlobReader,
    BlobStorageError,
    BlobTooLargeError,
    Sealer,
    chunks,
    fsync_dir,
    key_id,
)
from .engine import sqlite_file
from .models import metadata
from .records import normalize_uuid
from .repo.base import insert_ignore, lock_key, utcnow

if TYPE_CHECKING:
    from .repo.base import JournalBase

__all__ = [
    "BlobConflictError",
    "BlobError",
    "BlobIntegrityError",
    "BlobKeyError",
    "BlobNotFoundError",
    "BlobReader",
    "BlobRef",
    "BlobStorageError",
    "BlobStore",
    "BlobTooLargeError",
    "MessageFile",
    "default_root",
]

T_BLOBS: Table = metadata.tables["blobs"]
T_MESSAGE_BLOBS: Table = metadata.tables["message_blobs"]
_DIGEST = re.compile(r"[0-9a-f]{128}")
_MAX_NAME = 500


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A stored blob. ``new``: this call stored it (False: it was there already)."""

    digest: str
    size: int
    stored_size: int
    encrypted: bool
    created: datetime
    new: bool = False


@dataclass(frozen=True, slots=True)
class MessageFile:
    """A file of a message: its name there and its blob."""

    message_key: str
    name: str
    digest: str
    size: int
    encrypted: bool


def default_root(journal: JournalBase) -> Path:
    """Where ``journal.blobs`` keeps its files (see the module docstring)."""
    path = sqlite_file(journal.url)
    if path is not None:
        return path.parent / "blobs"
    return Settings.from_env().data_dir / "blobs"


def check_digest(digest: object) -> str:
    """A SHA-512 as 128 lower-case hex digits; :class:`JournalValueError` otherwise."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest.lower()):
        raise JournalValueError("digest", "not a SHA-512 (128 hex digits)")
    return digest.lower()


def check_name(name: object) -> str:
    """A file name inside a message: a relative POSIX path without ``.``/``..`` segments."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise JournalValueError("name", f"must be a non-empty string of at most {_MAX_NAME}")
    if name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        raise JournalValueError("name", f"{name!r}: absolute, backslash or control character")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise JournalValueError("name", f"{name!r}: empty, '.' or '..' path segment")
    return name


class BlobStore:
    """Content-addressed files of one journal. Thread-safe; see the module docstring.

    ``keys``: raw 32-byte journal keys (first encrypts); default the journal's own.
    ``max_size``: default limit of :meth:`put_stream` (None: none)."""

    def __init__(
        self,
        journal: JournalBase,
        root: Path | str,
        *,
        keys: Sequence[bytes] | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_size: int | None = None,
        file_mode: int = 0o600,
    ) -> None:
        if not 1 << 10 <= chunk_size <= 1 << 26:
            raise JournalValueError("chunk_size", "must be between 1 KiB and 64 MiB")
        self._journal = journal
        self.root = Path(root)
        raw = tuple(keys) if keys is not None else journal._codec.raw_keys
        self._keys = {key_id(k): k for k in raw}
        self._current = raw[0] if raw else None
        self.chunk_size = chunk_size
        self.max_size = max_size
        self.file_mode = file_mode

    @classmethod
    def for_journal(cls, journal: JournalBase) -> BlobStore:
        return cls(journal, default_root(journal))

    @property
    def encrypts(self) -> bool:
        return self._current is not None

    def __repr__(self) -> str:
        return f"BlobStore({self.root}, encrypted={self.encrypts})"

    def path_of(self, digest: str) -> Path:
        digest = check_digest(digest)
        return self.root / "sha512" / digest[:2] / digest[2:4] / digest

    # ------------------------------------------------------------------ writing

    def put_stream(
        self, source: IO[bytes] | Iterable[bytes], *, max_size: int | None = None
    ) -> BlobRef:
        """Store what ``source`` yields (a binary file object, or an iterable of byte strings),
        streaming; returns the blob (``new=False`` when the content was stored before)."""
        limit = self.max_size if max_size is None else max_size
        tmp_dir = self.root / "tmp"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = tmp_dir / f"{secrets.token_hex(12)}.part"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.file_mode)
        except OSError as exc:
            raise BlobStorageError("write", exc) from exc
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                digest, size, stored = self._write(out, source, limit)
                os.fsync(out.fileno())
            return self._publish(tmp, digest, size, stored)
        except OSError as exc:
            raise BlobStorageError("write", exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store a small document held in memory already."""
        return self.put_stream([bytes(data)])

    def put_file(self, path: Path | str, *, max_size: int | None = None) -> BlobRef:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise BlobStorageError("read source", exc) from exc
        with handle:
            return self.put_stream(handle, max_size=max_size)

    def _write(
        self, out: IO[bytes], source: IO[bytes] | Iterable[bytes], limit: int | None
    ) -> tuple[str, int, int]:
        sha = hashlib.sha512()
        sealer = Sealer(self._current, self.chunk_size) if self._current is not None else None
        stored = 0
        if sealer is not None:
            out.write(sealer.header)
            stored += len(sealer.header)
        size = 0
        for index, (chunk, final) in enumerate(chunks(source, self.chunk_size)):
            size += len(chunk)
            if limit is not None and size > limit:
                raise BlobTooLargeError(limit)
            sha.update(chunk)
            data = sealer.seal(index, chunk, final=final) if sealer is not None else chunk
            out.write(data)
            stored += len(data)
        return sha.hexdigest(), size, stored

    def _publish(self, tmp: Path, digest: str, size: int, stored: int) -> BlobRef:
        target = self.path_of(digest)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        encrypted = self._current is not None
        now = utcnow()
        with self._journal._tx("blobs.put") as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"blob:{digest}")}
                )
            row = conn.execute(select(T_BLOBS).where(T_BLOBS.c.digest == digest)).first()
            if row is not None and target.exists():
                return _ref(row._mapping, new=False)
            os.replace(tmp, target)
            fsync_dir(target.parent)
            values = {"size": size, "stored_size": stored, "encrypted": encrypted}
            if row is None:
                conn.execute(
                    insert_ignore(conn.dialect.name, T_BLOBS, "digest"),
                    {"digest": digest, "created": now, **values},
                )
                created = now
            else:  # recorded, but the file was lost: stored again
                conn.execute(update(T_BLOBS).where(T_BLOBS.c.digest == digest).values(**values))
                created = row._mapping["created"]
        return BlobRef(digest, size, stored, encrypted, created, new=True)

    # ------------------------------------------------------------------ reading

    def get(self, digest: str) -> BlobRef:
        digest = check_digest(digest)
        with self._journal._tx("blobs.get", write=False) as conn:
            row = conn.execute(select(T_BLOBS).where(T_BLOBS.c.digest == digest)).first()
        if row is None:
            raise BlobNotFoundError(digest)
        return _ref(row._mapping)

    def exists(self, digest: str) -> bool:
        try:
            self.get(digest)
        except BlobNotFoundError:
            return False
        return True

    def open(self, digest: str) -> BlobReader:
        """A stream of the blob's plaintext (close it; ``with store.open(d) as f``). Truncation
        is detected here, alterations while reading (see :class:`BlobReader`)."""
        ref = self.get(digest)
        path = self.path_of(ref.digest)
        try:
            on_disk = path.stat().st_size
        except FileNotFoundError:
            raise BlobIntegrityError(ref.digest, f"the file {path} is missing") from None
        except OSError as exc:
            raise BlobStorageError("stat", exc) from exc
        if on_disk != ref.stored_size:
            raise BlobIntegrityError(
                ref.digest, f"the file has {on_disk} bytes, the journal recorded {ref.stored_size}"
            )
        return BlobReader(
            path, digest=ref.digest, size=ref.size, keys=self._keys if ref.encrypted else None
        )

    def copy_to(self, digest: str, target: IO[bytes]) -> int:
        """Write the verified plaintext into ``target`` (streaming); returns the bytes written.
        An integrity failure is raised after the bytes before it were written."""
        with self.open(digest) as reader:
            shutil.copyfileobj(reader, target, self.chunk_size)
            return reader.size

    def verify(self, digest: str) -> BlobRef:
        """Read the whole blob and check it; raises :class:`BlobIntegrityError` if broken."""
        with self.open(digest) as reader:
            while reader.read(self.chunk_size):
                pass
        return self.get(digest)

    # ------------------------------------------------------------------ message files

    def attach(self, message_key: str, name: str, digest: str) -> MessageFile:
        """Record that message ``message_key`` holds blob ``digest`` as ``name``. Idempotent;
        the same name with other content is a :class:`BlobConflictError`."""
        key = normalize_uuid(message_key, "message_key")
        name = check_name(name)
        digest = check_digest(digest)
        with self._journal._tx("blobs.attach") as conn:
            blob = conn.execute(select(T_BLOBS).where(T_BLOBS.c.digest == digest)).first()
            if blob is None:
                raise BlobNotFoundError(digest, detail=f"cannot attach it to message {key}")
            conn.execute(
                insert_ignore(conn.dialect.name, T_MESSAGE_BLOBS, "message_key", "name"),
                {"message_key": key, "name": name, "digest": digest},
            )
            held = conn.execute(
                select(T_MESSAGE_BLOBS.c.digest).where(
                    T_MESSAGE_BLOBS.c.message_key == key, T_MESSAGE_BLOBS.c.name == name
                )
            ).scalar_one()
            if held != digest:
                raise BlobConflictError(key, name, digest, held)
        ref = _ref(blob._mapping)
        return MessageFile(key, name, digest, ref.size, ref.encrypted)

    def files_of(self, message_key: str) -> tuple[MessageFile, ...]:
        """The files of a message, by name."""
        key = normalize_uuid(message_key, "message_key")
        query = (
            select(
                T_MESSAGE_BLOBS.c.name,
                T_MESSAGE_BLOBS.c.digest,
                T_BLOBS.c.size,
                T_BLOBS.c.encrypted,
            )
            .join(T_BLOBS, T_BLOBS.c.digest == T_MESSAGE_BLOBS.c.digest)
            .where(T_MESSAGE_BLOBS.c.message_key == key)
            .order_by(T_MESSAGE_BLOBS.c.name)
        )
        with self._journal._tx("blobs.files_of", write=False) as conn:
            rows = conn.execute(query).all()
        return tuple(
            MessageFile(key, r.name, r.digest, int(r.size), bool(r.encrypted)) for r in rows
        )


def _ref(m: RowMapping, *, new: bool = False) -> BlobRef:
    return BlobRef(
        digest=m["digest"],
        size=int(m["size"]),
        stored_size=int(m["stored_size"]),
        encrypted=bool(m["encrypted"]),
        created=m["created"],
        new=new,
    )
