"""The few WebDAV requests a transfer area needs, over an injected ``httpx`` client.

``PROPFIND`` (listing, Depth 1; one resource, Depth 0), ``GET`` streamed to a file, ``PUT``
streamed from a file in :data:`CHUNK` pieces with a ``Content-Length``, ``MOVE`` with an
``Overwrite`` header, ``MKCOL`` and ``DELETE``. Every failure is a
:class:`~connectors.transfer.layout.TransferError` (``raise … from`` the httpx error): transient for
timeouts, refused or reset connections, 423 Locked, 408/425/429 and 5xx; permanent otherwise
(401/403, 409/412, TLS verification failures, …). Paths are relative to the root collection and
quoted here. Sync and async variants share the request building and the answer checks.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from lxml import etree

from .layout import TransferError

__all__ = ["CHUNK", "DavClient", "DavEntry"]

CHUNK = 1 << 20
_DAV = "{DAV:}"
_TRANSIENT = frozenset({408, 423, 425, 429})
_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop>'
    b"<resourcetype/><getcontentlength/><getlastmodified/></prop></propfind>"
)


@dataclass(frozen=True, slots=True)
class DavEntry:
    name: str
    is_dir: bool
    size: int | None
    modified: datetime | None


def classify_httpx(exc: httpx.HTTPError) -> bool:
    """True when a transport error is worth retrying; a failed certificate check is not.
    (The same rule as :func:`connectors.senders.exceptions.classify_httpx`; this package sits
    below the senders and does not import them.)"""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return False
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return isinstance(
        exc,
        httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError,
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


async def _achunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as stream:  # local disk reads are short; no thread needed per chunk
        while chunk := stream.read(CHUNK):
            yield chunk


class DavClient:
    """Requests below ``root`` (the root collection URL) with ``auth`` on every request, so an
    injected client needs no credentials of its own."""

    def __init__(
        self,
        root: str,
        *,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self._base_path = urlsplit(self.root).path.rstrip("/")
        self.client, self.async_client, self.auth = client, async_client, auth

    # -- building and checking

    def url(self, path: str, *, collection: bool = False) -> str:
        quoted = quote(path.strip("/"), safe="/")
        url = f"{self.root}/{quoted}" if quoted else self.root
        return url + "/" if collection else url

    def _error(self, reason: str, url: str, status: int | None, transient: bool) -> TransferError:
        return TransferError(reason, url=url, status_code=status, transient=transient)

    def _check(self, response: httpx.Response, ok: tuple[int, ...], what: str) -> None:
        status = response.status_code
        if status in ok:
            return
        phrase = response.reason_phrase or f"HTTP {status}"
        transient = status in _TRANSIENT or status >= 500
        raise self._error(
            f"{what}: {status} {phrase}", str(response.request.url), status, transient
        )

    def _transport(self, exc: httpx.HTTPError, url: str, what: str) -> TransferError:
        return self._error(f"{what}: {type(exc).__name__}: {exc}", url, None, classify_httpx(exc))

    def _sync(self) -> httpx.Client:
        if self.client is None:
            raise TransferError("no httpx.Client given", url=self.root)
        return self.client

    def _async(self) -> httpx.AsyncClient:
        if self.async_client is None:
            raise TransferError("no httpx.AsyncClient given", url=self.root)
        return self.async_client

    def _request(
        self, method: str, url: str, what: str, ok: tuple[int, ...], **kw: Any
    ) -> httpx.Response:
        try:
            response = self._sync().request(method, url, auth=self.auth, **kw)
        except httpx.HTTPError as exc:
            raise self._transport(exc, url, what) from exc
        self._check(response, ok, what)
        return response

    async def _arequest(
        self, method: str, url: str, what: str, ok: tuple[int, ...], **kw: Any
    ) -> httpx.Response:
        try:
            response = await self._async().request(method, url, auth=self.auth, **kw)
        except httpx.HTTPError as exc:
            raise self._transport(exc, url, what) from exc
        self._check(response, ok, what)
        return response

    def _entries(self, response: httpx.Response, collection_path: str) -> list[DavEntry]:
        try:
            tree = etree.fromstring(
                response.content,
                parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False),
            )
        except etree.XMLSyntaxError as exc:
            raise self._error(
                f"PROPFIND answer is no XML: {exc}",
                str(response.request.url),
                response.status_code,
                False,
            ) from exc
        own = unquote(urlsplit(self.url(collection_path)).path).rstrip("/")
        entries = []
        for node in tree.iter(f"{_DAV}response"):
            href = unquote(urlsplit(node.findtext(f"{_DAV}href") or "").path).rstrip("/")
            if href == own or not href:
                continue
            prop = node.find(f".//{_DAV}prop")
            is_dir = (
                prop is not None and prop.find(f"{_DAV}resourcetype/{_DAV}collection") is not None
            )
            length = prop.findtext(f"{_DAV}getcontentlength") if prop is not None else None
            modified = prop.findtext(f"{_DAV}getlastmodified") if prop is not None else None
            entries.append(
                DavEntry(
                    href.rsplit("/", 1)[-1],
                    is_dir,
                    int(length) if length and length.isdigit() else None,
                    _http_date(modified),
                )
            )
        return entries

    # -- sync

    def list(self, folder: str) -> list[DavEntry] | None:
        """Entries of ``folder`` (None when it does not exist)."""
        url = self.url(folder, collection=True)
        response = self._request(
            "PROPFIND",
            url,
            "PROPFIND",
            (207, 404),
            headers={"Depth": "1", "Content-Type": "application/xml"},
            content=_PROPFIND_BODY,
        )
        return None if response.status_code == 404 else self._entries(response, folder)

    def stat(self, path: str) -> DavEntry | None:
        url = self.url(path)
        response = self._request(
            "PROPFIND",
            url,
            "PROPFIND",
            (207, 404),
            headers={"Depth": "0", "Content-Type": "application/xml"},
            content=_PROPFIND_BODY,
        )
        if response.status_code == 404:
            return None
        name = path.rsplit("/", 1)[-1]
        found = self._entries_with_self(response)
        return DavEntry(name, found.is_dir, found.size, found.modified) if found else None

    def _entries_with_self(self, response: httpx.Response) -> DavEntry | None:
        tree = etree.fromstring(
            response.content, parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
        prop = tree.find(f".//{_DAV}response//{_DAV}prop")
        if prop is None:
            return None
        length = prop.findtext(f"{_DAV}getcontentlength")
        return DavEntry(
            "",
            prop.find(f"{_DAV}resourcetype/{_DAV}collection") is not None,
            int(length) if length and length.isdigit() else None,
            _http_date(prop.findtext(f"{_DAV}getlastmodified")),
        )

    def download(self, path: str, target: Path) -> tuple[int, str] | None:
        """Stream ``path`` into ``target``; size and SHA-512, or None when it does not exist."""
        url = self.url(path)
        try:
            with self._sync().stream("GET", url, auth=self.auth) as response:
                if response.status_code == 404:
                    return None
                self._check(response, (200,), "GET")
                digest, size = hashlib.sha512(), 0
                with open(target, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                return size, digest.hexdigest()
        except httpx.HTTPError as exc:
            raise self._transport(exc, url, "GET") from exc

    def sha512(self, path: str) -> str | None:
        """SHA-512 of the remote file (streamed, nothing kept), None when it does not exist."""
        url = self.url(path)
        try:
            with self._sync().stream("GET", url, auth=self.auth) as response:
                if response.status_code == 404:
                    return None
                self._check(response, (200,), "GET")
                digest = hashlib.sha512()
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                return digest.hexdigest()
        except httpx.HTTPError as exc:
            raise self._transport(exc, url, "GET") from exc

    def upload(self, path: str, source: Path) -> None:
        size = os.stat(source).st_size
        self._request(
            "PUT",
            self.url(path),
            "PUT",
            (200, 201, 204),
            content=_chunks(source),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )

    def move(self, source: str, target: str, *, overwrite: bool) -> bool:
        """MOVE; False when ``overwrite`` is off and the target exists (412)."""
        response = self._request(
            "MOVE",
            self.url(source),
            "MOVE",
            (201, 204, 412),
            headers={"Destination": self.url(target), "Overwrite": "T" if overwrite else "F"},
        )
        return response.status_code != 412

    def mkcol(self, folder: str) -> None:
        """Create ``folder`` (and its parents); an existing one is fine."""
        parts = [p for p in folder.strip("/").split("/") if p]
        for i in range(1, len(parts) + 1):
            self._request(
                "MKCOL", self.url("/".join(parts[:i]), collection=True), "MKCOL", (201, 405)
            )  # 405: exists already

    def delete(self, path: str) -> None:
        self._request("DELETE", self.url(path), "DELETE", (200, 204, 404))

    # -- async (what a sender needs)

    async def asha512(self, path: str) -> str | None:
        url = self.url(path)
        try:
            async with self._async().stream("GET", url, auth=self.auth) as response:
                if response.status_code == 404:
                    return None
                self._check(response, (200,), "GET")
                digest = hashlib.sha512()
                async for chunk in response.aiter_bytes(CHUNK):
                    digest.update(chunk)
                return digest.hexdigest()
        except httpx.HTTPError as exc:
            raise self._transport(exc, url, "GET") from exc

    async def astat(self, path: str) -> DavEntry | None:
        response = await self._arequest(
            "PROPFIND",
            self.url(path),
            "PROPFIND",
            (207, 404),
            headers={"Depth": "0", "Content-Type": "application/xml"},
            content=_PROPFIND_BODY,
        )
        if response.status_code == 404:
            return None
        found = self._entries_with_self(response)
        return (
            DavEntry(path.rsplit("/", 1)[-1], found.is_dir, found.size, found.modified)
            if found
            else None
        )

    async def aupload(self, path: str, source: Path) -> None:
        size = os.stat(source).st_size
        await self._arequest(
            "PUT",
            self.url(path),
            "PUT",
            (200, 201, 204),
            content=_achunks(source),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )

    async def amove(self, source: str, target: str, *, overwrite: bool) -> bool:
        response = await self._arequest(
            "MOVE",
            self.url(source),
            "MOVE",
            (201, 204, 412),
            headers={"Destination": self.url(target), "Overwrite": "T" if overwrite else "F"},
        )
        return response.status_code != 412

    async def amkcol(self, folder: str) -> None:
        parts = [p for p in folder.strip("/").split("/") if p]
        for i in range(1, len(parts) + 1):
            await self._arequest(
                "MKCOL", self.url("/".join(parts[:i]), collection=True), "MKCOL", (201, 405)
            )

    async def adelete(self, path: str) -> None:
        await self._arequest("DELETE", self.url(path), "DELETE", (200, 204, 404))


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
