"""One xdomea Aussonderung of many records and large primary documents, beside a plain file copy.

    .venv/bin/python bench/aussonderung.py [--records 1000] [--mb 200]
                                           [--channels transfer-dir,webdav]
                                           [--prefect-db postgres|sqlite] [--top 0]

The case: a fictitious DMS export (``sample_export``, four-stage) of ``--records`` records
(``records / 5`` Akten: Akte, 2 Vorgänge, 3 Dokumente each) whose archivwürdig primary documents
(2 of the 3 per Akte) total ``--mb`` MiB, handed over (``hand_over``) and run through the flow
``aussonderung`` (0501 → 0504/0502 → 0505 → the records manager's approval, given by a clerk
thread → 0503 with the documents → 0507/0506 → release → close) to the SIMULATED Landesarchiv
(``archive_stub``) on

* ``transfer-dir`` — landesarchiv-owl with ``channel: transfer-dir`` on a local folder;
* ``webdav``       — landesarchiv-owl with ``channel: webdav`` on a wsgidav+cheroot server on
                     127.0.0.1 (plain HTTP, basic auth; run in its own process, so its memory is
                     not counted), the simulated archive reading the share's folder.

Each channel runs in a fresh subprocess of this script (so ``ru_maxrss`` is that case's), with the
city's inboxes and the simulated archive in-process as ``flows.local.LocalInstallation`` starts
them; the Prefect server (one, on PostgreSQL by default) is shared. Printed per channel: the wall
time of the whole case (hand-over + flow run) and of its parts, MiB/s of the handed-over primary
documents, the same bytes copied with ``shutil.copyfile`` in the same subprocess (the baseline) and
the ratio, and the peak memory: ``ru_maxrss`` of the process (target < 300 MiB) and the tracemalloc
peak of Python allocations during the case (tracemalloc slows the case down; ``--no-tracemalloc``
for the time alone). ``--top N`` prints the N biggest allocation sites (tracemalloc, at the
traced peak) — printed anyway when the RSS target is missed. MiB = 2**20 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
RSS_TARGET_MIB = 300
DAV_USER, DAV_PASSWORD = "stadt", "geheim"
_ARCHIVE_HTTP = re.compile(
    r"(  - id: landesarchiv-owl\n(?:    .*\n)*?)    channel: http\n"
    r"    endpoint: .*\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------ WebDAV server


class DavServer:
    """wsgidav + cheroot on 127.0.0.1 serving ``root`` as ``/transfer`` (as tests/test_transfer)."""

    def __init__(self, root: Path, port: int) -> None:
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        self.root, self.port = root, port
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "provider_mapping": {"/transfer": str(root)},
            "simple_dc": {"user_mapping": {"*": {DAV_USER: {"password": DAV_PASSWORD}}}},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "verbose": 0,
            "logging": {"enable": False, "enable_loggers": []},
            "lock_storage": True,
            "property_manager": True,
            "dir_browser": {"enable": False},
        }
        self.server = wsgi.Server(("127.0.0.1", self.port), WsgiDAVApp(config), numthreads=4)
        self.url = f"http://127.0.0.1:{self.port}/transfer"
        self.thread = threading.Thread(target=self.server.safe_start, daemon=True)

    def __enter__(self) -> DavServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.ready:
            if time.monotonic() > deadline:
                raise RuntimeError("wsgidav did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(5)


def serve_dav(root: Path, port: int) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    with DavServer(root, port):
        print("ready", flush=True)
        stop.wait()
    return 0


# ------------------------------------------------------------------------------ one case


def handed_over_documents(folder: Path) -> list[Path]:
    """The archivwürdig documents of the export (the Anmeldung Vorgang's two per Akte)."""
    docs = sorted((folder / "dokumente").iterdir())
    return [p for p in docs if "-ummeldung" not in p.name]


def baseline_copy(files: list[Path], target: Path) -> float:
    target.mkdir(parents=True)
    started = time.perf_counter()
    for f in files:
        shutil.copyfile(f, target / f.name)
    os.sync()  # the case's files end up on disk (the journal fsyncs); so do these
    return time.perf_counter() - started


def start_clerk(journal: Any, stop: threading.Event) -> threading.Thread:
    """The records manager: approves the case once it waits for approval (as ``amtsbote
    approve`` does)."""
    from flows.correlation import approve_case

    def clerk() -> None:
        while not stop.is_set():
            for case in journal.list_cases(status="waiting"):
                events = journal.events(case_id=case.case_id, kind="case.updated")
                if any(e.detail.get("waiting_for") == "approval" for e in events):
                    approve_case(journal, case.case_id, decision="approve", comment="geprüft")
                    return
            stop.wait(0.2)

    t = threading.Thread(target=clerk, name="clerk", daemon=True)
    t.start()
    return t


class PeakWatch:
    """Snapshots tracemalloc whenever the traced memory has grown by ``step`` over the last
    snapshot's, so the allocation sites at (about) the peak can be shown."""

    def __init__(self, step: int = 4 * MIB, interval: float = 0.05) -> None:
        self.step, self.interval = step, interval
        self.snapshot: Any = None
        self.at = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="peak-watch", daemon=True)

    def _run(self) -> None:
        import tracemalloc

        while not self.stop.wait(self.interval):
            current, _ = tracemalloc.get_traced_memory()
            if current > self.at + self.step:
                self.snapshot, self.at = tracemalloc.take_snapshot(), current


def run_case(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix=f"amtsbote-bench-aussonderung-{args.case}-"))
    try:
        return _run_case(args, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_case(args: argparse.Namespace, tmp: Path) -> int:
    import asyncio
    import tracemalloc

    from flows.families.aussonderung.sample_export import write_sample_export

    channel = args.case
    akten = max(1, args.records // 5)
    document_size = max(1, int(args.mb * MIB) // (2 * akten))
    folder = write_sample_export(
        tmp / "export",
        akten=akten,
        document_size=document_size,
        seed=f"bench-{channel}-{uuid.uuid4().hex[:8]}",
    )
    docs = handed_over_documents(folder)
    doc_bytes = sum(p.stat().st_size for p in docs)
    os.sync()
    t_copy = baseline_copy(docs, tmp / "copy")
    shutil.rmtree(tmp / "copy")

    # the directory: the shipped OWL one on free ports, the archive on the channel under test
    text = (ROOT / "deployments" / "owl" / "agencies.yaml").read_text(encoding="utf-8")
    used: set[int] = set()

    def unique_port(_: re.Match[str]) -> str:
        port = free_port()
        while port in used:
            port = free_port()
        used.add(port)
        return f"http://127.0.0.1:{port}"

    text = re.sub(r"http://127\.0\.0\.1:\d+", unique_port, text)
    text = re.sub(r"drop_dir: .*", f"drop_dir: {tmp / 'drop'}", text)
    area = tmp / "transfer" / "landesarchiv-owl"
    area.mkdir(parents=True)
    dav = None
    transfer_roots: dict[str, Path] = {}
    if channel == "transfer-dir":
        lines = f"    channel: transfer-dir\n    transfer_dir: {area}\n"
    else:
        port = free_port()
        dav = subprocess.Popen(
            [sys.executable, __file__, "--_dav", str(area), str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert dav.stdout is not None and dav.stdout.readline().strip() == "ready"
        lines = (
            f"    channel: webdav\n    webdav_url: http://127.0.0.1:{port}/transfer\n"
            "    webdav_user_env: AMTSBOTE_DAV_USER_LAV\n"
            "    webdav_password_env: AMTSBOTE_DAV_PASSWORD_LAV\n"
        )
        transfer_roots = {"landesarchiv-owl": area}
        os.environ.update(
            {"AMTSBOTE_DAV_USER_LAV": DAV_USER, "AMTSBOTE_DAV_PASSWORD_LAV": DAV_PASSWORD}
        )
    text, n = _ARCHIVE_HTTP.subn(lambda m: m.group(1) + lines, text)
    assert n == 1, "landesarchiv-owl not found in the directory"
    agencies = tmp / "agencies.yaml"
    agencies.write_text(text, encoding="utf-8")
    os.environ.update(
        {
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(tmp / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
        }
    )

    from datetime import timedelta

    from connectors.directory import Directory
    from connectors.journal import Journal
    from flows.families.aussonderung.handover import hand_over
    from flows.families.aussonderung.procedures import aussonderung
    from flows.local import LocalInstallation
    from flows.routing import Routing
    from flows.runtime import FlowSettings, Runtime, use_runtime

    directory = Directory.default()
    journal = Journal(f"sqlite:///{tmp / 'data' / 'journal.sqlite'}", create=True)
    rt = Runtime(
        journal=journal,
        directory=directory,
        routing=Routing.default(directory=directory),
        settings=FlowSettings(
            retry_delays=(0.5, 1.0),
            poll_interval=0.5,
            receipt_wait=timedelta(seconds=60),
            suspend=False,
        ),
    )
    use_runtime(rt)
    installation = LocalInstallation(
        directory=directory,
        home="stadt-paderborn",
        home_journal=journal,
        transfer_roots=transfer_roots,
    ).start()
    stop = threading.Event()
    watch = PeakWatch()
    try:
        rss_before = rss_now_mib()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.tracemalloc:
            tracemalloc.start(args.frames)
            watch.thread.start()
        started = time.perf_counter()
        done = hand_over(rt, folder)
        t_handover = time.perf_counter() - started
        maxrss_handover = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        clerk = start_clerk(journal, stop)
        result = asyncio.run(aussonderung(done.message_uuid))
        t_case = time.perf_counter() - started
        traced_peak = 0
        if args.tracemalloc:
            watch.stop.set()
            watch.thread.join(5)
            _, traced_peak = tracemalloc.get_traced_memory()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stop.set()
        clerk.join(5)
        if result.get("status") != "closed" or result.get("outcome") != "archived":
            print(json.dumps({"error": f"case did not close archived: {result}"}), flush=True)
            return 1
        appraised = next(
            e.detail
            for e in journal.events(case_id=result["case_id"])
            if e.kind == "aussonderung.appraised"
        )
        records_over = len(appraised["effective"]["archivwuerdig"])
        [container] = (area / ".archive-done").glob("*0503.zip")
        with zipfile.ZipFile(container) as zf:
            members = [i for i in zf.infolist() if not i.filename.endswith(".xml")]
        sent_bytes = sum(i.file_size for i in members)
        top: list[str] = []
        want_top = args.top or (maxrss > RSS_TARGET_MIB and args.tracemalloc)
        if want_top and watch.snapshot is not None:
            snap = watch.snapshot.filter_traces(
                (
                    tracemalloc.Filter(False, tracemalloc.__file__),
                    tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                )
            )
            for stat in snap.statistics("lineno")[: args.top or 15]:
                frame = stat.traceback[0]
                top.append(
                    f"{stat.size / MIB:8.1f} MiB {stat.count:8d} blocks  "
                    f"{frame.filename}:{frame.lineno}"
                )
        print(
            json.dumps(
                {
                    "channel": channel,
                    "akten": akten,
                    "records": akten * 5,
                    "records_over": records_over,
                    "documents_over": len(members),
                    "doc_bytes": doc_bytes,
                    "sent_bytes": sent_bytes,
                    "document_size": document_size,
                    "t_copy": t_copy,
                    "t_handover": t_handover,
                    "t_case": t_case,
                    "rss_before": rss_before,
                    "maxrss_before": maxrss_before,
                    "maxrss": maxrss,
                    "maxrss_handover": maxrss_handover,
                    "traced_peak": traced_peak / MIB,
                    "traced_at_snapshot": watch.at / MIB,
                    "tracemalloc": args.tracemalloc,
                    "top": top,
                }
            ),
            flush=True,
        )
        return 0
    finally:
        stop.set()
        installation.stop()
        rt.close()
        journal.close()
        use_runtime(None)
        if dav is not None:
            dav.terminate()
            dav.wait(timeout=20)


# ------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--records", type=int, default=1000, help="records in the export, 5 per Akte (default 1000)"
    )
    ap.add_argument(
        "--mb", type=float, default=200, help="MiB of archivwürdig primary documents (default 200)"
    )
    ap.add_argument(
        "--channels",
        default="transfer-dir,webdav",
        help="comma-separated: transfer-dir, webdav (default both)",
    )
    ap.add_argument("--prefect-db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument(
        "--no-tracemalloc",
        dest="tracemalloc",
        action="store_false",
        help="do not trace Python allocations (time without its overhead)",
    )
    ap.add_argument("--frames", type=int, default=1, help="tracemalloc frames (default 1)")
    ap.add_argument(
        "--top",
        type=int,
        default=0,
        help="print the N biggest allocation sites near the traced peak",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument(
        "--_case", dest="case", choices=("transfer-dir", "webdav"), help=argparse.SUPPRESS
    )
    ap.add_argument("--_dav", dest="dav", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dav:
        return serve_dav(Path(args.dav[0]), int(args.dav[1]))
    if args.case:
        return run_case(args)

    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    for c in channels:
        if c not in ("transfer-dir", "webdav"):
            ap.error(f"unknown channel {c!r}")
    command = " ".join([".venv/bin/python", "bench/aussonderung.py", *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="amtsbote-bench-aussonderung-"))
    os.environ.update(
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp / "prefect-client"),
            "PREFECT_LOGGING_LEVEL": "ERROR",
        }
    )
    prefect_db = None
    from flows.local import PrefectServer

    database_url = None
    if args.prefect_db == "postgres":
        prefect_db, pg = create_pg_database("bench_prefect")
        database_url = f"postgresql+asyncpg://{pg}"
    server = PrefectServer(home=tmp / "prefect", port=free_port(), database_url=database_url)
    rows: list[dict[str, Any]] = []
    try:
        server.start()
        os.environ["PREFECT_API_URL"] = server.api_url
        passed = [
            "--records",
            str(args.records),
            "--mb",
            str(args.mb),
            "--frames",
            str(args.frames),
            "--top",
            str(args.top),
        ]
        passed += [] if args.tracemalloc else ["--no-tracemalloc"]
        passed += ["--keep"] if args.keep else []
        for c in channels:
            proc = subprocess.run(
                [sys.executable, __file__, *passed, "--_case", c], stdout=subprocess.PIPE, text=True
            )
            last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
            try:
                row = json.loads(last)
            except json.JSONDecodeError:
                row = {"error": proc.stdout[-2000:]}
            if proc.returncode != 0 or "error" in row:
                print(f"{c}: failed (exit {proc.returncode}): {row.get('error', row)}")
                return 1
            rows.append(row)
    finally:
        server.stop()
        if prefect_db:
            drop_pg_database(prefect_db)
        shutil.rmtree(tmp, ignore_errors=True)

    first = rows[0]
    print(f"command: {command}")
    print(
        f"export: {first['akten']} Akten, {first['records']} records; handed over "
        f"(archivwürdig): {first['records_over']} records, {first['documents_over']} documents "
        f"of {first['document_size'] / MIB:.2f} MiB = {first['sent_bytes'] / MIB:.1f} MiB; "
        f"Prefect server: {args.prefect_db}; tracemalloc: "
        f"{'on' if args.tracemalloc else 'off'}"
    )
    head = (
        f"{'channel':<13} {'case s':>7} {'hand-over s':>11} {'MiB/s':>7} {'copy s':>7} "
        f"{'copy MiB/s':>10} {'ratio':>6} {'RSS peak':>9} {'RSS idle':>9} {'traced':>7}"
    )
    print(head)
    for r in rows:
        mb = r["sent_bytes"] / MIB
        rate, copy_rate = mb / r["t_case"], r["doc_bytes"] / MIB / r["t_copy"]
        traced = f"{r['traced_peak']:6.0f}M" if r["tracemalloc"] else "    -"
        print(
            f"{r['channel']:<13} {r['t_case']:7.1f} {r['t_handover']:11.1f} {rate:7.1f} "
            f"{r['t_copy']:7.2f} {copy_rate:10.1f} {rate / copy_rate:6.3f} "
            f"{r['maxrss']:8.0f}M {r['rss_before']:8.0f}M {traced}"
        )
    print(
        "case s: hand-over + flow run to close; MiB/s: handed-over documents / case s; copy: "
        "shutil.copyfile of the same documents in the same process; ratio: MiB/s against the "
        "copy; RSS peak: ru_maxrss of the case's process (target < "
        f"{RSS_TARGET_MIB} MiB); RSS idle: its RSS before the hand-over (imports, inboxes); "
        "traced: tracemalloc peak of Python allocations during the case"
    )
    for r in rows:
        verdict = "met" if r["maxrss"] < RSS_TARGET_MIB else "MISSED"
        print(
            f"{r['channel']}: peak RSS {r['maxrss']:.0f} MiB (by the end of the hand-over "
            f"{r['maxrss_handover']:.0f} MiB) — target < {RSS_TARGET_MIB} MiB {verdict}"
        )
        if r["top"]:
            print(
                f"  biggest Python allocation sites at ~{r['traced_at_snapshot']:.0f} MiB traced:"
            )
            for line in r["top"]:
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
