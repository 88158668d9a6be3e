"""Receiving over XTA 2: the home inbox polls its own msgBox on each partner's XTA server.

An agency with ``channel: xta`` answers through its XTA server (a Governikus MultiMessenger, say):
its reply waits in *our* msgBox there. :func:`xta_pollers` makes one :class:`XtaMsgBoxPoller`
per distinct ``xta_url`` of the directory; :meth:`XtaMsgBoxPoller.poll_once` does
``getStatusList`` → ``getMessage`` → hand the message to :meth:`InboxService.accept` (XML) or
:meth:`InboxService.accept_container` (an xdomea container) → ``close``, so a message fetched by
XTA passes the same checks, deduplication, journal and correlation hook as ``POST /v1/messages``.

Identity: the XTA server vouches for the Author; the sender is the directory agency *on that
server* whose Behördenkennung is the MessageMetaData Author (else the Nachrichtenkopf's autor),
and the inbox then checks the Kopf against it like any sender. ``close`` comes only after the
message is stored (at least once: a crash in between fetches it again; the journal deduplicates
by nachrichtenUUID).

A message the inbox refuses for good (4xx: wrong author, schema violation, unknown sender) is
written to ``rejected_dir`` as ``<uuid>.xml``/``.zip`` beside ``<uuid>.reason.txt`` and then
closed (without ``rejected_dir`` it is left in the msgBox and counted as failed each round).
Anything else (the journal down, the server unreachable) leaves it waiting for the next poll.
``amtsbote serve`` and ``amtsbote inbox serve`` run these pollers for the home agency.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from xoev.exceptions import UnusableInputError
from xoev.message import inspect_message

from ..directory import Agency, Channel, Directory, DirectoryError, MissingTokenError
from ..senders.xta import xta_http_client
from ..transfer import PollResult
from ..xta.client import FetchedMessage, XtaClient
from ..xta.exceptions import XtaError
from .exceptions import ApiError, InboxError

__all__ = ["XtaMsgBoxPoller", "xta_pollers"]

log = logging.getLogger("amtsbote.inbox.xta")

_ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})


class _Refused(InboxError):
    """A fetched message the inbox will never take (reason for the ``.reason.txt``)."""


class _Kept(InboxError):
    """A refused message: kept aside and closed (``rejected``) or left waiting."""

    def __init__(self, reason: str, *, rejected: bool) -> None:
        super().__init__(reason)
        self.rejected = rejected


def _file_name(message: FetchedMessage) -> str:
    stem = message.nachrichten_uuid or message.message_id.rsplit(":", 1)[-1]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "message"
    media = message.content_type.split(";", 1)[0].strip().lower()
    return f"{stem}.zip" if media in _ZIP_TYPES else f"{stem}.xml"


@dataclass
class XtaMsgBoxPoller:
    """Our msgBox on the XTA server at ``url``; ``agencies``: the directory agencies reached
    through that server (the possible senders)."""

    service: Any
    url: str
    agencies: tuple[Agency, ...]
    client: XtaClient
    rejected_dir: Path | None = None
    max_items: int = 100
    closed: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"XtaMsgBoxPoller({self.url} as {self.client.author})"

    def _sender(self, message: FetchedMessage) -> Agency:
        kennung = message.metadata.author if message.metadata is not None else None
        if not kennung:
            try:
                kennung = inspect_message(message.payload).author
            except UnusableInputError as exc:
                raise _Refused(f"no MessageMetaData Author and no usable message: {exc}") from exc
        for agency in self.agencies:
            if agency.behoerdenkennung.casefold() == (kennung or "").casefold():
                return agency
        known = ", ".join(f"{a.id} ({a.behoerdenkennung})" for a in self.agencies)
        raise _Refused(
            f"Author {kennung!r} is no agency this installation reaches through {self.url} "
            f"(known there: {known})"
        )

    def _accept(self, message: FetchedMessage) -> None:
        sender = self._sender(message)
        name = _file_name(message)
        try:
            if name.endswith(".zip"):
                if message.path is not None:  # spooled while fetching: never read into memory
                    self.service.accept_container(message.path, sender)
                    return
                with tempfile.TemporaryDirectory(prefix="amtsbote-xta-") as tmp:
                    path = Path(tmp) / name
                    path.write_bytes(message.payload)
                    self.service.accept_container(path, sender)
            else:
                self.service.accept(message.payload, sender)
        except ApiError as exc:
            if 400 <= exc.status < 500 and exc.status not in (408, 425, 429):
                raise _Refused(f"{exc.status} {exc.code}: {exc.detail}") from exc
            raise

    def _reject(self, message: FetchedMessage, reason: str) -> bool:
        """Keep the refused message beside its reason; True when it may be closed."""
        log.warning("XTA %s: message %s refused: %s", self.url, message.message_id, reason)
        if self.rejected_dir is None:
            return False
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        name = _file_name(message)
        target = self.rejected_dir / name
        note = f"{message.message_id}\n{reason}\n".encode()
        for source, path in (
            (message.path if message.path is not None else message.payload, target),
            (note, target.with_suffix(".reason.txt")),
        ):
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as fh:
                if isinstance(source, Path):
                    with open(source, "rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)
                else:
                    fh.write(source)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        return True

    def poll_once(self) -> PollResult:
        """One round over what waits in our msgBox; a list that cannot be fetched raises."""
        accepted = rejected = failed = 0
        errors: list[str] = []
        for message_id in self.client.get_status_list(max_items=self.max_items):
            try:
                with tempfile.TemporaryDirectory(prefix="amtsbote-xta-") as spool:
                    self._take(message_id, Path(spool))
                accepted += 1
            except _Kept as kept:
                if kept.rejected:
                    rejected += 1
                else:
                    failed += 1
                    errors.append(f"{message_id}: {kept}")
            except (ApiError, XtaError, httpx.HTTPError, OSError) as exc:
                failed += 1
                errors.append(f"{message_id}: {type(exc).__name__}: {exc}")
                log.warning("XTA %s: message %s left waiting: %s", self.url, message_id, exc)
        return PollResult(accepted=accepted, rejected=rejected, failed=failed, errors=tuple(errors))

    def _take(self, message_id: str, spool: Path) -> None:
        """Fetch, store and close one message (a large container is spooled to ``spool``)."""
        message = self.client.get_message(message_id, spool=spool)
        try:
            self._accept(message)
        except _Refused as exc:
            if not self._reject(message, str(exc)):
                raise _Kept(str(exc), rejected=False) from exc
            self.client.close(message_id)
            self.closed.append(message_id)
            raise _Kept(str(exc), rejected=True) from exc
        self.client.close(message_id)
        self.closed.append(message_id)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.client.close()


def _token(directory: Directory, home: Agency, presents_certificate: bool) -> str | None:
    try:
        return directory.token_for(home.id)
    except MissingTokenError:
        if presents_certificate:
            return None
        raise


def xta_pollers(
    service: Any,
    directory: Directory,
    *,
    home: Agency | None = None,
    rejected_dir: Path | None = None,
    client: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[XtaMsgBoxPoller]:
    """One poller per XTA server of ``directory`` feeding ``service`` (the home
    :class:`InboxService`; ``home`` default: its agency). Our identity there: ``home``'s
    Behördenkennung as Author, its bearer token unless a client certificate is configured
    (``tls_client_cert`` of the first agency on that server). ``client``: one httpx client for
    all (tests); default one per server with that agency's TLS settings."""
    del environ  # tokens come from the directory (which knows its environment)
    home = home or service.agency
    assert home is not None
    by_url: dict[str, list[Agency]] = {}
    for agency in directory:
        if agency.channel is Channel.XTA and agency.xta_url and agency.id != home.id:
            by_url.setdefault(agency.xta_url, []).append(agency)
    pollers = []
    for url, agencies in by_url.items():
        first = agencies[0]
        http = client if client is not None else xta_http_client(first)
        try:
            token = _token(directory, home, first.tls_client_cert is not None)
        except DirectoryError:
            if client is None:
                http.close()
            raise
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        pollers.append(
            XtaMsgBoxPoller(
                service,
                url,
                tuple(agencies),
                XtaClient(url, author=home.behoerdenkennung, client=http, http_headers=headers),
                rejected_dir=rejected_dir,
            )
        )
    return pollers


def describe(pollers: Iterable[XtaMsgBoxPoller]) -> str:
    return ", ".join(f"{p.url} ({', '.join(a.id for a in p.agencies)})" for p in pollers)
