"""Messages/s and CPU per message over XTA 2 with mutual TLS beside the HTTP API, in one run.

::

    .venv/bin/python bench/xta.py [--n 300] [--concurrency 4] [--large-mb 0]
                                  [--database-url URL | --pg-admin URL] [--max-seconds 120]

One inbox (``amtsbote inbox serve --agency stadt-paderborn``) runs in a subprocess on 127.0.0.1
with HTTPS and client certificates (``--tls-cert --tls-key --client-ca``; a throw-away CA from
:mod:`connectors.throwaway_pki`), a fresh SQLite journal in a temporary directory (or
``--database-url``, whose journal tables the bench then fills, or ``--pg-admin`` for a fresh
PostgreSQL database created and dropped around the run) and the shipped OWL directory, in which
the agencies' certificate fingerprints are entered and the Landesarchiv is a mailbox of the city
(as ihk-owl is). Four
phases of ``--n`` messages each (the bundled XGewerbeanzeige 0500, stadt-paderborn → ihk-owl's
mailbox, a fresh nachrichtenUUID each), by ``--concurrency`` threads with one keep-alive
connection each:

* ``HTTP send``  — ``MailboxSender`` (``POST /v1/messages``, bearer token, HTTPS);
* ``XTA send``   — ``XtaSender`` (``sendMessage`` MTOM + ``getTransportReport``, the client
                   certificate as identity, no token);
* ``HTTP fetch`` — ``GET /v1/mailbox`` (pages), ``GET /v1/mailbox/{uuid}``, ``POST …/ack``
                   (ihk-owl's token);
* ``XTA fetch``  — ``getStatusList`` (pages), ``getMessage``, ``close`` (ihk-owl's certificate).

Printed per phase: messages/s, CPU milliseconds per message of this (client) process and of the
server process (``/proc/<pid>/stat``), and the ratio XTA/HTTP of each. Client and server share
the machine: the ratios are what compares.

``--large-mb M`` first sends one xdomea container (0503 of the city to the Landesarchiv, with a
primary file of M MiB random bytes, stored) by ``XtaSender`` from its file and fetches it back
with ``XtaClient.get_message(spool=...)``; printed: seconds and MiB/s of each, the tracemalloc
peak of this process during each, and the peak RSS (``VmHWM``) of this process and of the
server before and after, against the payload size. The container's big member is checked by
SHA-256 after the round trip. MiB = 2**20 bytes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import re
import ssl
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.inbox import Server, pg_database, running  # noqa: E402
from bench.inbox import _free_port as free_port  # noqa: E402
from connectors.directory import Channel, Directory, dev_token  # noqa: E402
from connectors.senders import OutgoingMessage, XtaSender, sender_for  # noqa: E402
from connectors.senders.base import CONTAINER_TYPE  # noqa: E402
from connectors.throwaway_pki import Issued, Pki  # noqa: E402
from connectors.xta.client import XtaClient  # noqa: E402
from connectors.xta.metadata import message_id_for  # noqa: E402
from xoev.message import inspect_message  # noqa: E402

HOME, MAILBOX, ARCHIV = "stadt-paderborn", "ihk-owl", "landesarchiv-owl"
AGENCIES = ROOT / "deployments" / "owl" / "agencies.yaml"
SAMPLE = ROOT / "xoev" / "xgewerbeanzeige" / "samples" / "anmeldung-restaurant-abh-0500.xml"
SAMPLE_UUID = b"6f1c2a44-8d0b-4c3e-9a51-2b7d0e4f5a01"
SAMPLE_0503 = ROOT / "xoev" / "xdomea" / "samples" / "aussonderung" / "3.1.0"
SAMPLE_0503 = SAMPLE_0503 / "Aussonderung.Aussonderung.0503.xml"
MIB = 1 << 20
_ARCHIVE_HTTP = re.compile(
    r"(  - id: landesarchiv-owl\n(?:    .*\n)*?)    channel: http\n    endpoint: .*\n"
)
DEV_ENV = {"AMTSBOTE_DEV_TOKENS": "1"}


# ------------------------------------------------------------------------------ setup


def write_agencies(target: Path, fingerprints: dict[str, str]) -> Path:
    """The shipped directory with the fingerprints entered, the Landesarchiv a mailbox of the
    city and no rate limits that would measure the limiter."""
    text = AGENCIES.read_text(encoding="utf-8")
    text, found = _ARCHIVE_HTTP.subn(
        r"\1    channel: mailbox\n    mailbox_host: stadt-paderborn\n", text
    )
    if not found:
        raise SystemExit(f"{AGENCIES}: landesarchiv-owl is no http agency with an endpoint")
    for agency, fingerprint in fingerprints.items():
        head = f"  - id: {agency}\n"
        if head not in text:
            raise SystemExit(f"{AGENCIES}: no agency {agency}")
        text = text.replace(head, f"{head}    client_cert_sha256: {fingerprint}\n", 1)
    target.write_text(text, encoding="utf-8")
    return target


def peak_rss_mib(pid: int | str = "self") -> float:
    """``VmHWM`` (peak resident set so far) of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def serve(tmp: Path, pki: Pki, agencies: Path, database_url: str | None) -> Iterator[Server]:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))",
        *("inbox", "serve", "--agency", HOME, "--port", str(port)),
        *("--database-url", database_url or f"sqlite:///{tmp / 'journal.sqlite'}"),
        *("--agencies", str(agencies), "--log-level", "warning"),
        *("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)),
        *("--client-ca", str(pki.ca)),
    ]
    env = {"AMTSBOTE_DATA_DIR": str(tmp / "data")}
    with running("inbox", command, port, tmp / "server.log", ca=pki.ca, env=env) as server:
        yield server


@dataclass
class Setup:
    server: Server
    pki: Pki
    certs: dict[str, Issued]
    http_directory: Directory
    xta_directory: Directory

    @property
    def xta_url(self) -> str:
        return self.server.url + "/services/XTAService"

    def context(self, agency: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if agency is not None:
            context.load_cert_chain(str(self.certs[agency].cert), str(self.certs[agency].key))
        return context


def http_directory(agencies: Path, url: str, pki: Pki) -> Directory:
    """The sending side's directory: the city's inbox at ``url`` (HTTPS, our CA), the mailboxes
    without rate limits."""
    base = Directory.load(agencies, environ=DEV_ENV)
    fast: dict[str, Any] = {"rate_limit": 1_000_000.0, "concurrency": 64}
    home: dict[str, Any] = {"endpoint": url, "tls_ca": pki.ca}
    changed = [
        dataclasses.replace(a, **(home if a.id == HOME else fast if a.mailbox_host else {}))
        for a in base
    ]
    return Directory(changed, roles=base.roles, environ=DEV_ENV)


def xta_directory(
    http: Directory, recipient: str, xta_url: str, pki: Pki, cert: Issued
) -> Directory:
    """``http`` with ``recipient`` reached over XTA with ``cert`` and no tokens at all (the
    certificate alone identifies the sender); one recipient at a time, since an ``xta_url``
    names one agency."""
    changes: dict[str, Any] = {
        "channel": Channel.XTA,
        "mailbox_host": None,
        "xta_url": xta_url,
        "tls_client_cert": cert.cert,
        "tls_client_key": cert.key,
        "tls_ca": pki.ca,
    }
    changed = [dataclasses.replace(a, **changes) if a.id == recipient else a for a in http]
    return Directory(changed, roles=http.roles, environ={})  # no tokens: the certificate only


# ------------------------------------------------------------------------------ messages


def _kennung_xml(kennung: str) -> tuple[str, str]:
    praefix, _, value = kennung.partition(":")
    return praefix, value


class Messages:
    """The 0500 sample, stadt-paderborn → ``reader`` (re-addressed once), a fresh UUID each."""

    def __init__(self, reader_kennung: str) -> None:
        template = SAMPLE.read_bytes()
        if SAMPLE_UUID not in template:
            raise SystemExit(f"{SAMPLE} does not hold the expected nachrichtenUUID")
        text = template.decode()
        start, end = text.index("<xga:leser>"), text.index("</xga:leser>")
        praefix, value = _kennung_xml(reader_kennung)
        block = re.sub(
            r"(<xga:praefix[^>]*>\s*<code>)[^<]*", rf"\g<1>{praefix}", text[start:end], count=1
        )
        block = re.sub(
            r"<xga:kennung [^>]*>(\s*<code>)[^<]*", rf"<xga:kennung>\g<1>{value}", block, count=1
        )
        self.template = (text[:start] + block + text[end:]).encode()

    def outgoing(self, recipient: str) -> OutgoingMessage:
        uid = str(uuid.uuid4())
        payload = self.template.replace(SAMPLE_UUID, uid.encode())
        return OutgoingMessage(
            payload=payload, nachrichten_uuid=uid, recipient=recipient, sender=HOME
        )


def big_container(folder: Path, archive_kennung: str, mib: int) -> tuple[Path, str, str, bytes]:
    """A 0503 container (stored members) with a primary file of ``mib`` MiB random bytes:
    ``(zip, big member name, its SHA-256, the XML)``."""
    prozess = str(uuid.uuid4())
    xml = SAMPLE_0503.read_text(encoding="utf-8")
    old = re.search(r"<xdomea:ProzessID>([^<]+)</xdomea:ProzessID>", xml)
    assert old is not None
    xml = xml.replace(old.group(1), prozess)
    praefix, value = _kennung_xml(archive_kennung)
    xml = xml.replace(
        "<xdomea:Empfaenger>",
        "<xdomea:Empfaenger><xdomea:Behoerdenkennung><xdomea:Behoerdenschluessel>"
        f"<code>{value}</code></xdomea:Behoerdenschluessel><xdomea:Praefix><code>{praefix}"
        "</code></xdomea:Praefix></xdomea:Behoerdenkennung>",
        1,
    )
    names = re.findall(r"<xdomea:Dateiname>([^<]+)</xdomea:Dateiname>", xml)
    root = "Aussonderung.Aussonderung.0503"
    target = folder / f"{prozess}_{root}.zip"
    digest = hashlib.sha256()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(f"{prozess}_{root}.xml", xml.encode())
        with zf.open(names[0], "w", force_zip64=True) as member:
            for _ in range(mib):
                block = os.urandom(MIB)
                digest.update(block)
                member.write(block)
        for name in names[1:]:
            zf.writestr(name, os.urandom(64 * 1024))
    return target, names[0], digest.hexdigest(), xml.encode()


# ------------------------------------------------------------------------------ phases


@dataclass
class Phase:
    name: str
    n: int
    seconds: float
    client_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else float("nan")

    def ms(self, cpu: float) -> float:
        return 1000 * cpu / self.n if self.n else float("nan")


def server_cpu(server: Server) -> float:
    seconds = server.cpu_seconds()
    if seconds is None:
        raise SystemExit(f"no CPU time of the server process {server.process.pid} (/proc)")
    return seconds


def measure(setup: Setup, name: str, body: Callable[[], int]) -> Phase:
    cpu0, server0, t0 = time.process_time(), server_cpu(setup.server), time.perf_counter()
    n = body()
    seconds = time.perf_counter() - t0
    return Phase(name, n, seconds, time.process_time() - cpu0, server_cpu(setup.server) - server0)


def in_threads(
    items: Sequence[Any],
    work: Callable[[Any, Any], None],
    make: Callable[[], Any],
    close: Callable[[Any], None],
    *,
    concurrency: int,
    deadline: float,
) -> int:
    """``work(resource, item)`` for each item by ``concurrency`` threads, each with its own
    ``make()`` (a client: one keep-alive connection); stops taking items after ``deadline``."""
    todo = list(reversed(items))
    lock = threading.Lock()
    done = [0]

    def worker() -> None:
        resource = make()
        try:
            while time.monotonic() < deadline:
                with lock:
                    if not todo:
                        return
                    item = todo.pop()
                work(resource, item)
                with lock:
                    done[0] += 1
        finally:
            close(resource)

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return done[0]


def batch_of(directory: Directory, n: int) -> list[OutgoingMessage]:
    """``n`` messages for the mailbox, made before a phase's clock starts."""
    messages = Messages(directory.get(MAILBOX).behoerdenkennung)
    return [messages.outgoing(MAILBOX) for _ in range(n)]


def send_phase(directory: Directory, batch: list[OutgoingMessage], args: argparse.Namespace) -> int:
    def work(sender: Any, message: OutgoingMessage) -> None:
        receipt = sender.send(message)
        if receipt.nachrichten_uuid != message.nachrichten_uuid:
            raise SystemExit(
                f"receipt for {receipt.nachrichten_uuid}, not {message.nachrichten_uuid}"
            )

    deadline = time.monotonic() + args.max_seconds
    return in_threads(
        batch,
        work,
        lambda: sender_for(MAILBOX, directory),
        lambda s: s.close(),
        concurrency=args.concurrency,
        deadline=deadline,
    )


def http_fetch_phase(setup: Setup, n: int, args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {dev_token(MAILBOX)}"}
    url = setup.server.url

    def make() -> httpx.Client:
        return httpx.Client(verify=setup.context(None), headers=headers, timeout=60)

    def work(client: httpx.Client, uid: str) -> None:
        client.get(f"{url}/v1/mailbox/{uid}").raise_for_status()
        client.post(f"{url}/v1/mailbox/{uid}/ack").raise_for_status()

    deadline = time.monotonic() + args.max_seconds
    done = 0
    with make() as lister:
        while done < n and time.monotonic() < deadline:
            listing = lister.get(f"{url}/v1/mailbox", params={"limit": min(n - done, 1000)})
            listing.raise_for_status()
            uids = [m["nachrichtenUUID"] for m in listing.json()["messages"]]
            if not uids:
                break
            done += in_threads(
                uids,
                work,
                make,
                httpx.Client.close,
                concurrency=args.concurrency,
                deadline=deadline,
            )
    return done


def xta_fetch_phase(setup: Setup, n: int, args: argparse.Namespace) -> int:
    kennung = setup.xta_directory.get(MAILBOX).behoerdenkennung

    def make() -> XtaClient:
        http = httpx.Client(verify=setup.context(MAILBOX), timeout=60)
        return XtaClient(setup.xta_url, author=kennung, client=http)

    def work(client: XtaClient, message_id: str) -> None:
        client.get_message(message_id)
        client.close(message_id)

    deadline = time.monotonic() + args.max_seconds
    done = 0
    lister = make()
    try:
        while done < n and time.monotonic() < deadline:
            ids = lister.get_status_list(max_items=min(n - done, 1000))
            if not ids:
                break
            done += in_threads(
                ids,
                work,
                make,
                lambda c: c.client.close(),
                concurrency=args.concurrency,
                deadline=deadline,
            )
    finally:
        lister.client.close()
    return done


# ------------------------------------------------------------------------------ large


def large_case(setup: Setup, tmp: Path, mib: int) -> None:
    directory = xta_directory(
        setup.http_directory, ARCHIV, setup.xta_url, setup.pki, setup.certs[HOME]
    )
    folder = tmp / "large"
    folder.mkdir()
    container, member, sha256, xml = big_container(
        folder, directory.get(ARCHIV).behoerdenkennung, mib
    )
    info = inspect_message(xml)
    assert info.nachrichten_uuid is not None
    message = OutgoingMessage(
        payload=xml,
        nachrichten_uuid=info.nachrichten_uuid,
        recipient=ARCHIV,
        sender=HOME,
        content_type=CONTAINER_TYPE,
        file=container,
    )
    size = message.size / MIB  # hashes the file once (before the clock)
    rss0, server0 = peak_rss_mib(), peak_rss_mib(setup.server.process.pid)
    sender = XtaSender(directory.get(ARCHIV), directory)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        state = sender.send(message).state
        send_s = time.perf_counter() - t0
        _, send_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sender.close()
    rss1, server1 = peak_rss_mib(), peak_rss_mib(setup.server.process.pid)
    spool = folder / "spool"
    http = httpx.Client(verify=setup.context(ARCHIV), timeout=300)
    client = XtaClient(setup.xta_url, author=directory.get(ARCHIV).behoerdenkennung, client=http)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fetched = client.get_message(message_id_for(info.nachrichten_uuid), spool=spool)
        fetch_s = time.perf_counter() - t0
        _, fetch_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    client.close(message_id_for(info.nachrichten_uuid))
    http.close()
    rss2, server2 = peak_rss_mib(), peak_rss_mib(setup.server.process.pid)
    assert fetched.path is not None, "the container was not spooled"
    got = hashlib.sha256()
    with zipfile.ZipFile(fetched.path) as zf, zf.open(member) as stream:
        while block := stream.read(MIB):
            got.update(block)
    intact = got.hexdigest() == sha256
    fetched_mib = fetched.size / MIB
    fetched.path.unlink()
    print(
        f"\nlarge container over XTA with mTLS: {size:.1f} MiB sent ({state}), "
        f"{fetched_mib:.1f} MiB fetched (rebuilt by the server), big member intact: {intact}"
    )
    print(
        f"{'':<22}{'seconds':>9}{'MiB/s':>9}{'tracemalloc peak':>18}{'client VmHWM':>20}"
        f"{'server VmHWM':>20}"
    )
    for name, seconds, mibs, peak, (c0, c1), (s0, s1) in (
        ("send (XtaSender)", send_s, size, send_peak, (rss0, rss1), (server0, server1)),
        ("fetch (spool)", fetch_s, fetched_mib, fetch_peak, (rss1, rss2), (server1, server2)),
    ):
        print(
            f"{name:<22}{seconds:>9.2f}{mibs / seconds:>9.1f}{peak / MIB:>14.1f} MiB"
            f"{c0:>8.0f} → {c1:>4.0f} MiB{s0:>8.0f} → {s1:>4.0f} MiB"
        )
    print(f"payload {size:.0f} MiB; VmHWM = peak resident set so far (before → after)")
    if not intact:
        raise SystemExit("the fetched container's big member differs")


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="messages per phase (default 300)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument(
        "--large-mb", type=int, default=0, metavar="M", help="also one container of M MiB"
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="journal (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--pg-admin",
        metavar="URL",
        help="instead: a fresh PostgreSQL database made (and dropped) through this admin URL, "
        "e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--max-seconds", type=float, default=120, help="per phase (default 120)")
    args = parser.parse_args(argv)
    if (
        not 1 <= args.n <= 20_000
        or not 1 <= args.concurrency <= 64
        or not 0 <= args.large_mb <= 4096
    ):
        parser.error("--n 1..20000, --concurrency 1..64, --large-mb 0..4096")
    database: Any = (
        pg_database(args.pg_admin) if args.pg_admin else contextlib.nullcontext(args.database_url)
    )
    with tempfile.TemporaryDirectory(prefix="amtsbote-bench-xta-") as name, database as db_url:
        tmp = Path(name)
        pki = Pki.create(tmp / "pki", name="amtsbote bench CA")
        certs = {a: pki.client(a) for a in (HOME, MAILBOX, ARCHIV)}
        agencies = write_agencies(
            tmp / "agencies.yaml", {a: c.fingerprint for a, c in certs.items()}
        )
        with serve(tmp, pki, agencies, db_url) as server:
            http_dir = http_directory(agencies, server.url, pki)
            xta_url = server.url + "/services/XTAService"
            xta_dir = xta_directory(http_dir, MAILBOX, xta_url, pki, certs[HOME])
            setup = Setup(server, pki, certs, http_dir, xta_dir)
            print(
                f"inbox {HOME} on {server.url} (pid {server.process.pid}), journal "
                f"{'SQLite' if not db_url else db_url.split('@')[-1]}, "
                f"--n {args.n}, --concurrency {args.concurrency}"
            )
            if args.large_mb:
                large_case(setup, tmp, args.large_mb)
            http_batch, xta_batch = batch_of(http_dir, args.n), batch_of(http_dir, args.n)
            phases = [
                measure(setup, "HTTP send", lambda: send_phase(http_dir, http_batch, args)),
                measure(setup, "XTA send", lambda: send_phase(xta_dir, xta_batch, args)),
                measure(setup, "HTTP fetch", lambda: http_fetch_phase(setup, args.n, args)),
                measure(setup, "XTA fetch", lambda: xta_fetch_phase(setup, args.n, args)),
            ]
    print(f"\n{'phase':<12}{'n':>6}{'msg/s':>9}{'client CPU ms/msg':>20}{'server CPU ms/msg':>20}")
    for p in phases:
        print(
            f"{p.name:<12}{p.n:>6}{p.rate:>9.1f}{p.ms(p.client_cpu):>20.2f}{p.ms(p.server_cpu):>20.2f}"
        )
    by = {p.name: p for p in phases}
    print(f"\n{'XTA/HTTP':<12}{'msg/s':>15}{'client CPU':>20}{'server CPU':>20}")
    for kind in ("send", "fetch"):
        x, h = by[f"XTA {kind}"], by[f"HTTP {kind}"]
        print(
            f"{kind:<12}{x.rate / h.rate:>15.2f}{x.ms(x.client_cpu) / h.ms(h.client_cpu):>20.2f}"
            f"{x.ms(x.server_cpu) / h.ms(h.server_cpu):>20.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
