"""A normal sender's latency and the inbox's memory while hostile clients attack it (issue 12, 8).

::

    .venv/bin/python bench/attack.py [--seconds 15] [--attacks headers,idle,bombs,guessing,all]

Each phase starts a fresh ``amtsbote inbox serve --agency kreis-paderborn`` subprocess (SQLite
journal in a temporary data dir, journal key created there) in **production-token mode**: every
agency of the OWL directory has its own random 43-character token, no development tokens. Then,
for ``--seconds``:

* the **normal client** (this process, source address 127.0.0.1, one keep-alive connection) sends
  valid XGewerbeanzeige 0500 messages as stadt-paderborn, one after the other with 20 ms between;
  every answer must be 202;
* an **attacker** (a separate process, source address 127.0.0.2, so that the address-based auth
  throttle tells them apart as it would in production) runs one attack:

  - ``headers``  — 8 connections at a time, each streaming a 64 MB request header;
  - ``idle``     — 1,100 connections held open without sending a byte (reopened when closed);
  - ``bombs``    — four authenticated agencies (ihk-owl, hwk-owl, dguv, it-nrw), each POSTing
    10 MB element-bomb messages (2.5 million empty elements) back to back, 2 at a time;
  - ``guessing`` — 8 concurrent clients POSTing with wrong bearer tokens;
  - ``all``      — all four at once.

The baseline phase runs the normal client alone on its own fresh server. Printed per phase: the
normal client's requests, p50/p99 latency, answers that were not 202, the server's peak RSS
(sampled every 20 ms from /proc), what the attacker achieved (status codes it saw, connections
it held) and the ratios p99 and peak RSS against the baseline of the same run. Target: p99 < 100
ms under every attack.

Loopback only; every loop is bounded by ``--seconds`` (and the attacker process is killed if it
outlives its phase by 30 s). Needs Linux (/proc, 127.0.0.2 on lo) and ~1,200 open files for the
attacker (its soft limit is raised to the hard one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
from inbox import (  # noqa: E402
    AGENCIES,
    RECIPIENT,
    SENDER,
    _free_port,
    inbox_command,
    messages,
    running,
    write_agencies,
)

from connectors.directory import Directory  # noqa: E402

ATTACKS = ("headers", "idle", "bombs", "guessing")
ATTACKER_ADDRESS = "127.0.0.2"
BOMB_SENDERS = ("ihk-owl", "hwk-owl", "dguv", "it-nrw")
NS = b"http://www.xgewerbeanzeige.de/spezifikation/2.2"


# ------------------------------------------------------------------------------ attacker side


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(host: str, port: int, seen: Counter[str]) -> Streams | None:
    """A connection from the attacker's address, or None (counted in ``seen``, after a pause)."""
    try:
        return await asyncio.open_connection(host, port, local_addr=(ATTACKER_ADDRESS, 0))
    except OSError as exc:
        seen[f"connect {type(exc).__name__}"] += 1
        await asyncio.sleep(0.1)
        return None


async def _headers(host: str, port: int, until: float, seen: Counter[str], most: list[int]) -> None:
    """One connection after another streaming a 64 MB header until the server hangs up."""
    chunk = b"a" * 65536
    while time.monotonic() < until:
        if (streams := await _connect(host, port, seen)) is None:
            continue
        reader, writer = streams
        sent = 0
        try:
            writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < 64 * 1024 * 1024 and time.monotonic() < until:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
            answer = await asyncio.wait_for(reader.read(200), timeout=5)
            seen[answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed by server"] += 1
        except (OSError, TimeoutError) as exc:
            seen[f"header cut off by the server ({type(exc).__name__})"] += 1
        finally:
            most[0] = max(most[0], sent)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _idle_one(
    host: str, port: int, until: float, seen: Counter[str], held: list[int]
) -> None:
    """Hold one silent connection; reopen it whenever the server closes it."""
    while time.monotonic() < until:
        if (streams := await _connect(host, port, seen)) is None:
            continue
        reader, writer = streams
        held[0] += 1
        held[1] = max(held[1], held[0])
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), timeout=max(0.0, until - time.monotonic()))
                seen["closed by server"] += 1
        except OSError:
            seen["reset by server"] += 1
        finally:
            held[0] -= 1
            writer.close()


def _bomb() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?><x:gewerbeanzeige.anmeldung.0500 xmlns:x="'
        + NS
        + b'">'
        + b"<e/>" * 2_500_000
        + b"</x:gewerbeanzeige.anmeldung.0500>"
    )


async def _post_loop(
    url: str, until: float, seen: Counter[str], *, token: str, body: bytes
) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=ATTACKER_ADDRESS, retries=0)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    headers["X-Empfaenger"] = RECIPIENT
    async with httpx.AsyncClient(transport=transport, timeout=30, trust_env=False) as client:
        while time.monotonic() < until:
            try:
                r = await client.post(
                    url + "/v1/messages",
                    content=body,
                    headers={**headers, "X-Nachrichten-UUID": secrets.token_hex(16)},
                )
                seen[str(r.status_code)] += 1
                if r.status_code in (429, 503):  # an attacker does not wait for Retry-After
                    await asyncio.sleep(0.01)
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
                await asyncio.sleep(0.05)


async def attack(name: str, url: str, seconds: float, tokens: dict[str, str]) -> dict[str, object]:
    host, port = url.rsplit("//", 1)[1].split(":")
    until = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    held = [0, 0]
    most = [0]
    jobs = []
    names = ATTACKS if name == "all" else (name,)
    if "headers" in names:
        jobs += [_headers(host, int(port), until, seen, most) for _ in range(8)]
    if "idle" in names:
        jobs += [_idle_one(host, int(port), until, seen, held) for _ in range(1100)]
    if "bombs" in names:
        bomb = _bomb()
        for sender in BOMB_SENDERS:
            jobs.append(_post_loop(url, until, seen, token=tokens[sender], body=bomb))
    if "guessing" in names:
        body = messages(1)[0][1]
        jobs += [
            _post_loop(url, until, seen, token=secrets.token_urlsafe(32), body=body)
            for _ in range(8)
        ]
    await asyncio.gather(*jobs)
    return {
        "seen": dict(seen.most_common()),
        "max_held": held[1],
        "most_header_kb": most[0] // 1024,
    }


def attacker_main(name: str, url: str, seconds: float) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    tokens = json.loads(os.environ["BENCH_ATTACK_TOKENS"])
    print(json.dumps(asyncio.run(attack(name, url, seconds, tokens))), flush=True)
    return 0


# ------------------------------------------------------------------------------ normal side


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    attacker: dict[str, object] = field(default_factory=dict)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _sample_rss(pid: int, stop: threading.Event, phase: Phase) -> None:
    while not stop.is_set():
        phase.peak_rss_mb = max(phase.peak_rss_mb, _rss_mb(pid))
        stop.wait(0.02)


async def normal_client(url: str, token: str, seconds: float, phase: Phase) -> None:
    batch = messages(int(seconds * 60) + 10)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/xml",
        "Accept": "application/json",
        "X-Empfaenger": RECIPIENT,
    }
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.1", retries=0)
    async with httpx.AsyncClient(transport=transport, timeout=30, trust_env=False) as client:
        (await client.get(url + "/healthz")).raise_for_status()
        until = time.monotonic() + seconds
        while time.monotonic() < until and batch:
            uid, body = batch.pop()
            start = time.perf_counter()
            try:
                r = await client.post(
                    url + "/v1/messages",
                    content=body,
                    headers={**headers, "X-Nachrichten-UUID": uid},
                )
                phase.latencies.append(time.perf_counter() - start)
                if r.status_code != 202:
                    phase.failures[f"{r.status_code} {r.text[:60]}"] += 1
            except httpx.HTTPError as exc:
                phase.latencies.append(time.perf_counter() - start)
                phase.failures[type(exc).__name__] += 1
            await asyncio.sleep(0.02)


def run_phase(name: str, seconds: float, work: Path, tokens: dict[str, str]) -> Phase:
    phase = Phase(name)
    data = work / name
    data.mkdir()
    port = _free_port()
    env = {"AMTSBOTE_DEV_TOKENS": "off", "AMTSBOTE_DATA_DIR": str(data), **tokens_env(tokens)}
    command = inbox_command(port, f"sqlite:///{data / 'kreis.sqlite'}")
    with running(name, command, port, data / "server.log", env=env) as server:
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(server.process.pid, stop, phase))
        sampler.start()
        attacker = None
        try:
            if name != "baseline":
                attacker = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--attacker",
                        name,
                        "--url",
                        server.url,
                        "--seconds",
                        str(seconds),
                    ],
                    env={**os.environ, "BENCH_ATTACK_TOKENS": json.dumps(tokens)},
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(min(3.0, seconds / 5))  # let the attack build up first
            asyncio.run(normal_client(server.url, tokens[SENDER], seconds, phase))
            if attacker is not None:
                out, _ = attacker.communicate(timeout=seconds + 30)
                phase.attacker = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        finally:
            if attacker is not None and attacker.poll() is None:
                attacker.kill()
            stop.set()
            sampler.join()
    return phase


def tokens_env(tokens: dict[str, str]) -> dict[str, str]:
    directory = Directory.load(AGENCIES)
    return {directory.get(agency).token_env: token for agency, token in tokens.items()}


def report(phases: list[Phase]) -> int:
    base = phases[0]
    print()
    print(
        f"{'phase':<9} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} {'not 202':>7} "
        f"{'peak RSS MB':>11} {'p99 × base':>10} {'RSS × base':>10}  p99<100"
    )
    missed = 0
    for p in phases:
        p99 = p.pct(0.99)
        ok = p99 < 100 and not p.failures
        missed += 0 if ok else 1
        print(
            f"{p.name:<9} {len(p.latencies):>8} {p.pct(0.5):>7.1f} {p99:>7.1f} "
            f"{sum(p.failures.values()):>7} {p.peak_rss_mb:>11.0f} "
            f"{p99 / base.pct(0.99):>10.2f} {p.peak_rss_mb / base.peak_rss_mb:>10.2f}  "
            f"{'ok' if ok else 'MISSED'}"
        )
    for p in phases:
        if p.failures:
            print(f"  {p.name}: normal client saw {dict(p.failures)}")
        if p.attacker:
            held, most = p.attacker.get("max_held"), p.attacker.get("most_header_kb")
            extra = f"; at most {held} connections held at once" if held else ""
            extra += f"; at most {most} KB of one header written (kernel buffers)" if most else ""
            print(f"  {p.name}: attacker saw {p.attacker.get('seen')}{extra}")
    print(
        f"\n{os.cpu_count()} CPU cores shared by the server, the attacker and the normal client; "
        "one run of each phase; the attacker runs in its own process."
    )
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase (default 15)")
    parser.add_argument("--attacks", default=",".join((*ATTACKS, "all")))
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attacker:
        return attacker_main(args.attacker, args.url, args.seconds)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    for a in attacks:
        if a not in (*ATTACKS, "all"):
            parser.error(f"unknown attack {a!r} (known: {', '.join((*ATTACKS, 'all'))})")
    tokens = {a.id: secrets.token_urlsafe(32) for a in Directory.load(write_agencies())}
    phases = []
    with tempfile.TemporaryDirectory(prefix="amtsbote-attack-") as tmp:
        for name in ["baseline", *attacks]:
            phase = run_phase(name, args.seconds, Path(tmp), tokens)
            print(
                f"  {name:<9} p50 {phase.pct(0.5):6.1f} ms  p99 {phase.pct(0.99):7.1f} ms  "
                f"peak RSS {phase.peak_rss_mb:5.0f} MB  not 202: {sum(phase.failures.values())}",
                flush=True,
            )
            phases.append(phase)
    return report(phases)


if __name__ == "__main__":
    sys.exit(main())
