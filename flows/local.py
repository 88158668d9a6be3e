"""A single-machine installation: Prefect server, the inboxes of the local agencies, partner stubs.

Used by ``amtsbote serve``, ``amtsbote demo`` and the end-to-end tests:

* :class:`PrefectServer` — ``prefect server start`` in a subprocess on loopback (SQLite under
  ``PREFECT_HOME`` by default, PostgreSQL with ``database_url``), stopped with the installation;
* :class:`LocalInstallation` — one inbox service per http agency of the directory (the home
  agency's inbox writes to the main journal and correlates replies; the others each to their own
  journal, see :func:`connectors.inbox.config.journal_url_for`) and, with ``simulate_partners``,
  the partner agencies' behaviour: the Ausländerbehörde answers consultations with a Rückmeldung,
  mailbox agencies fetch and acknowledge what waits for them, an agency on XTA 2 gets a simulated
  XTA server and Fachverfahren (:mod:`flows.simulated_xta`). The home inbox polls its msgBox on
  every XTA server of the directory (:mod:`connectors.inbox.xta_poll`) and each transfer area.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.config import Settings
from connectors.directory import Agency, Channel, Directory
from connectors.inbox import create_app
from connectors.inbox.config import journal_url_for
from connectors.inbox.server import InboxServer
from connectors.journal import Direction, Journal
from connectors.journal.keyfile import journal_key_for
from connectors.senders import OutgoingMessage, sender_for
from xoev.code import Code
from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
from xoev.rueckmeldung import v1_0 as rueckmeldung

from .correlation import NotificationHandler, make_inbox_hook

__all__ = ["LocalInstallation", "PrefectServer", "behoerde"]

log = logging.getLogger("amtsbote.local")


def behoerde(agency: Agency) -> Behoerde:
    return Behoerde(
        behoerdenkennung=Behoerdenkennung.from_string(agency.behoerdenkennung),
        behoerdenname=agency.name,
    )


# --------------------------------------------------------------------------- Prefect server


@dataclass
class PrefectServer:
    """``prefect server start`` on ``127.0.0.1:port`` in a subprocess."""

    home: Path
    port: int = 4200
    database_url: str | None = None
    log_file: Path | None = None
    start_timeout: float = 180.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return (
                httpx.get(f"{self.api_url}/health", timeout=2.0, trust_env=False).status_code == 200
            )
        except httpx.HTTPError:
            return False

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_UI_API_URL": self.api_url,
            }
        )
        env.pop("PREFECT_API_URL", None)
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        log_path = self.log_file or self.home / "server.log"
        out = open(log_path, "ab")  # noqa: SIM115 - owned by the subprocess
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Prefect server exited with {self._proc.returncode}; see {log_path}"
                )
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Prefect server not healthy after {self.start_timeout:.0f} s; see {log_path}"
        )

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


# --------------------------------------------------------------------------- partner stubs


class _Poller(threading.Thread):
    def __init__(self, interval: float, fn: Callable[[], object], name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.interval, self.fn = interval, fn
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.fn()
            except Exception as exc:  # a partner stub must not die of a transient error
                log.debug("%s: %s", self.name, exc)


def _mailbox_fetcher(directory: Directory, agency: Agency) -> Callable[[], None]:
    """The mailbox agency's own system: list, fetch, acknowledge (XTA-2 style)."""
    base = str(directory.delivery_endpoint(agency.id)).rstrip("/")

    def fetch_all() -> None:
        headers = {"Authorization": f"Bearer {directory.token_for(agency.id)}"}
        with httpx.Client(base_url=base, headers=headers, timeout=5.0, trust_env=False) as c:
            listing = c.get("/v1/mailbox")
            if listing.status_code != 200:
                return
            for entry in listing.json().get("messages", []):
                uuid = entry["nachrichtenUUID"]
                if c.get(f"/v1/mailbox/{uuid}").status_code == 200:
                    c.post(f"/v1/mailbox/{uuid}/ack")

    return fetch_all


def _auto_reply_hook(
    directory: Directory,
    responder: Agency,
    home: Agency,
    *,
    ergebnis: str = "01",
    delay: float = 0.5,
) -> Callable[..., None]:
    """The Ausländerbehörde's clerk, simulated: answers every abh.gewerbemeldung.0500 it receives
    with a Rückmeldung (``01`` keine Bedenken) to the home agency's inbox."""

    def answer(bezug: str) -> None:
        time.sleep(delay)
        kopf = Nachrichtenkopf.neu(
            nachrichtentyp=rueckmeldung.MESSAGE_TYPE,
            leser=behoerde(home),
            autor=behoerde(responder),
        )
        msg = rueckmeldung.Rueckmeldung(
            nachrichtenkopf=kopf,
            bezug=bezug,
            ergebnis=Code(ergebnis, list_uri=rueckmeldung.ERGEBNIS_LIST_URI, list_version_id="1.0"),
        )
        payload = rueckmeldung.build(msg)
        sender = sender_for(home.id, directory)
        try:
            for attempt in range(10):
                try:
                    sender.send(
                        OutgoingMessage(
                            payload=payload,
                            nachrichten_uuid=kopf.nachrichten_uuid,
                            recipient=home.id,
                            sender=responder.id,
                        )
                    )
                    return
                except Exception as exc:
                    log.debug("auto reply attempt %d failed: %s", attempt, exc)
                    time.sleep(1.0)
        finally:
            sender.close()

    def on_accepted(record: Any, info: Any, created: bool) -> None:
        if created and record.message_type == "abh.gewerbemeldung.0500":
            threading.Thread(
                target=answer, args=(record.nachrichten_uuid,), daemon=True, name="auto-reply"
            ).start()

    return on_accepted


# --------------------------------------------------------------------------- installation


@dataclass
class LocalInstallation:
    """Inboxes (and partner stubs) of every local agency; see the module docstring."""

    directory: Directory
    home: str
    home_journal: Journal
    failing: frozenset[str] = frozenset()
    simulate_partners: bool = True
    auto_reply: bool = True
    """With ``simulate_partners``: the Ausländerbehörde answers consultations by itself."""
    on_notification: NotificationHandler | None = None
    mailbox_interval: float = 0.5
    environ: dict[str, str] | None = None
    transfer_roots: dict[str, Path] = field(default_factory=dict)
    """Simulated archives behind a WebDAV share: agency id → the folder the share serves (a
    transfer-dir agency's folder is its ``transfer_dir``)."""
    rejected_dir: Path | None = None
    """Where replies fetched over XTA that the home inbox refuses are kept (None: they stay in
    the msgBox and are reported each round)."""
    servers: dict[str, InboxServer] = field(default_factory=dict)
    journals: dict[str, Journal] = field(default_factory=dict)
    _pollers: list[_Poller] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def journal_of(self, agency_id: str) -> Journal:
        if agency_id == self.home:
            return self.home_journal
        if agency_id not in self.journals:
            url = journal_url_for(agency_id, environ=self.environ)
            key = journal_key_for(Settings.from_env(self.environ))
            self.journals[agency_id] = Journal(url, key=key, create=True)
        return self.journals[agency_id]

    def start(self) -> LocalInstallation:
        home = self.directory.get(self.home)
        for agency in self.directory:
            if agency.channel is not Channel.HTTP or agency.id in self.failing:
                continue
            hook: Callable[..., None] | None = None
            if agency.id == self.home:
                hook = make_inbox_hook(
                    self.home_journal,
                    home_agency_kennung=home.behoerdenkennung,
                    directory=self.directory,
                    on_notification=self.on_notification,
                )
            elif self.simulate_partners and self.auto_reply and agency.has_role("Ausländerbehörde"):
                hook = _auto_reply_hook(self.directory, agency, home)
            elif self.simulate_partners and agency.has_role("Archiv"):
                from .families.aussonderung.archive_stub import archive_stub_hook

                hook = archive_stub_hook(self.directory, agency, home, self.journal_of(agency.id))
            app = create_app(
                agency.id,
                journal=self.journal_of(agency.id),
                directory=self.directory,
                on_accepted=hook,
            )
            port = int(str(agency.endpoint).rsplit(":", 1)[1].split("/")[0])
            self.servers[agency.id] = InboxServer(app, port=port).start()
        if self.simulate_partners:
            for agency in self.directory:
                if agency.channel is Channel.MAILBOX and agency.mailbox_host not in self.failing:
                    poller = _Poller(
                        self.mailbox_interval,
                        _mailbox_fetcher(self.directory, agency),
                        name=f"mailbox-{agency.id}",
                    )
                    poller.start()
                    self._pollers.append(poller)
        for agency in self.directory:
            if agency.channel is Channel.XTA and agency.id not in self.failing:
                self._start_xta_partner(agency, home)
        self._start_transfer(home)
        self._start_xta_polling(home)
        return self

    def _start_xta_partner(self, agency: Agency, home: Agency) -> None:
        """For an XTA agency on loopback: its XTA server (an amtsbote inbox, like the local
        agencies' inboxes) and, with ``simulate_partners``, its SIMULATED Fachverfahren."""
        from .simulated_xta import is_local, start_xta_server, xta_fachverfahren

        if not is_local(agency) or agency.id in self.servers:
            return
        self.servers[agency.id] = start_xta_server(
            self.directory, agency, home, self.journal_of(agency.id)
        )
        if not self.simulate_partners:
            return
        answer = self.auto_reply and agency.has_role("Ausländerbehörde")
        poller = _Poller(
            self.mailbox_interval,
            xta_fachverfahren(self.directory, agency, home, answer=answer),
            name=f"simulated-xta-{agency.id}",
        )
        poller.start()
        self._pollers.append(poller)

    def _start_xta_polling(self, home: Agency) -> None:
        """The home inbox fetches its msgBox on each XTA server (replies → correlation)."""
        from connectors.inbox.xta_poll import xta_pollers

        server = self.servers.get(self.home)
        if server is None:
            return
        for poller in xta_pollers(
            server.app.state.inbox, self.directory, home=home, rejected_dir=self.rejected_dir
        ):
            thread = _Poller(self.mailbox_interval, poller.poll_once, name=f"xta-{poller.url}")
            thread.start()
            self._pollers.append(thread)
            self._closers.append(poller.close)

    def _start_transfer(self, home: Agency) -> None:
        """Partners on a transfer area: the home inbox polls each one; a simulated archive
        answers on its own area."""
        from connectors.inbox.transfer import transfer_pollers

        server = self.servers.get(self.home)
        if server is None:
            return
        service = server.app.state.inbox
        for i, poller in enumerate(
            transfer_pollers(service, self.directory, environ=self.environ, min_age=0.0)
        ):
            thread = _Poller(self.mailbox_interval, poller.poll_once, name=f"transfer-{i}")
            thread.start()
            self._pollers.append(thread)
        if not self.simulate_partners:
            return
        from .families.aussonderung.archive_stub import transfer_stub

        for agency in self.directory:
            root = self.transfer_roots.get(agency.id) or (
                agency.transfer_dir if agency.channel is Channel.TRANSFER_DIR else None
            )
            if root is None or not agency.has_role("Archiv"):
                continue
            stub = transfer_stub(root, agency, home)
            thread = _Poller(
                self.mailbox_interval, stub.poll_once, name=f"simulated-archive-{agency.id}"
            )
            thread.start()
            self._pollers.append(thread)

    def stop(self) -> None:
        for p in self._pollers:
            p.stopped.set()
        for p in self._pollers:
            p.join(timeout=5)
        self._pollers.clear()
        for close in self._closers:
            close()
        self._closers.clear()
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        for journal in self.journals.values():
            journal.close()
        self.journals.clear()

    def start_agency(self, agency_id: str) -> None:
        """Bring up an agency that was failing (demo: before the redelivery)."""
        self.failing = self.failing - {agency_id}
        agency = self.directory.get(agency_id)
        if agency.channel is Channel.HTTP and agency_id not in self.servers:
            app = create_app(
                agency_id, journal=self.journal_of(agency_id), directory=self.directory
            )
            port = int(str(agency.endpoint).rsplit(":", 1)[1].split("/")[0])
            self.servers[agency_id] = InboxServer(app, port=port).start()
        elif agency.channel is Channel.XTA:
            self._start_xta_partner(agency, self.directory.get(self.home))

    def received(self, agency_id: str) -> int:
        """How many messages the agency's inbox holds (inbound)."""
        return len(self.journal_of(agency_id).messages(direction=Direction.INBOUND))

    def __enter__(self) -> LocalInstallation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_http_agencies(directory: Directory) -> Iterable[Agency]:
    return (a for a in directory if a.channel is Channel.HTTP)
