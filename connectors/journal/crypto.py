"""How payloads are stored: zlib-compressed, then Fernet-encrypted when a key is configured.

* **Compression** — zlib level 1: XÖV XML shrinks to a fraction at a few µs per kilobyte; higher
  levels gain little on XML and cost several times the CPU in the inbox's hot path.
* **Encryption** — ``AMTSBOTE_JOURNAL_KEY`` holds one or more Fernet keys (32 random bytes,
  url-safe base64, comma-separated). The first key encrypts; every key decrypts, so a key is
  rotated by prepending the new one and dropping the old one once old payloads have been
  re-encrypted or have expired. Fernet is AES-128-CBC with HMAC-SHA256: a wrong key or a
  tampered value is detected, never silently decrypted to garbage.
* **No passphrases** — deriving a key from a passphrase needs a KDF salt and parameters stored
  beside the data, and invites weak secrets; operators put a generated key into their secret
  store instead (``amtsbote db genkey`` prints one). A value that is not a Fernet key is refused
  with a :class:`~connectors.exceptions.JournalKeyError`.
* **Without a key payloads are NOT encrypted** — only compressed. Anyone who can read the
  database can read the messages (including personal data).
* **Integrity** — the SHA-512 of the *plaintext* is stored; :meth:`PayloadCodec.decode` verifies it
  after decrypting and decompressing.

The stored Fernet token is kept in its binary form (the base64 text decoded), saving a quarter of
the space; the encoding column says ``zlib+fernet`` or ``zlib``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..exceptions import JournalKeyError, PayloadIntegrityError

__all__ = [
    "ENCODING_PLAIN",
    "ENCODING_SEALED",
    "EncodedPayload",
    "PayloadCodec",
    "generate_key",
    "parse_keys",
]

ENCODING_PLAIN = "zlib"
ENCODING_SEALED = "zlib+fernet"
#: zlib level used for payloads (see the module docstring).
COMPRESSION_LEVEL = 1


def generate_key() -> str:
    """A new random Fernet key (text), suitable for ``AMTSBOTE_JOURNAL_KEY``."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(key: str | bytes | Sequence[str | bytes] | None) -> list[Fernet]:
    """Fernet objects for ``key``: one key, a comma-separated string, or a sequence of keys."""
    items = _key_items(key)
    if key is None:
        return []
    fernets = []
    for position, item in enumerate(items, 1):
        try:
            fernets.append(Fernet(item))
        except (ValueError, TypeError, binascii.Error) as exc:
            # Never echo the value: it is a secret, even when malformed.
            raise JournalKeyError(
                f"journal key #{position} is not a Fernet key (32 url-safe base64-encoded bytes, "
                f"44 characters); passphrases are not accepted — create a key with "
                f"`amtsbote db genkey`"
            ) from exc
    if not fernets:
        raise JournalKeyError("journal key is empty")
    return fernets


def _key_items(key: str | bytes | Sequence[str | bytes] | None) -> list[str | bytes]:
    if key is None:
        return []
    if isinstance(key, (str, bytes)):
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        return [k.strip() for k in text.split(",") if k.strip()]
    return list(key)


def _raw(item: str | bytes) -> bytes:
    """The 32 bytes of a Fernet key already accepted by :func:`parse_keys`."""
    return base64.urlsafe_b64decode(item.encode("ascii") if isinstance(item, str) else item)


class EncodedPayload:
    """A payload as stored: ``data`` in ``encoding``, with plaintext ``sha512`` and ``size``."""

    __slots__ = ("data", "encoding", "sha512", "size")

    def __init__(self, data: bytes, encoding: str, sha512: str, size: int) -> None:
        self.data = data
        self.encoding = encoding
        self.sha512 = sha512
        self.size = size


class PayloadCodec:
    """Compresses/encrypts payloads for storage and reverses it with verification. Thread-safe."""

    def __init__(
        self,
        key: str | bytes | Sequence[str | bytes] | None = None,
        *,
        level: int = COMPRESSION_LEVEL,
    ) -> None:
        fernets = parse_keys(key)
        self._fernet: MultiFernet | None = MultiFernet(fernets) if fernets else None
        self._level = level
        # The raw 32-byte keys, first = current: the blob store derives per-blob keys from them.
        self.raw_keys: tuple[bytes, ...] = tuple(_raw(k) for k in _key_items(key))

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def encode(self, payload: bytes) -> EncodedPayload:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        plain = bytes(payload)
        digest = hashlib.sha512(plain).hexdigest()
        packed = zlib.compress(plain, self._level)
        if self._fernet is None:
            return EncodedPayload(packed, ENCODING_PLAIN, digest, len(plain))
        token = self._fernet.encrypt(packed)
        return EncodedPayload(base64.urlsafe_b64decode(token), ENCODING_SEALED, digest, len(plain))

    def decode(self, data: bytes, encoding: str, sha512: str, *, nachrichten_uuid: str) -> bytes:
        """The plaintext of a stored payload, verified against ``sha512``."""
        if encoding == ENCODING_SEALED:
            if self._fernet is None:
                raise JournalKeyError(
                    "stored encrypted, but no journal key is configured (AMTSBOTE_JOURNAL_KEY)",
                    nachrichten_uuid=nachrichten_uuid,
                )
            try:
                packed = self._fernet.decrypt(base64.urlsafe_b64encode(bytes(data)))
            except InvalidToken as exc:
                raise JournalKeyError(
                    "cannot be decrypted with the configured journal key (wrong key, key rotated "
                    "out, or the stored value was altered)",
                    nachrichten_uuid=nachrichten_uuid,
                ) from exc
        elif encoding == ENCODING_PLAIN:
            packed = bytes(data)
        else:
            raise PayloadIntegrityError(nachrichten_uuid, f"unknown payload encoding {encoding!r}")
        try:
            plain = zlib.decompress(packed)
        except zlib.error as exc:
            raise PayloadIntegrityError(nachrichten_uuid, f"does not decompress ({exc})") from exc
        actual = hashlib.sha512(plain).hexdigest()
        if actual != sha512:
            raise PayloadIntegrityError(
                nachrichten_uuid,
                f"SHA-512 is {actual[:16]}…, the journal recorded {sha512[:16]}…",
            )
        return plain
