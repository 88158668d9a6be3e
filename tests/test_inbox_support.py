"""Helpers shared by the inbox tests (``test_inbox*.py``); this module holds no tests.

* :func:`make_directory` — the shipped OWL directory with development tokens (passed as
  ``environ``, the process environment stays untouched), endpoints pointed at test servers and
  limits raised so that the senders do not throttle the tests;
* :class:`Messages` — valid XGewerbeanzeige messages built from the bundled Paderborn samples
  (``xoev/xgewerbeanzeige/samples``), re-addressed and with a fresh nachrichtenUUID each;
* :class:`InboxProcess` — ``amtsbote inbox serve`` in a subprocess (for ``kill -9`` and load);
* :func:`pg_schema` — a fresh schema in the session's PostgreSQL test database;
* :func:`table_counts` — row counts straight from the database, not through the journal API;
* :func:`deliver` — a bounded client-side retry loop around ``Sender.send``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from conftest import free_port, pg_schema  # noqa: F401  (re-exported for the inbox tests)
from lxml import etree
from sqlalchemy import create_engine, text

from connectors.directory import Agency, Channel, Directory, dev_token
from connectors.journal import generate_key
from connectors.senders import OutgoingMessage, Receipt, Sender, TransientSendError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "xoev" / "xgewerbeanzeige" / "samples"
AGENCIES_FILE = ROOT / "deployments" / "owl" / "agencies.yaml"
DEV_ENV: dict[str, str] = {"AMTSBOTE_DEV_TOKENS": "1"}
#: stadt-paderborn → kreis-paderborn, abh.gewerbemeldung.0500
SAMPLE_0500 = "anmeldung-restaurant-abh-0500.xml"
XGA = "http://www.xgewerbeanzeige.de/spezifikation/2.2"


def make_directory(endpoints: Mapping[str, str] | None = None) -> Directory:
    """The OWL directory with dev tokens; ``endpoints`` maps http agency ids to test URLs."""
    base = Directory.load(AGENCIES_FILE, environ=DEV_ENV)
    agencies = []
    for agency in base:
        changes: dict[str, Any] = {"concurrency": 64, "rate_limit": 100_000.0}
        if endpoints and agency.id in endpoints and agency.channel is Channel.HTTP:
            changes["endpoint"] = endpoints[agency.id]
        agencies.append(dataclasses.replace(agency, **changes))
    return Directory(agencies, roles=base.roles, environ=DEV_ENV)


def auth(agency_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(agency_id)}"}


def xml_headers(agency_id: str, **extra: str) -> dict[str, str]:
    return {**auth(agency_id), "Content-Type": "application/xml", **extra}


def sample(name: str = SAMPLE_0500) -> bytes:
    return (SAMPLES / name).read_bytes()


def readdress(
    xml: bytes,
    *,
    nachrichten_uuid: str | None = None,
    author: str | None = None,
    reader: str | None = None,
) -> bytes:
    """``xml`` with another nachrichtenUUID and/or author/reader Behördenkennung
    (``praefix:kennung``). Trusted input (our own samples)."""
    root = etree.fromstring(xml)
    ns = {"x": etree.QName(root).namespace or ""}
    if nachrichten_uuid is not None:
        node = root.find("x:nachrichtenkopf/x:identifikation.nachricht/x:nachrichtenUUID", ns)
        assert node is not None
        node.text = nachrichten_uuid
    for party, kennung in (("autor", author), ("leser", reader)):
        if kennung is None:
            continue
        praefix, _, value = kennung.partition(":")
        bk = root.find(f"x:nachrichtenkopf/x:{party}/x:behoerdenkennung", ns)
        assert bk is not None, f"sample has no {party}"
        praefix_el = bk.find("x:praefix", ns)
        kennung_el = bk.find("x:kennung", ns)
        assert praefix_el is not None and kennung_el is not None
        old = praefix_el.findtext("code")
        praefix_code, kennung_code = praefix_el.find("code"), kennung_el.find("code")
        assert praefix_code is not None and kennung_code is not None
        praefix_code.text, kennung_code.text = praefix, value
        if old != praefix:  # the AGS list of MELDID does not fit other praefixes
            for attr in ("listURI", "listVersionID"):
                kennung_el.attrib.pop(attr, None)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


class Messages:
    """Valid messages from ``author`` to ``reader`` (agencies of the directory), each with a
    fresh nachrichtenUUID. The template is re-addressed once; :meth:`new` only swaps the UUID
    bytes, so thousands are cheap."""

    def __init__(self, author: Agency, reader: Agency, *, name: str = SAMPLE_0500) -> None:
        self.author = author
        self.reader = reader
        self._marker = str(uuid.uuid4())
        self.template = readdress(
            sample(name),
            nachrichten_uuid=self._marker,
            author=author.behoerdenkennung,
            reader=reader.behoerdenkennung,
        )

    def new(self, nachrichten_uuid: str | None = None) -> tuple[str, bytes]:
        value = nachrichten_uuid or str(uuid.uuid4())
        return value, self.template.replace(self._marker.encode(), value.encode())

    def outgoing(self, nachrichten_uuid: str | None = None) -> OutgoingMessage:
        value, payload = self.new(nachrichten_uuid)
        return OutgoingMessage(
            payload=payload,
            nachrichten_uuid=value,
            recipient=self.reader.id,
            sender=self.author.id,
        )


def deliver(
    sender: Sender, message: OutgoingMessage, *, timeout: float = 30.0, pause: float = 0.05
) -> tuple[Receipt, int]:
    """Send until a receipt comes back, retrying transient failures for at most ``timeout``
    seconds. Returns ``(receipt, attempts)``; permanent failures are raised at once."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return sender.send(message), attempts
        except TransientSendError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)


# ------------------------------------------------------------------------------ databases


def table_counts(url: str) -> dict[str, int]:
    """Rows of the journal tables, counted in SQL: messages, distinct nachrichtenUUIDs,
    deliveries, ``message.received`` events."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "messages": conn.execute(text("SELECT count(*) FROM messages")).scalar_one(),
                "uuids": conn.execute(
                    text("SELECT count(DISTINCT nachrichten_uuid) FROM messages")
                ).scalar_one(),
                "deliveries": conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one(),
                "received_events": conn.execute(
                    text("SELECT count(*) FROM events WHERE kind = 'message.received'")
                ).scalar_one(),
            }
    finally:
        engine.dispose()


def stored_uuids(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT nachrichten_uuid FROM messages")).scalars()
            return set(rows)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ processes


#: The journal key of every :class:`InboxProcess` (read their journals with it).
INBOX_PROCESS_KEY = generate_key()


class InboxProcess:
    """``amtsbote inbox serve --agency …`` in a subprocess on 127.0.0.1 (dev tokens, the shipped
    directory). :meth:`start` waits for ``/healthz``; :meth:`kill` is ``kill -9``."""

    def __init__(
        self,
        agency_id: str,
        *,
        database_url: str,
        log_dir: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.agency_id = agency_id
        self.database_url = database_url
        self.port = port or free_port()
        self.log_path = log_dir / f"inbox-{agency_id}-{self.port}.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))",
            "inbox",
            "serve",
            "--agency",
            self.agency_id,
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--agencies",
            str(AGENCIES_FILE),
            "--log-level",
            "warning",
            *self.extra_args,
        ]

    @staticmethod
    def environment() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMTSBOTE_TOKEN_")}
        env.update(DEV_ENV)
        # the journal is encrypted by default: one known key, so that tests can read it back
        # (and no key file lands in ./var)
        env["AMTSBOTE_JOURNAL_KEY"] = INBOX_PROCESS_KEY
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def start(self, timeout: float = 60.0) -> InboxProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"inbox exited with {self.process.returncode}: {self.log_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"inbox not ready after {timeout}s: {self.log_text()[-2000:]}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush — what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def __enter__(self) -> InboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
