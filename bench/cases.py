"""Cases per second end to end: one Prefect flow run per case vs a bare loop doing the same work.

    .venv/bin/python bench/cases.py [--n 200] [--concurrency 16] [--journal postgres|sqlite]

Setup (all on loopback, started by this script): a Prefect server on a fresh PostgreSQL database,
the inboxes of five recipient agencies in a separate process (each with its own journal), and a
routing in which every case goes to all five over HTTP. Each case is an Ummeldung notification
recorded in the journal as the city's inbox would; the procedure ``gewerbeummeldung`` runs for it
(intake → check → distribute → await_receipts → close) with the full journal.

Baseline, same run, same inboxes: a plain loop that parses and validates each notification, builds
and validates the five data-minimised messages and POSTs them (httpx, sequentially) — no journal,
no Prefect. Prints cases/s for both, the ratio and the peak RSS of this process, and
amtsbote's cases/s against Prefect's empty flow runs/s (the orchestration ceiling) in the same
run (the faster of two empty runs, one before and one after amtsbote's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPIENTS = {  # rule → (agency, message type)
    "statistik": ("it-nrw", "sta.gewerbemeldung.0100"),
    "lebensmittel": ("kreis-paderborn", "lue.gewerbemeldung.0290"),
    "arbeitsschutz": ("bezreg-detmold", "gaa.gewerbemeldung.0250"),
    "hwk": ("hwk-owl", "hwk.gewerbemeldung.0210"),
    "dguv": ("dguv", "dgu.gewerbemeldung.0230"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path) -> tuple[Path, Path]:
    text = (ROOT / "deployments" / "owl" / "agencies.yaml").read_text(encoding="utf-8")
    # the Kreis on plain HTTP like the other recipients: this bench measures the orchestration
    # against the same deliveries without it; the XTA channel's cost is bench/xta.py's
    text, kreis = re.subn(
        r"    channel: xta\n    xta_url: \S+",
        "    channel: http\n    endpoint: http://127.0.0.1:1",
        text,
    )
    assert kreis == 1, "the OWL directory's XTA agency changed; adjust write_config"
    text = re.sub(r"http://127\.0\.0\.1:\d+", lambda m: f"http://127.0.0.1:{free_port()}", text)
    text = re.sub(r"drop_dir: .*", f"drop_dir: {tmp / 'drop'}", text)
    text = re.sub(r"rate_limit: .*", "rate_limit: 10000", text)
    text = re.sub(r"concurrency: .*", "concurrency: 32", text)
    agencies = tmp / "agencies.yaml"
    agencies.write_text(text, encoding="utf-8")
    rules = "\n".join(
        f"  - id: {rule}\n    recipient: {agency}\n    message_type: {mt}"
        for rule, (agency, mt) in RECIPIENTS.items()
    )
    routing = tmp / "routing.yaml"
    routing.write_text(f"version: 1\nsender: stadt-paderborn\nrules:\n{rules}\n", encoding="utf-8")
    return agencies, routing


PARTNERS = """
import signal, sys, threading
from pathlib import Path
from connectors.directory import Directory
from connectors.journal import Journal
from flows.local import LocalInstallation
d = Directory.default()
inst = LocalInstallation(directory=d, home="stadt-paderborn",
                         home_journal=Journal(f"sqlite:///{sys.argv[1]}/unused.sqlite",
                                              create=True),
                         failing=frozenset({"stadt-paderborn"}), simulate_partners=False).start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
stop.wait()
inst.stop()
"""


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (default: this one) so far."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of the local PostgreSQL server so far: its live processes plus what the
    postmaster reaped of exited backends (both databases of this bench live there)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if name not in ("postgres", "postmaster"):
            continue
        f = rest.split()
        total += (int(f[11]) + int(f[12])) / tick
        if f[1] == "1" or int(f[1]) <= 1:  # the postmaster (parent: init): reaped children too
            total += (int(f[13]) + int(f[14])) / tick
    return total


def profile_start(server_pid: int | None) -> list[subprocess.Popen[bytes]]:
    """With BENCH_PROFILE=<prefix>: py-spy (if installed) samples this process and the Prefect
    server during the amtsbote phase, all threads, into <prefix>-client.txt / -server.txt
    (collapsed stacks)."""
    prefix = os.environ.get("BENCH_PROFILE")
    spy = Path(sys.executable).with_name("py-spy")
    if not prefix or not spy.exists():
        return []
    spies = []
    for label, pid in (("client", os.getpid()), ("server", server_pid)):
        if pid is None:
            continue
        cmd = [str(spy), "record", "--pid", str(pid), "-r", "50", "-f", "raw", "--nonblocking"]
        cmd += ["-o", f"{prefix}-{label}.txt"]
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)
    return spies


def profile_stop(spies: list[subprocess.Popen[bytes]]) -> None:
    import signal

    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=30)


def create_pg_database(prefix: str) -> tuple[str, str]:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def notification_payloads(n: int) -> list[tuple[str, bytes]]:
    from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
    from xoev.xgewerbeanzeige import notifications, v2_2

    sample = next(s for s in notifications() if "ummeldung" in s.path.name)
    model = v2_2.parse(sample.path.read_bytes())
    city = Behoerde(behoerdenkennung=Behoerdenkennung.from_string("MELDID:05774032"))
    portal = Behoerde(behoerdenkennung=Behoerdenkennung.from_string("PORTAL:05-wsp"))
    out = []
    for _ in range(n):
        kopf = Nachrichtenkopf.neu(nachrichtentyp="0010", leser=city, autor=portal)
        out.append(
            (
                kopf.nachrichten_uuid,
                v2_2.build(
                    v2_2.project(model, "gwa.gewerbemeldung.0010", kopf=kopf), validate=False
                ),
            )
        )
    return out


def baseline(payloads: list[tuple[str, bytes]]) -> float:
    """Parse + validate + build 5 + POST 5, sequentially, no journal, no Prefect."""
    import httpx

    import xoev
    from connectors.directory import Directory
    from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
    from xoev.xgewerbeanzeige import v2_2

    directory = Directory.default()
    city = directory.get("stadt-paderborn")
    author = Behoerde(behoerdenkennung=Behoerdenkennung.from_string(city.behoerdenkennung))
    token = directory.token_for(city.id)
    started = time.perf_counter()
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _, payload in payloads:
            report = xoev.validate(payload)
            assert report.ok, report.to_text()
            model = v2_2.parse(payload)
            for agency_id, mt in RECIPIENTS.values():
                agency = directory.get(agency_id)
                kopf = Nachrichtenkopf.neu(
                    nachrichtentyp=mt.rsplit(".", 1)[1],
                    autor=author,
                    leser=Behoerde(
                        behoerdenkennung=Behoerdenkennung.from_string(agency.behoerdenkennung)
                    ),
                )
                body = v2_2.build(v2_2.build_for(model, mt, kopf=kopf))
                r = client.post(
                    f"{agency.endpoint}/v1/messages",
                    content=body,
                    headers={
                        "Content-Type": "application/xml",
                        "Authorization": f"Bearer {token}",
                        "X-Nachrichten-UUID": kopf.nachrichten_uuid,
                        "X-Empfaenger": agency_id,
                    },
                )
                assert r.status_code in (200, 202), r.text
    return time.perf_counter() - started


async def with_flows(
    payloads: list[tuple[str, bytes]], journal_url: str, concurrency: int
) -> float:
    from connectors.directory import Directory
    from connectors.journal import Journal, MessageMeta
    from flows.procedures import gewerbeummeldung
    from flows.routing import Routing
    from flows.runtime import FlowSettings, Runtime, use_runtime

    directory = Directory.default()
    journal = Journal(journal_url, create=True)
    rt = Runtime(
        journal=journal,
        directory=directory,
        routing=Routing.default(directory=directory),
        settings=FlowSettings(retry_delays=(0.5, 1.0), poll_interval=0.2),
    )
    use_runtime(rt)
    for msg_uuid, payload in payloads:  # what the city's inbox would have stored
        journal.record_inbound(
            payload,
            MessageMeta(
                nachrichten_uuid=msg_uuid,
                standard="XGewerbeanzeige",
                version="2.2",
                message_type="gwa.gewerbemeldung.0010",
                author="PORTAL:05-wsp",
                reader="MELDID:05774032",
            ),
            sender_agency="wsp-nrw",
        )
    gate = asyncio.Semaphore(concurrency)

    finished: list[float] = []

    async def one(msg_uuid: str) -> dict[str, object]:
        async with gate:
            result = await gewerbeummeldung(message_uuid=msg_uuid)
            finished.append(time.perf_counter() - started)
            return result

    started = time.perf_counter()
    results = await asyncio.gather(*(one(u) for u, _ in payloads))
    elapsed = time.perf_counter() - started
    if os.environ.get("BENCH_TRACE"):
        print("finished at", " ".join(f"{t:.1f}" for t in sorted(finished)))
    closed = sum(1 for r in results if r["status"] == "closed")
    assert closed == len(payloads), f"only {closed} of {len(payloads)} cases closed"
    rt.close()
    journal.close()
    return elapsed


async def empty_flow_runs(n: int, concurrency: int) -> float:
    """The orchestration ceiling: N flow runs that do nothing, same server, same concurrency."""
    from prefect import flow

    @flow(name="bench-empty", persist_result=False, result_storage=Path(tempfile.gettempdir()))
    async def empty(i: int) -> int:
        return i

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with gate:
            return await empty(i)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="cases (default 200)")
    ap.add_argument("--concurrency", type=int, default=16, help="cases in flight (default 16)")
    ap.add_argument("--journal", choices=("postgres", "sqlite"), default="postgres")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="amtsbote-bench-"))
    agencies, routing = write_config(tmp)
    os.environ.update(
        {
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_ROUTING": str(routing),
            "AMTSBOTE_DATA_DIR": str(tmp / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp / "prefect-client"),
            "PREFECT_LOGGING_LEVEL": "ERROR",
        }
    )
    prefect_db, prefect_pg = create_pg_database("bench_prefect")
    journal_db = None
    from flows.local import PrefectServer

    server = PrefectServer(
        home=tmp / "prefect", port=free_port(), database_url=f"postgresql+asyncpg://{prefect_pg}"
    )
    partners = None
    try:
        server.start()
        os.environ["PREFECT_API_URL"] = server.api_url
        partners = subprocess.Popen(
            [sys.executable, "-c", PARTNERS, str(tmp)], stdout=subprocess.PIPE, text=True
        )
        assert partners.stdout is not None and partners.stdout.readline().strip() == "ready"
        if args.journal == "postgres":
            journal_db, pg = create_pg_database("bench_journal")
            journal_url = f"postgresql+psycopg://{pg}"
        else:
            journal_url = f"sqlite:///{tmp / 'journal.sqlite'}"

        warm = notification_payloads(4)
        baseline(warm)
        asyncio.run(with_flows(warm, journal_url, args.concurrency))

        payloads = notification_payloads(args.n)
        t_base = baseline(payloads)
        payloads = notification_payloads(args.n)  # new UUIDs: the inboxes would deduplicate
        server_pid = server.pid
        t_empty_before = asyncio.run(empty_flow_runs(args.n, args.concurrency))
        cpu0 = (
            cpu_seconds(),
            cpu_seconds(server_pid),
            cpu_seconds(partners.pid),
            postgres_cpu_seconds(),
        )
        spies = profile_start(server_pid)
        t_flow = asyncio.run(with_flows(payloads, journal_url, args.concurrency))
        profile_stop(spies)
        cpu1 = (
            cpu_seconds(),
            cpu_seconds(server_pid),
            cpu_seconds(partners.pid),
            postgres_cpu_seconds(),
        )
        t_empty_after = asyncio.run(empty_flow_runs(args.n, args.concurrency))
        # the ceiling is the faster of the runs before and after amtsbote's (the machine is
        # noisy; the faster one makes the ratio the more demanding)
        t_empty = min(t_empty_before, t_empty_after)
        cpu2 = (
            cpu_seconds(),
            cpu_seconds(server_pid),
            cpu_seconds(partners.pid),
            postgres_cpu_seconds(),
        )
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        base_rate, flow_rate = args.n / t_base, args.n / t_flow
        print(
            f"cases: {args.n}, recipients per case: {len(RECIPIENTS)} (HTTP), "
            f"journal: {args.journal}, Prefect server: PostgreSQL, concurrency: "
            f"{args.concurrency}"
        )
        print(f"{'variant':<44} {'seconds':>8} {'cases/s':>8} {'ratio':>6}")
        print(
            f"{'bare loop (parse/validate/build/POST)':<44} {t_base:8.2f} {base_rate:8.1f} "
            f"{1.0:6.2f}"
        )
        print(
            f"{'amtsbote: one flow run per case, journal':<44} {t_flow:8.2f} {flow_rate:8.1f} "
            f"{flow_rate / base_rate:6.2f}"
        )
        print(
            f"{'ceiling: empty flow runs (no tasks, no work)':<44} {t_empty:8.2f} "
            f"{args.n / t_empty:8.1f} {args.n / t_empty / base_rate:6.2f}"
        )
        print(
            f"empty flow runs/s before / after amtsbote's: {args.n / t_empty_before:.1f} / "
            f"{args.n / t_empty_after:.1f} (the faster counts)"
        )
        print(
            f"amtsbote cases/s against empty flow runs/s, same run: "
            f"{flow_rate / (args.n / t_empty):.2f}x (target >= 0.5x)"
        )
        flow_cpu = [(b - a) * 1000 / args.n for a, b in zip(cpu0, cpu1, strict=True)]
        empty_cpu = [(b - a) * 1000 / args.n for a, b in zip(cpu1, cpu2, strict=True)]
        print(
            "CPU ms per case (this process / Prefect server / partner inboxes / PostgreSQL = "
            "total): "
            + ", ".join(
                f"{label} " + " / ".join(f"{v:.0f}" for v in cpu) + f" = {sum(cpu):.0f}"
                for label, cpu in (("amtsbote", flow_cpu), ("empty flow run", empty_cpu))
            )
        )
        print(
            f"CPU per case, amtsbote against an empty flow run: "
            f"{sum(flow_cpu) / sum(empty_cpu):.2f}x"
        )
        print(
            f"peak RSS of this process: {rss_mb:.0f} MiB; load average at the end: "
            f"{os.getloadavg()[0]:.1f}"
        )
        return 0
    finally:
        if partners is not None:
            partners.terminate()
            partners.wait(timeout=30)
        server.stop()
        drop_pg_database(prefect_db)
        if journal_db:
            drop_pg_database(journal_db)


if __name__ == "__main__":
    sys.exit(main())
