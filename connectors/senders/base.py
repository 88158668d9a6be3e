"""What every sender shares: the message going out, the receipt coming back, the ``Sender``
protocol, the sender configuration and the rate limiter.

A receipt mirrors the inbox service's answer to ``POST /v1/messages`` (202, or 200/202 for a
repeated nachrichtenUUID)::

    {"nachrichtenUUID": "…", "received_at": "2025-01-01T10:00:00+00:00",
     "sha512": "<hex>", "state": "received"}

Senders check a receipt against what they sent: the UUID must be the message's and the SHA-512 the
payload's (hex, or base64 of the 64 digest bytes). A mismatch is a :class:`PermanentSendError`: the
recipient holds something else under this UUID.

An xdomea container (x-man zip with the primary files, :mod:`xoev.container`) travels as
``OutgoingMessage(payload=<its XML>, file=<the .zip>, content_type="application/zip")``: the
``file`` is sent instead of the payload (streamed, never read whole), ``sha512``/``size`` are the
file's (the inbox's receipt names the SHA-512 of the container body), the payload still gives the
key and is what is validated and journalled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import httpx

from ..directory import Agency

__all__ = [
    "CONTAINER_TYPE",
    "FILE_CHUNK",
    "MESSAGES_PATH",
    "OutgoingMessage",
    "RateLimiter",
    "Receipt",
    "Sender",
    "SenderConfig",
    "parse_retry_after",
]

#: Path of the inbox service's message resource below an agency's endpoint.
MESSAGES_PATH = "/v1/messages"
#: Media type of an xdomea container (x-man zip) sent as ``OutgoingMessage.file``.
CONTAINER_TYPE = "application/zip"
#: Bytes read per step when a ``file`` is hashed or sent.
FILE_CHUNK = 1 << 20

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX512 = re.compile(r"[0-9a-fA-F]{128}")
_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(;.*)?")


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One XÖV message to deliver. ``recipient`` and ``sender`` are agency ids of the directory;
    the sender's token authenticates the delivery. The payload is left out of ``repr``."""

    payload: bytes = field(repr=False)
    nachrichten_uuid: str
    recipient: str
    sender: str
    content_type: str = "application/xml"
    file: Path | None = None
    """A container on disk (``application/zip``) delivered INSTEAD of the payload; the payload
    stays the container's XML (key, validation). ``sha512``/``size`` are then the file's."""
    _file_digest: tuple[str, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.payload, bytearray | memoryview):
            object.__setattr__(self, "payload", bytes(self.payload))
        if not isinstance(self.payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(self.payload).__name__}")
        if not self.payload:
            raise ValueError(f"message {self.nachrichten_uuid}: payload is empty")
        if not isinstance(self.nachrichten_uuid, str) or not _UUID.fullmatch(self.nachrichten_uuid):
            raise ValueError(f"nachrichtenUUID {self.nachrichten_uuid!r} is not a UUID")
        for name in ("recipient", "sender"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"message {self.nachrichten_uuid}: {name} must be an agency id")
        if (
            not _TOKEN_CHARS.fullmatch(self.content_type)
            or "\r" in self.content_type
            or ("\n" in self.content_type)
        ):
            raise ValueError(
                f"message {self.nachrichten_uuid}: bad content type {self.content_type!r}"
            )
        if self.file is not None:
            if not isinstance(self.file, Path):
                object.__setattr__(self, "file", Path(self.file))
            if self.content_type.split(";", 1)[0].strip().lower() != CONTAINER_TYPE:
                raise ValueError(
                    f"message {self.nachrichten_uuid}: a file is sent as {CONTAINER_TYPE}, "
                    f"not {self.content_type!r}"
                )
            if not self.file.is_file():
                raise ValueError(f"message {self.nachrichten_uuid}: no file {self.file}")

    @property
    def sha512(self) -> str:
        """SHA-512 (hex) of what is sent: the payload, or the ``file``."""
        if self.file is None:
            return hashlib.sha512(self.payload).hexdigest()
        return self._file_info()[0]

    @property
    def size(self) -> int:
        """Bytes sent: the payload's, or the ``file``'s."""
        if self.file is None:
            return len(self.payload)
        return self._file_info()[1]

    def _file_info(self) -> tuple[str, int]:
        """SHA-512 and size of ``file``, computed once, streaming."""
        cached = self._file_digest
        if cached is None:
            assert self.file is not None
            digest = hashlib.sha512()
            size = 0
            with self.file.open("rb") as stream:
                while chunk := stream.read(FILE_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
            cached = (digest.hexdigest(), size)
            object.__setattr__(self, "_file_digest", cached)
        return cached

    def iter_file(self) -> Iterator[bytes]:
        """The ``file`` in chunks of :data:`FILE_CHUNK` bytes (for a streamed request body)."""
        assert self.file is not None
        with self.file.open("rb") as stream:
            while chunk := stream.read(FILE_CHUNK):
                yield chunk

    async def aiter_file(self) -> AsyncIterator[bytes]:
        """Like :meth:`iter_file`, each read in a worker thread (for ``httpx.AsyncClient``)."""
        assert self.file is not None
        stream = await asyncio.to_thread(self.file.open, "rb")
        try:
            while chunk := await asyncio.to_thread(stream.read, FILE_CHUNK):
                yield chunk
        finally:
            stream.close()


def _normalise_sha512(value: Any) -> str:
    """Lower-case hex of a SHA-512 given as hex or as base64 of the 64 digest bytes."""
    if not isinstance(value, str):
        raise ValueError(f"sha512 must be a string, got {type(value).__name__}")
    if _HEX512.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 64:
        return raw.hex()
    raise ValueError(f"sha512 {value[:20]!r}… is neither 128 hex digits nor base64 of 64 bytes")


@dataclass(frozen=True, slots=True)
class Receipt:
    """The recipient's acknowledgement of one message."""

    nachrichten_uuid: str
    received_at: datetime
    """When the recipient took the message (timezone-aware, UTC when the server gave none)."""
    sha512: str
    """SHA-512 of the payload as the recipient stored it, lower-case hex."""
    state: str
    """The recipient's state of the message, e.g. ``received``, ``delivered`` (mailbox)."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The receipt as received (JSON object), for the journal."""

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        """Build from the inbox's JSON object; ``ValueError`` names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"receipt must be a JSON object, got {type(data).__name__}")
        missing = [
            k for k in ("nachrichtenUUID", "received_at", "sha512", "state") if k not in data
        ]
        if missing:
            raise ValueError(f"receipt lacks {', '.join(missing)}")
        uuid_value, received, state = data["nachrichtenUUID"], data["received_at"], data["state"]
        if not isinstance(uuid_value, str) or not _UUID.fullmatch(uuid_value):
            raise ValueError(f"receipt nachrichtenUUID {uuid_value!r} is not a UUID")
        if not isinstance(state, str) or not state:
            raise ValueError(f"receipt state {state!r} is not a non-empty string")
        if not isinstance(received, str):
            raise ValueError(f"receipt received_at {received!r} is not an ISO 8601 string")
        try:
            received_at = datetime.fromisoformat(received)
        except ValueError:
            raise ValueError(f"receipt received_at {received!r} is not ISO 8601") from None
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        return cls(
            nachrichten_uuid=uuid_value,
            received_at=received_at,
            sha512=_normalise_sha512(data["sha512"]),
            state=state,
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nachrichtenUUID": self.nachrichten_uuid,
            "received_at": self.received_at.isoformat(),
            "sha512": self.sha512,
            "state": self.state,
        }

    def mismatch(self, message: OutgoingMessage) -> str | None:
        """Why this receipt does not acknowledge ``message`` (None when it does)."""
        if self.nachrichten_uuid.lower() != message.nachrichten_uuid.lower():
            return f"receipt is for nachrichtenUUID {self.nachrichten_uuid}, not this message"
        if self.sha512 != message.sha512:
            return (
                "receipt SHA-512 differs from the payload sent: the recipient holds other "
                "content under this nachrichtenUUID"
            )
        return None


@runtime_checkable
class Sender(Protocol):
    """Delivers messages to one recipient agency. ``send`` blocks; ``asend`` is for event loops
    (Prefect async tasks) and may run concurrently. Both return a :class:`Receipt` or raise a
    :class:`~connectors.senders.exceptions.SendError`."""

    @property
    def recipient(self) -> Agency: ...

    def send(self, message: OutgoingMessage) -> Receipt: ...

    async def asend(self, message: OutgoingMessage) -> Receipt: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """How senders talk to inboxes. Timeouts in seconds.

    ``client_cert``/``client_key`` (PEM) switch on mutual TLS; ``ca_bundle`` (PEM) replaces the
    system trust store for verifying the inbox. Timeouts apply to every request, also through an
    injected client; pool limits of owned clients come from the recipient's ``concurrency``.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    pool_timeout: float = 30.0
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None
    user_agent: str = "amtsbote/0.1"
    rate_limit: bool = True
    """Space requests per the recipient's ``rate_limit`` (messages per second)."""
    max_retry_after: float = 3600.0
    """Upper bound for a server's ``Retry-After`` (seconds)."""
    trust_env: bool = False
    """Let httpx read proxies and CA settings from the environment (off: loopback inboxes must
    not be routed through an ``HTTP_PROXY``)."""
    file_mode: int = 0o600
    """Permissions of dropped files (default owner-only: they hold personal data; a reader in
    another account needs a deliberate ``file_mode`` or an ACL on the drop directory)."""

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"SenderConfig.{name} must be > 0, got {value}")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("SenderConfig.client_key given without client_cert")

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Verification (``ca_bundle`` or system store) and, when configured, the client
        certificate. Raises ``OSError``/``ssl.SSLError`` for unreadable files."""
        if self.ca_bundle is not None:
            context = ssl.create_default_context(cafile=str(self.ca_bundle))
        else:
            context = ssl.create_default_context()
        if self.client_cert is not None:
            context.load_cert_chain(
                str(self.client_cert), str(self.client_key) if self.client_key else None
            )
        return context


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Spaces events to at most ``rate`` per second, allowing ``burst`` at once (GCRA).

    :meth:`reserve` books the next slot and returns how long the caller must wait before using
    it; the lock is held only while booking, so sync (``time.sleep``) and async
    (``asyncio.sleep``) callers share one limiter. ``clock`` is injectable for tests.
    """

    def __init__(
        self, rate: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate, self.burst = rate, burst
        self._interval = 1.0 / rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: float | None = None  # theoretical arrival time of the next event

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            tat = now if self._tat is None else max(self._tat, now)
            delay = max(0.0, tat - (self.burst - 1) * self._interval - now)
            self._tat = tat + self._interval
            return delay


class BlockingSender:
    """What senders whose work blocks share (the file drop, the transfer directory, XTA's
    synchronous SOAP client): context managers, ``close``/``aclose`` (nothing to release unless
    overridden), and ``asend`` = ``send`` in a worker thread."""

    def send(self, message: OutgoingMessage) -> Receipt:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def asend(self, message: OutgoingMessage) -> Receipt:
        import asyncio

        return await asyncio.to_thread(self.send, message)
