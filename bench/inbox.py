"""Throughput and latency of the inbox service beside a bare FastAPI endpoint, in one run.

::

    .venv/bin/python bench/inbox.py [--n 2000] [--clients 1,8,32]
                                    [--backends bare,sqlite,postgresql]
                                    [--pg-admin postgresql://postgres@127.0.0.1:5432/postgres]

Each server runs in its own subprocess with uvicorn (one worker, the same uvicorn settings as
``amtsbote inbox serve``), on 127.0.0.1:

* ``bare``        — a FastAPI endpoint ``POST /v1/messages`` that reads the body and answers 202
                    with a receipt-sized JSON, storing nothing: the HTTP stack's own cost;
* ``sqlite``      — ``amtsbote inbox serve --agency kreis-paderborn`` on a fresh SQLite file
                    (WAL, synchronous=FULL);
* ``postgresql``  — the same on a fresh PostgreSQL database (created and dropped here).

The load: ``--n`` distinct valid XGewerbeanzeige 0500 messages (the bundled Paderborn sample,
stadt-paderborn → kreis-paderborn, a fresh nachrichtenUUID each) POSTed with the sender's
development token by 1, 8 and 32 concurrent httpx clients (asyncio, keep-alive) from this
process. Every answer must be 202. Printed per backend and concurrency: accepted messages/s,
p50/p99 latency, the server process's CPU time per message, and the ratio of messages/s to bare
at the same concurrency (target: ≥ 0.5 × bare at 32 clients on PostgreSQL, p99 < 50 ms).

The client shares the machine with the server (and PostgreSQL): on a 2-core machine every
figure is bounded by that; the ratio is what compares.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from connectors.directory import dev_token  # noqa: E402

SAMPLE = ROOT / "xoev" / "xgewerbeanzeige" / "samples" / "anmeldung-restaurant-abh-0500.xml"
SAMPLE_UUID = b"6f1c2a44-8d0b-4c3e-9a51-2b7d0e4f5a01"
SENDER, RECIPIENT = "stadt-paderborn", "kreis-paderborn"
OWL_AGENCIES = ROOT / "deployments" / "owl" / "agencies.yaml"
AGENCIES = Path(tempfile.gettempdir()) / f"amtsbote-bench-agencies-{os.getpid()}.yaml"
"""The OWL directory, except that the Kreis Paderborn (channel xta there: its Fachverfahren speak
XTA 2) gets an amtsbote inbox of its own (channel http on 127.0.0.1:8702) for the bench to load."""


def write_agencies() -> Path:
    """Write :data:`AGENCIES` (see there) and return it."""
    text = OWL_AGENCIES.read_text(encoding="utf-8")
    xta = "    channel: xta\n    xta_url: http://127.0.0.1:8702/services/XTAService\n"
    if xta not in text:
        raise SystemExit(
            f"{OWL_AGENCIES}: the Kreis Paderborn's XTA entry changed; adapt the bench"
        )
    atexit.register(AGENCIES.unlink, missing_ok=True)
    AGENCIES.write_text(
        text.replace(xta, "    channel: http\n    endpoint: http://127.0.0.1:8702\n", 1),
        encoding="utf-8",
    )
    return AGENCIES


# ------------------------------------------------------------------------------ bare server


def serve_bare(port: int) -> None:
    """The baseline: FastAPI, same uvicorn settings, no parsing, no storing."""
    from connectors.inbox.server import serve

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/messages", status_code=202)
    async def post_message(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "nachrichtenUUID": request.headers.get("x-nachrichten-uuid", ""),
                "received_at": datetime.now(UTC).isoformat(),
                "sha512": "0" * 128,
                "state": "delivered",
                "size": len(body),
            },
            status_code=202,
        )

    serve(app, host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMTSBOTE_TOKEN_")}
    env.update(
        AMTSBOTE_DEV_TOKENS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(
    name: str,
    command: list[str],
    port: int,
    log: Path,
    *,
    ca: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """The server of ``command`` until the block ends, ready (``/healthz``) when it starts;
    ``ca``: it serves HTTPS with a certificate of this CA; ``env``: added to its environment."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**_env(), **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
    scheme = "https" if ca is not None else "http"
    server = Server(name, process, f"{scheme}://127.0.0.1:{port}")
    verify: str | bool = str(ca) if ca is not None else True
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/healthz", verify=verify, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} server not ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def inbox_command(port: int, database_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))",
        "inbox",
        "serve",
        "--agency",
        RECIPIENT,
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--agencies",
        str(AGENCIES),
        "--log-level",
        "warning",
        *extra,
    ]


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"amtsbote_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------ load


@dataclass
class Result:
    backend: str
    clients: int
    n: int
    seconds: float
    latencies: list[float]
    cpu: float | None
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def messages(n: int) -> list[tuple[str, bytes]]:
    template = SAMPLE.read_bytes()
    if SAMPLE_UUID not in template:
        raise SystemExit(f"{SAMPLE} does not hold the expected nachrichtenUUID")
    out = []
    for _ in range(n):
        uid = str(uuid.uuid4())
        out.append((uid, template.replace(SAMPLE_UUID, uid.encode())))
    return out


async def load(
    url: str, batch: list[tuple[str, bytes]], clients: int
) -> tuple[float, list[float], float]:
    """POST ``batch`` with ``clients`` keep-alive connections; returns (seconds, latencies,
    client CPU seconds). The connections are opened (``GET /healthz``) before the clock starts:
    connecting is not part of a message's latency."""
    headers = {
        "Authorization": f"Bearer {dev_token(SENDER)}",
        "Content-Type": "application/xml",
        "Accept": "application/json",
        "X-Empfaenger": RECIPIENT,
    }
    latencies: list[float] = []
    queue = list(reversed(batch))
    ready = 0
    go = asyncio.Event()

    async def worker() -> None:
        nonlocal ready
        # One client (one keep-alive connection) per worker: httpx's shared pool costs more
        # CPU per request the more connections it holds, which would measure the client.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:
            (await client.get(url + "/healthz")).raise_for_status()
            ready += 1
            if ready == clients:
                go.set()
            await go.wait()
            while queue:
                uid, body = queue.pop()
                start = time.perf_counter()
                response = await client.post(
                    url + "/v1/messages",
                    content=body,
                    headers={**headers, "X-Nachrichten-UUID": uid},
                )
                latencies.append(time.perf_counter() - start)
                if response.status_code != 202:
                    raise RuntimeError(f"{uid}: HTTP {response.status_code} {response.text[:300]}")

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    await go.wait()
    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies, time.process_time() - cpu


def measure(server: Server, n: int, clients: list[int]) -> list[Result]:
    asyncio.run(load(server.url, messages(min(100, n)), 4))  # warm up (schemas, pools)
    results = []
    for c in clients:
        batch = messages(n)
        cpu_before = server.cpu_seconds()
        seconds, latencies, client_cpu = asyncio.run(load(server.url, batch, c))
        cpu_after = server.cpu_seconds()
        cpu = (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None else None
        result = Result(server.name, c, n, seconds, latencies, cpu, client_cpu)
        results.append(result)
        p50, p99 = result.percentile(0.5) * 1000, result.percentile(0.99) * 1000
        print(
            f"  {server.name:<11} c={c:<3} {result.rate:8.0f} msg/s  "
            f"p50 {p50:6.1f} ms  p99 {p99:7.1f} ms",
            flush=True,
        )
    return results


def report(results: list[Result]) -> None:
    bare = {r.clients: r.rate for r in results if r.backend == "bare"}
    print()
    print(
        f"{'backend':<11} {'clients':>7} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/msg':>10} {'client ms':>9} {'vs bare':>8}"
    )
    for r in results:
        ratio = f"{r.rate / bare[r.clients]:8.2f}" if r.clients in bare else f"{'-':>8}"
        cpu = f"{r.cpu / r.n * 1000:10.2f}" if r.cpu is not None else f"{'-':>10}"
        print(
            f"{r.backend:<11} {r.clients:>7} {r.rate:>8.0f} {r.percentile(0.5) * 1000:>8.1f} "
            f"{r.percentile(0.99) * 1000:>8.1f} {cpu} {r.client_cpu / r.n * 1000:>9.2f} {ratio}"
        )
    pg32 = [r for r in results if r.backend == "postgresql" and r.clients == 32]
    if pg32 and 32 in bare:
        pg = pg32[0]
        vs_bare = pg.rate / bare[32]
        p99 = pg.percentile(0.99) * 1000
        print(
            f"\npostgresql at 32 clients: {vs_bare:.2f} × bare (target ≥ 0.5: "
            f"{'ok' if vs_bare >= 0.5 else 'MISSED'}), p99 {p99:.1f} ms (target < 50: "
            f"{'ok' if p99 < 50 else 'MISSED'})"
        )
        print(
            f"  32 clients each waiting for their answer: the mean latency is 32 / rate "
            f"= {32 / pg.rate * 1000:.1f} ms at {pg.rate:.0f} msg/s (Little's law); a p99 under "
            "50 ms needs well over 640 msg/s."
        )
    print(
        f"\n{os.cpu_count()} CPU cores shared by the client, the server and the database. "
        "cpu ms/msg: the server process's CPU per message; client ms: the load client's. "
        "Where the client's CPU per message is about 1 s / (msg/s), the client is the limit "
        "of that row, not the server."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--clients", default="1,8,32", help="concurrencies (default 1,8,32)")
    parser.add_argument("--backends", default="bare,sqlite,postgresql")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get(
            "AMTSBOTE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL URL allowed to CREATE DATABASE (a fresh one is created and dropped)",
    )
    parser.add_argument(
        "--workers", type=int, help="inbox worker threads (amtsbote inbox serve --workers)"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    clients = [int(c) for c in args.clients.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    extra = ("--workers", str(args.workers)) if args.workers else ()
    results: list[Result] = []
    write_agencies()
    with tempfile.TemporaryDirectory(prefix="amtsbote-bench-") as tmp:
        work = Path(tmp)
        size = len(SAMPLE.read_bytes())
        print(f"{args.n} messages per run, {size} bytes each; clients {clients}")
        for backend in backends:
            port = _free_port()
            log = work / f"{backend}.log"
            with contextlib.ExitStack() as stack:
                if backend == "bare":
                    command = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--serve-bare",
                        str(port),
                    ]
                elif backend == "sqlite":
                    command = inbox_command(port, f"sqlite:///{work / 'kreis.sqlite'}", *extra)
                elif backend == "postgresql":
                    try:
                        url = stack.enter_context(pg_database(args.pg_admin))
                    except Exception as exc:
                        print(f"  postgresql: not available ({type(exc).__name__}: {exc}), skipped")
                        continue
                    command = inbox_command(port, url, *extra)
                else:
                    parser.error(f"unknown backend {backend!r}")
                server = stack.enter_context(running(backend, command, port, log))
                results.extend(measure(server, args.n, clients))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
