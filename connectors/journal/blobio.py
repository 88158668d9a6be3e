"""The on-disk format of blobs, written and read by streaming (see :mod:`.blobs` for the store).

Plain blob
    The plaintext bytes, nothing else. Integrity: size checked on open, SHA-512 at the end of
    reading.
Encrypted blob
    A 40-byte header, then the plaintext in chunks of ``chunk_size`` bytes, each sealed with
    AES-256-GCM (16-byte tag)::

        header  = "AMTSBLB1" | key id (8) | salt (16) | chunk size (u32 BE) | flags (u32, 0)
        chunk i = AES-GCM(key, nonce = i (u64 BE) | final (u32 BE, 1 on the last chunk),
                          plaintext chunk, associated data = header)

    ``key`` is HKDF-SHA256 of the raw journal key with the random per-blob ``salt`` (info
    ``amtsbote blob v1``): every blob has its own key, so counter nonces never repeat under one
    key. The key id is the first 8 bytes of HMAC-SHA256(journal key, ``amtsbote blob key id``); it
    picks the right key when several are configured (rotation) and reveals nothing about it.
    Every chunk but the last is full; the last holds 0..chunk_size bytes and has the final flag,
    so a truncated, reordered, spliced or altered file fails authentication, and the header is
    bound to every chunk. The SHA-512 of the plaintext is checked at the end as well.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import JournalConflictError, JournalError, JournalKeyError, JournalNotFoundError

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "TAG_SIZE",
    "BlobConflictError",
    "BlobError",
    "BlobIntegrityError",
    "BlobKeyError",
    "BlobNotFoundError",
    "BlobReader",
    "BlobStorageError",
    "BlobTooLargeError",
    "Sealer",
    "chunks",
    "encrypted_size",
    "key_id",
]

CHUNK_SIZE = 1 << 20
MAGIC = b"AMTSBLB1"
_HEADER = struct.Struct(">8s8s16sII")
HEADER_SIZE = _HEADER.size
TAG_SIZE = 16
_NONCE = struct.Struct(">QI")
_HKDF_INFO = b"amtsbote blob v1"
_KEY_ID_INFO = b"amtsbote blob key id"
#: Chunk sizes a reader accepts from a header (a corrupt header must not make it allocate GBs).
_CHUNK_LIMITS = (1 << 10, 1 << 26)


# --------------------------------------------------------------------------------- errors


class BlobError(JournalError):
    """Base of the blob store's errors; ``digest`` names the blob where one is concerned."""


class BlobNotFoundError(BlobError, JournalNotFoundError):
    """No blob with this digest is recorded."""

    def __init__(self, digest: str, *, detail: str | None = None) -> None:
        JournalNotFoundError.__init__(self, "blob", digest, detail=detail)
        self.digest = digest


class BlobIntegrityError(BlobError):
    """A stored blob is missing, truncated, altered or does not match its SHA-512."""

    def __init__(self, digest: str, problem: str) -> None:
        super().__init__(digest, problem)
        self.digest, self.problem = digest, problem

    def __str__(self) -> str:
        return f"blob {self.digest[:16]}… failed its integrity check: {self.problem}"


class BlobKeyError(BlobError, JournalKeyError):
    """An encrypted blob cannot be opened with the configured journal key(s)."""

    def __init__(self, digest: str, problem: str) -> None:
        JournalKeyError.__init__(self, problem)
        self.digest = digest

    def __str__(self) -> str:
        return f"blob {self.digest[:16]}…: {self.problem}"


class BlobTooLargeError(BlobError):
    """A stream exceeded the size limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"blob larger than the limit of {self.limit} bytes; nothing stored"


class BlobConflictError(BlobError, JournalConflictError):
    """A message already has a file of this name with other content."""

    def __init__(self, message_key: str, name: str, digest: str, other: str) -> None:
        super().__init__(message_key, name, digest, other)
        self.message_key, self.name, self.digest, self.other = message_key, name, digest, other

    def __str__(self) -> str:
        return (
            f"message {self.message_key} has a file {self.name!r} already with SHA-512 "
            f"{self.other[:16]}…, not {self.digest[:16]}…"
        )


class BlobStorageError(BlobError):
    """The file system refused (disk full, permissions); ``path`` and ``errno`` say where/why."""

    def __init__(self, operation: str, exc: OSError) -> None:
        super().__init__(operation, str(exc))
        self.operation = operation
        self.errno = exc.errno
        self.path = exc.filename

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"blob store {self.operation}{where}: OS error {self.errno}"


# --------------------------------------------------------------------------------- crypto


def key_id(raw_key: bytes) -> bytes:
    """The 8-byte public id of a raw journal key (see the module docstring)."""
    return hmac.new(raw_key, _KEY_ID_INFO, hashlib.sha256).digest()[:8]


def _derive(raw_key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(raw_key))


def encrypted_size(size: int, chunk_size: int) -> int:
    """Bytes on disk of an encrypted blob of ``size`` plaintext bytes."""
    count = size // chunk_size + 1  # the last chunk holds 0..chunk_size bytes
    if size and size % chunk_size == 0:
        count -= 1
    return HEADER_SIZE + size + count * TAG_SIZE


class Sealer:
    """Seals the chunks of one new blob with a fresh per-blob key derived from ``raw_key``."""

    def __init__(self, raw_key: bytes, chunk_size: int) -> None:
        salt = secrets.token_bytes(16)
        self.header = _HEADER.pack(MAGIC, key_id(raw_key), salt, chunk_size, 0)
        self._aes = _derive(raw_key, salt)

    def seal(self, index: int, chunk: bytes, *, final: bool) -> bytes:
        return self._aes.encrypt(_NONCE.pack(index, int(final)), chunk, self.header)


def chunks(source: IO[bytes] | Iterable[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """``(chunk, final)`` pairs of exactly ``size`` bytes (the final one 0..size) from a binary
    file object (``read``) or an iterable of byte strings (e.g. ``httpx`` ``iter_bytes()``)."""
    read = getattr(source, "read", None)
    pieces: Iterator[bytes] = iter(()) if read is not None else iter(source)

    def fill(buffer: bytearray) -> None:
        while len(buffer) < size:
            if read is not None:
                piece = read(size - len(buffer))
                if not piece:
                    return
            else:
                item = next(pieces, None)
                if item is None:
                    return
                piece = item
            buffer += piece

    buffer = bytearray()
    fill(buffer)
    while True:
        current = bytes(buffer[:size])
        del buffer[:size]
        fill(buffer)
        final = not buffer
        yield current, final
        if final:
            return


# --------------------------------------------------------------------------------- reading


class BlobReader(io.RawIOBase):
    """A readable stream of a blob's plaintext, decrypting chunk by chunk; the SHA-512 and the
    size are verified when the end is reached (:class:`BlobIntegrityError` from ``read``).

    Read to the end before trusting a plain blob's bytes: alterations of a plain blob show only
    there. Encrypted blobs fail at the first altered chunk."""

    def __init__(
        self, path: Path, *, digest: str, size: int, keys: dict[bytes, bytes] | None
    ) -> None:
        super().__init__()
        self.digest, self.size = digest, size
        self._hash = hashlib.sha512()
        self._seen = 0
        self._buffer = b""
        self._pos = 0
        self._eof = False
        self._index = 0
        self._aes: AESGCM | None = None
        self._header = b""
        self._chunk = CHUNK_SIZE
        self._next: bytes | None = None
        try:
            self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError as exc:
            raise BlobIntegrityError(digest, f"the file {path} is missing") from exc
        except OSError as exc:
            raise BlobStorageError("open", exc) from exc
        if keys is not None:
            try:
                self._start_encrypted(keys)
            except BaseException:
                self._file.close()
                raise

    def _start_encrypted(self, keys: dict[bytes, bytes]) -> None:
        header = self._file.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            raise BlobIntegrityError(self.digest, "the file is shorter than its header")
        magic, kid, salt, chunk, flags = _HEADER.unpack(header)
        if magic != MAGIC or flags != 0:
            raise BlobIntegrityError(self.digest, "not an encrypted blob (bad header)")
        if not _CHUNK_LIMITS[0] <= chunk <= _CHUNK_LIMITS[1]:
            raise BlobIntegrityError(self.digest, f"implausible chunk size {chunk} in header")
        if not keys:
            raise BlobKeyError(
                self.digest,
                "stored encrypted, but no journal key is configured (AMTSBOTE_JOURNAL_KEY)",
            )
        raw = keys.get(kid)
        if raw is None:
            raise BlobKeyError(
                self.digest, "encrypted with a journal key that is not configured (rotated out?)"
            )
        self._aes, self._header, self._chunk = _derive(raw, salt), header, chunk

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while self._pos >= len(self._buffer):
            if self._eof:
                return 0
            self._fill()
        n = min(len(view), len(self._buffer) - self._pos)
        view[:n] = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return n

    def _fill(self) -> None:
        try:
            data, final = self._read_chunk()
        except OSError as exc:
            raise BlobStorageError("read", exc) from exc
        self._seen += len(data)
        if self._seen > self.size:
            raise BlobIntegrityError(self.digest, f"longer than the recorded {self.size} bytes")
        self._hash.update(data)
        self._buffer, self._pos = data, 0
        if final:
            self._eof = True
            self._finish()

    def _read_chunk(self) -> tuple[bytes, bool]:
        if self._aes is None:
            data = self._file.read(self._chunk)
            return data, not data
        block = self._next if self._next is not None else self._file.read(self._chunk + TAG_SIZE)
        self._next = None
        if len(block) == self._chunk + TAG_SIZE:
            self._next = self._file.read(self._chunk + TAG_SIZE)
        final = not self._next
        if len(block) < TAG_SIZE:
            raise BlobIntegrityError(self.digest, f"chunk {self._index} is truncated")
        try:
            data = self._aes.decrypt(_NONCE.pack(self._index, int(final)), block, self._header)
        except InvalidTag as exc:
            raise BlobIntegrityError(
                self.digest, f"chunk {self._index} fails authentication (altered or truncated)"
            ) from exc
        self._index += 1
        return data, final

    def _finish(self) -> None:
        if self._seen != self.size:
            raise BlobIntegrityError(
                self.digest, f"{self._seen} bytes, the journal recorded {self.size}"
            )
        actual = self._hash.hexdigest()
        if not hmac.compare_digest(actual, self.digest):
            raise BlobIntegrityError(self.digest, f"the content's SHA-512 is {actual[:16]}…")

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def fsync_dir(path: Path) -> None:
    """Make a new directory entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
