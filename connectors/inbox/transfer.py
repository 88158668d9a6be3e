"""Receiving from partners on a transfer area: what an archive writes into its transfer directory
or WebDAV share goes into the home inbox by the same checks as ``POST /v1/messages``.

:func:`transfer_pollers` makes one poller per agency of the directory with channel
``transfer-dir`` or ``webdav``; each accepted file is handed to
:meth:`InboxService.accept_file` with that agency as the sender (the transfer area is the
partner's identity, as a token is on HTTP). A refusal (4xx: hostile container, bad XML, wrong
Absender) moves the file to ``.rejected/`` with the reason; anything else leaves it for the next
poll. ``amtsbote inbox serve`` and ``amtsbote serve`` run them for the home agency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..directory import Agency, Channel, Directory
from ..senders.webdav import webdav_auth
from ..transfer import PollResult, TransferDirPoller, WebDavPoller
from .exceptions import ApiError, InboxError

__all__ = ["PollerThread", "transfer_pollers"]


class _Refusal(InboxError):
    """An inbox refusal as the poller reads it (``status_code`` 4xx → rejected)."""

    def __init__(self, exc: ApiError) -> None:
        self.status_code = exc.status
        super().__init__(f"{exc.code}: {exc.detail}")


def _accept(service: Any, agency: Agency) -> Callable[..., None]:
    def accept(path: Path, *, source: str) -> None:
        try:
            service.accept_file(path, agency, source=source)
        except ApiError as exc:
            raise _Refusal(exc) from exc

    return accept


def transfer_pollers(
    service: Any,
    directory: Directory,
    *,
    environ: Mapping[str, str] | None = None,
    min_age: float = 2.0,
    work_dir: Path | None = None,
    client: httpx.Client | None = None,
) -> list[Any]:
    """A poller per transfer-dir/WebDAV agency of ``directory`` feeding ``service`` (an
    :class:`InboxService`). ``client``: the httpx client for WebDAV (default: one per agency,
    TLS verified with the agency's ``webdav_ca`` when set)."""
    pollers: list[Any] = []
    for agency in directory:
        if agency.channel is Channel.TRANSFER_DIR and agency.transfer_dir is not None:
            pollers.append(
                TransferDirPoller(agency.transfer_dir, _accept(service, agency), min_age=min_age)
            )
        elif agency.channel is Channel.WEBDAV and agency.webdav_url is not None:
            http = client or httpx.Client(
                verify=str(agency.webdav_ca) if agency.webdav_ca else True,
                timeout=30.0,
                trust_env=False,
            )
            pollers.append(
                WebDavPoller(
                    agency.webdav_url,
                    _accept(service, agency),
                    client=http,
                    auth=webdav_auth(agency, environ),
                    work_dir=work_dir,
                    min_age=min_age,
                )
            )
    return pollers


class PollerThread(threading.Thread):
    """Polls every ``interval`` seconds until :meth:`stop`; the last results are kept."""

    def __init__(
        self, pollers: Iterable[Any], *, interval: float = 5.0, name: str = "transfer-pollers"
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.pollers, self.interval = list(pollers), interval
        self.stopped = threading.Event()
        self.last: dict[str, PollResult | str] = {}

    def poll_once(self) -> None:
        for p in self.pollers:
            try:
                self.last[repr(p)] = p.poll_once()
            except Exception as exc:  # an unreachable share: try again next round
                self.last[repr(p)] = f"{type(exc).__name__}: {exc}"

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll_once()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)
