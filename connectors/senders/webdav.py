"""Delivery into an x-man transfer area on a WebDAV share (channel ``webdav``).

The same files as :mod:`connectors.senders.transfer` (container, built container or
``<uuid>.xml``), written into the root collection (``webdav_url``): ``PUT`` streamed in 1 MiB
chunks to ``.<name>.<random>.part``, then ``MOVE`` to the name with ``Overwrite: F`` — so a
partner listing the share never sees half a file and two writers cannot replace each other.

Idempotent: when the name exists already its bytes are hashed (streamed) — the same SHA-512 gives
the same receipt (``received_at`` = the server's ``getlastmodified``), another one a
:class:`PermanentSendError`. Receipt state ``delivered``, ``sha512`` of the bytes written.

Basic auth: the user name and password come from the environment variables named by the agency's
``webdav_user_env``/``webdav_password_env`` (read when the sender is built; missing →
:class:`SenderConfigError`) and go with every request, also through an injected client. An owned
client verifies TLS against ``webdav_ca`` when set (else the system store; ``SenderConfig``'s
``ca_bundle``/client certificate also apply). Errors: timeouts, refused/reset connections, 423,
408/425/429, 5xx → :class:`TransientSendError`; 401/403, 409/412 and other 4xx, TLS verification
failures → :class:`PermanentSendError`; each names the status and the URL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import httpx

from ..directory import Agency, Directory
from ..transfer.dav import DavClient
from ..transfer.layout import TransferError, TransferLayout
from .base import OutgoingMessage, Receipt, SenderConfig
from .exceptions import PermanentSendError, SenderConfigError, SendError, TransientSendError
from .transfer import check_addressing, file_sha512, make_receipt, prepare

__all__ = ["WebDavSender", "webdav_auth"]


def webdav_auth(agency: Agency, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(user, password)`` from the agency's variables; SenderConfigError naming a missing one."""
    env = os.environ if environ is None else environ
    values = []
    for setting in ("webdav_user_env", "webdav_password_env"):
        name = getattr(agency, setting)
        if not name:
            raise SenderConfigError(agency.id, setting, "not set in the directory")
        value = env.get(name, "")
        if not value:
            raise SenderConfigError(
                agency.id, setting, f"environment variable {name} is unset or empty"
            )
        values.append(value)
    return values[0], values[1]


class WebDavSender:
    """Writes messages for ``recipient`` into its WebDAV transfer area."""

    def __init__(
        self,
        recipient: Agency,
        directory: Directory | None = None,
        *,
        url: str | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        config: SenderConfig | None = None,
        layout: TransferLayout | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        root = url or recipient.webdav_url
        if not root:
            raise SenderConfigError(recipient.id, "webdav_url", "no WebDAV URL")
        self._recipient, self._directory = recipient, directory
        self.config = config or SenderConfig()
        self.layout = layout or TransferLayout()
        auth = webdav_auth(recipient, environ)
        self._owned: list[httpx.Client | httpx.AsyncClient] = []
        verify: ssl.SSLContext | bool = True
        if (client is None or async_client is None) and root.startswith("https:"):
            try:
                verify = self._ssl_context(recipient)
            except (OSError, ssl.SSLError) as exc:
                raise SenderConfigError(recipient.id, "webdav_ca", str(exc)) from exc
        if client is None:
            client = httpx.Client(
                verify=verify,
                timeout=self.config.timeout(),
                trust_env=self.config.trust_env,
                headers={"User-Agent": self.config.user_agent},
            )
            self._owned.append(client)
        if async_client is None:
            async_client = httpx.AsyncClient(
                verify=verify,
                timeout=self.config.timeout(),
                trust_env=self.config.trust_env,
                headers={"User-Agent": self.config.user_agent},
            )
            self._owned.append(async_client)
        self.dav = DavClient(root, client=client, async_client=async_client, auth=auth)
        self.folder = self.layout.send_folder.strip("/")

    def _ssl_context(self, recipient: Agency) -> ssl.SSLContext:
        if recipient.webdav_ca is not None:
            context = ssl.create_default_context(cafile=str(recipient.webdav_ca))
            if self.config.client_cert is not None:
                context.load_cert_chain(
                    str(self.config.client_cert),
                    str(self.config.client_key) if self.config.client_key else None,
                )
            return context
        return self.config.ssl_context()

    @property
    def recipient(self) -> Agency:
        return self._recipient

    @property
    def url(self) -> str:
        return self.dav.url(self.folder)

    def __repr__(self) -> str:
        return f"WebDavSender({self._recipient.id} into {self.url})"

    def close(self) -> None:
        for c in self._owned:
            if isinstance(c, httpx.Client):
                c.close()

    async def aclose(self) -> None:
        self.close()
        for c in self._owned:
            if isinstance(c, httpx.AsyncClient):
                await c.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    # -- sync

    def send(self, message: OutgoingMessage) -> Receipt:
        check_addressing(self, message, url=self.url)
        try:
            with prepare(message) as (name, source):
                sha512 = file_sha512(source)
                path = self._path(name)
                existing = self._existing(message, path, sha512)
                if existing is not None:
                    return existing
                if self.folder:
                    self.dav.mkcol(self.folder)
                part = self._path(f".{name}.{secrets.token_hex(6)}.part")
                try:
                    self.dav.upload(part, source)
                    moved = self.dav.move(part, path, overwrite=False)
                finally:
                    self._cleanup(part)
                if not moved:
                    existing = self._existing(message, path, sha512)
                    if existing is not None:
                        return existing
                return self._receipt(message, path, sha512, self.dav.stat(path))
        except SendError:
            raise
        except TransferError as exc:
            raise self._translate(message, exc) from exc
        except OSError as exc:
            raise self._error(
                TransientSendError, message, f"local file: {exc.strerror or exc}"
            ) from exc

    def _existing(self, message: OutgoingMessage, path: str, sha512: str) -> Receipt | None:
        there = self.dav.sha512(path)
        if there is None:
            return None
        self._compare(message, path, there, sha512)
        return self._receipt(message, path, sha512, self.dav.stat(path))

    def _cleanup(self, part: str) -> None:
        with contextlib.suppress(TransferError):  # a left-over hidden .part is never read
            self.dav.delete(part)

    # -- async

    async def asend(self, message: OutgoingMessage) -> Receipt:
        check_addressing(self, message, url=self.url)
        try:
            with prepare(message) as (name, source):
                sha512 = file_sha512(source)
                path = self._path(name)
                existing = await self._aexisting(message, path, sha512)
                if existing is not None:
                    return existing
                if self.folder:
                    await self.dav.amkcol(self.folder)
                part = self._path(f".{name}.{secrets.token_hex(6)}.part")
                try:
                    await self.dav.aupload(part, source)
                    moved = await self.dav.amove(part, path, overwrite=False)
                finally:
                    with contextlib.suppress(TransferError):
                        await self.dav.adelete(part)
                if not moved:
                    existing = await self._aexisting(message, path, sha512)
                    if existing is not None:
                        return existing
                return self._receipt(message, path, sha512, await self.dav.astat(path))
        except SendError:
            raise
        except TransferError as exc:
            raise self._translate(message, exc) from exc
        except OSError as exc:
            raise self._error(
                TransientSendError, message, f"local file: {exc.strerror or exc}"
            ) from exc

    async def _aexisting(self, message: OutgoingMessage, path: str, sha512: str) -> Receipt | None:
        there = await self.dav.asha512(path)
        if there is None:
            return None
        self._compare(message, path, there, sha512)
        return self._receipt(message, path, sha512, await self.dav.astat(path))

    # -- shared

    def _compare(self, message: OutgoingMessage, path: str, there: str, sha512: str) -> None:
        if there != sha512:
            raise self._error(
                PermanentSendError,
                message,
                f"{Path(path).name} already exists with other content (SHA-512 {there[:16]}…, "
                f"this message {sha512[:16]}…)",
                status_code=None,
            )

    def _receipt(self, message: OutgoingMessage, path: str, sha512: str, entry: object) -> Receipt:
        modified = getattr(entry, "modified", None)
        received_at = modified if isinstance(modified, datetime) else datetime.now(UTC)
        return make_receipt(
            message, sha512, received_at, url=self.dav.url(path), name=Path(path).name
        )

    def _translate(self, message: OutgoingMessage, exc: TransferError) -> SendError:
        cls = TransientSendError if exc.transient else PermanentSendError
        return cls(
            exc.reason,
            recipient=self._recipient.id,
            nachrichten_uuid=message.nachrichten_uuid,
            url=exc.url or self.url,
            status_code=exc.status_code,
        )

    def _error(
        self,
        cls: type[SendError],
        message: OutgoingMessage,
        reason: str,
        status_code: int | None = None,
    ) -> SendError:
        return cls(
            reason,
            recipient=self._recipient.id,
            nachrichten_uuid=message.nachrichten_uuid,
            url=self.url,
            status_code=status_code,
        )
