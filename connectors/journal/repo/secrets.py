"""Secrets: random keys of this installation (``journal_secrets``), created on first use and
never changed, and the keyed derivations built on them.

Kept in the journal, not in a node's data directory, so that every node of an installation
derives the same values (a retry on another node must produce the same nachrichtenUUID). Whoever
can read the journal's database can read them — the same people who can read its metadata
anyway; they keep the derived identifiers unguessable for everybody else (senders, partners,
the public).

* :meth:`SecretRepository.secret` — the raw key of a purpose (32 random bytes);
* :func:`keyed_uuid` — a UUID (version 4 layout) from HMAC-SHA256 of a key and parts: stable for
  the same inputs, unpredictable without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid

from sqlalchemy import select

from ...exceptions import JournalValueError
from ..models import metadata
from .base import JournalBase, insert_ignore, retry_on_disconnect, utcnow

__all__ = ["SecretRepository", "keyed_uuid", "secret_of"]

_T = metadata.tables["journal_secrets"]
_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")


def keyed_uuid(key: bytes, *parts: str) -> str:
    """``HMAC-SHA256(key, parts joined by NUL)`` as a UUID string (version 4, RFC 4122 variant):
    the same for the same key and parts, unguessable without the key."""
    mac = hmac.new(key, "\0".join(parts).encode("utf-8"), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=mac[:16], version=4))


def secret_of(journal: JournalBase, purpose: str) -> bytes:
    """The 32-byte key of ``purpose``: cached on ``journal``, else read, else created with random
    bytes (concurrent creators agree on the first one stored) — in a transaction of its own."""
    if not isinstance(purpose, str) or not _NAME_RE.fullmatch(purpose):
        raise JournalValueError("purpose", f"{purpose!r} is no secret name ([a-z0-9-], ≤64)")
    cache: dict[str, bytes] = journal.__dict__.setdefault("_secrets", {})
    found = cache.get(purpose)
    if found is None:
        fresh = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        with journal._tx("secret") as conn:
            conn.execute(
                insert_ignore(journal.dialect, _T, "name"),
                {"name": purpose, "value": fresh, "created_at": utcnow()},
            )
            value = conn.execute(select(_T.c.value).where(_T.c.name == purpose)).scalar_one()
        found = cache[purpose] = base64.b64decode(value)
    return found


class SecretRepository(JournalBase):
    """The installation's secrets, one per purpose."""

    @retry_on_disconnect
    def secret(self, purpose: str) -> bytes:
        """The 32-byte key of ``purpose`` (e.g. ``"message-uuid"``), created the first time any
        node asks; cached per journal object."""
        return secret_of(self, purpose)
