"""Cases per second with process workers on PostgreSQL, beside a single-process baseline.

::

    .venv/bin/python bench/cluster.py [--cases 200] [--workers 1,2,4] [--mix 4:4:0:2]
                                      [--timeout 3600] [--no-baseline]

One run of this script: a Prefect server on a fresh PostgreSQL database (127.0.0.1:5432, user
postgres), the OWL agencies' inboxes on free loopback ports (in this process, like
``amtsbote serve``), the deployments of ``prefect.yaml`` (``prefect deploy --all``), ``amtsbote
limits sync`` and ``automations sync``. Then, each on a fresh journal database, the same
``--cases`` notifications are submitted through the city's inbox. ``--mix`` gives the proportions
of Abmeldung : Ummeldung : Anmeldung of the restaurant by a non-EU national (consultation of the
Ausländerbehörde, then a clerk's approval) : the same by a German national (approval only); the
simulated clerk approves at once through ``amtsbote approve``'s code path.

* **single process** — the baseline: the notifications start in-process flow runs (as the demo
  does: ``flows.procedures`` called in this process, pausing instead of suspending), all in one
  event loop;
* **N process workers** for each N of ``--workers``: the inbox hook emits
  ``amtsbote.message.accepted``, the deployments' triggers create the flow runs, ``prefect worker
  start --pool amtsbote-process`` subprocesses run them (a subprocess per flow run; a run that
  waits is suspended and executed again from its entrypoint when resumed).

Printed: wall time from the first submission until every case is closed (or failed), cases/s,
flow-run executions (process starts) per second and the ratio to the baseline. The Prefect
server, the inboxes and this harness share the machine's cores with the workers, as in a
one-machine installation.

The :class:`Cluster` harness is also used by ``tests/test_cluster.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get(
    "AMTSBOTE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
HOME_AGENCY = "stadt-paderborn"
PORTAL = "wsp-nrw"
#: What the portal submits: the three notification samples, and the restaurant's Anmeldung by a
#: German national (``anmeldung-de``: approval, no consultation of the Ausländerbehörde).
KINDS = ("abmeldung", "ummeldung", "anmeldung", "anmeldung-de")


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_agencies(
    target: Path, *, drop_dir: Path, concurrency: dict[str, int] | None = None
) -> Path:
    """The shipped OWL directory with every loopback endpoint on a free port, the file drop in
    ``drop_dir`` and, optionally, other ``concurrency`` values for some agencies."""
    text = (ROOT / "deployments" / "owl" / "agencies.yaml").read_text(encoding="utf-8")
    text = re.sub(r"http://127\.0\.0\.1:\d+", lambda m: f"http://127.0.0.1:{free_port()}", text)
    text = re.sub(r"drop_dir: .*", f"drop_dir: {drop_dir}", text)
    for agency_id, value in (concurrency or {}).items():
        pattern = re.compile(rf"(- id: {re.escape(agency_id)}\n(?:    .*\n)*?    concurrency: )\d+")
        text, n = pattern.subn(rf"\g<1>{value}", text)
        if n != 1:
            raise ValueError(f"agency {agency_id} has no concurrency line in the OWL directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def create_database(prefix: str, *, driver: str = "psycopg") -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database: ``(SQLAlchemy URL, drop)``."""
    import psycopg

    name = f"{prefix}_{uuid_module.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base.replace('postgresql://', f'postgresql+{driver}://', 1)}/{name}", drop


def descendants(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def flow_run_of(pid: int) -> str | None:
    """The flow run a process executes (``PREFECT__FLOW_RUN_ID`` in its environment)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


class InFlight:
    """ASGI middleware (instrumentation, not product code): counts the ``POST /v1/messages`` in
    flight at an inbox and remembers the highest count; ``delay`` seconds are added to each such
    request so that concurrent senders overlap."""

    def __init__(self, app: Any, *, delay: float = 0.0) -> None:
        self.app, self.delay = app, delay
        self.now = 0
        self.max = 0
        self.requests = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or scope.get("path") != "/v1/messages"
        ):
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.now += 1
            self.requests += 1
            self.max = max(self.max, self.now)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.now -= 1


# --------------------------------------------------------------------------- the cluster


@dataclass
class ClusterOptions:
    workers: int = 2
    runs_per_worker: int = 4
    """The work pool's concurrency limit is ``workers × runs_per_worker`` flow runs executing at
    once (:func:`flows.operations.ensure_work_pool`): each is a process with its own journal
    connections; without a limit a burst of notifications starts one process per run at once
    and exhausts memory and PostgreSQL's connections."""
    heartbeat: int = 30
    """PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers (Prefect's minimum: 30)."""
    zombie_after: float = 75.0
    max_crashes: int = 3
    tracked: dict[str, float] = field(default_factory=dict)
    """Agency id → extra seconds per request: inboxes wrapped in :class:`InFlight`."""
    concurrency: dict[str, int] = field(default_factory=dict)
    """Agency id → concurrency written into this cluster's directory."""
    reply_within: dict[str, str] = field(default_factory=dict)
    query_seconds: float = 1.0
    auto_approve: bool = True
    limits: bool = True
    automations: bool = True
    deploy: bool = True
    deployments: tuple[str, ...] | None = (
        "gewerbeanmeldung",
        "gewerbeummeldung",
        "gewerbeabmeldung",
        "redeliver",
    )
    """prefect.yaml deployments to create (``prefect deploy --name …``); None: ``--all``."""
    log_dir: Path | None = None


class Cluster:
    """A Prefect installation on one machine as in production, for tests and benchmarks: the
    inboxes (this process), ``prefect deploy --all``, limits, automations and process workers
    (subprocesses). The Prefect server is the one ``PREFECT_API_URL`` names."""

    def __init__(
        self, tmp: Path, *, journal_url: str, options: ClusterOptions | None = None
    ) -> None:
        self.tmp = tmp
        self.journal_url = journal_url
        self.opts = options or ClusterOptions()
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.trackers: dict[str, InFlight] = {}
        self.killed_runs: list[str] = []
        self._generation = 0
        self._stop = threading.Event()
        self.approving = threading.Event()
        """Cleared: the simulated clerk approves nothing until it is set again."""
        self.approving.set()
        self._threads: list[threading.Thread] = []
        self._old_env: dict[str, str | None] = {}
        self.installation: Any = None
        self.journal: Any = None
        self.rt: Any = None

    # ------------------------------------------------------------------ environment

    @property
    def log_dir(self) -> Path:
        d = self.opts.log_dir or self.tmp / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _set_env(self) -> dict[str, str]:
        agencies = write_agencies(
            self.tmp / "agencies.yaml",
            drop_dir=self.tmp / "drop",
            concurrency=self.opts.concurrency,
        )
        env = {
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(self.tmp / "data"),
            "AMTSBOTE_DATABASE_URL": self.journal_url,
            "AMTSBOTE_DEV_TOKENS": "1",
            "AMTSBOTE_HOME": str(ROOT),
            "AMTSBOTE_SEND_RETRY_DELAYS": "0.5,1,2,5",
            "AMTSBOTE_RECEIPT_WAIT": "PT60S",
            "AMTSBOTE_POLL_INTERVAL": "0.5",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(self.opts.heartbeat),
            "PREFECT_WORKER_QUERY_SECONDS": str(self.opts.query_seconds),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        for k, v in env.items():
            self._old_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v
        return env

    def _restore_env(self) -> None:
        for k, v in self._old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._old_env.clear()

    # ------------------------------------------------------------------ start / stop

    def start(self) -> Cluster:
        from connectors.directory import Directory
        from connectors.inbox import InboxServer, create_app
        from connectors.journal import Journal
        from flows.correlation import emit_accepted_event
        from flows.local import LocalInstallation
        from flows.routing import Routing
        from flows.runtime import FlowSettings, Runtime, use_runtime

        self._set_env()
        self.directory = Directory.default()
        self.routing = Routing.default(directory=self.directory)
        self.journal = Journal.from_env(create=True)  # same key as the workers (key file)
        self.rt = Runtime(
            journal=self.journal,
            directory=self.directory,
            routing=self.routing,
            settings=FlowSettings.from_env(),
        )
        use_runtime(self.rt)
        self.installation = LocalInstallation(
            directory=self.directory,
            home=HOME_AGENCY,
            home_journal=self.journal,
            simulate_partners=True,
            on_notification=emit_accepted_event,
        ).start()
        for agency_id, delay in self.opts.tracked.items():  # the same inbox, instrumented
            self.installation.servers.pop(agency_id).stop()
            agency = self.directory.get(agency_id)
            app = create_app(
                agency_id, journal=self.installation.journal_of(agency_id), directory=self.directory
            )
            tracker = InFlight(app, delay=delay)
            port = int(str(agency.endpoint).rsplit(":", 1)[1].split("/")[0])
            self.installation.servers[agency_id] = InboxServer(tracker, port=port).start()
            self.trackers[agency_id] = tracker
        from flows.operations import ensure_work_pool

        asyncio.run(
            ensure_work_pool(
                concurrency_limit=max(1, self.opts.workers * self.opts.runs_per_worker)
            )
        )
        if self.opts.deploy:
            self.deploy()
        for i in range(self.opts.workers):
            self.start_worker(i)
        if self.opts.auto_approve:
            self._spawn(self._clerk, "clerk")
        return self

    def deploy(self) -> None:
        """The procedures' deployments of ``prefect.yaml`` (``prefect deploy --name …`` from the
        project root; ``--all`` with ``deployments=None``), limits, automations."""
        from flows.operations import AutomationSettings, sync_automations, sync_limits
        from flows.routing import parse_duration

        env = dict(os.environ)
        out = self.log_dir / "deploy.log"
        with open(out, "ab") as log:
            which = (
                ["--all"]
                if self.opts.deployments is None
                else [a for n in self.opts.deployments for a in ("--name", n)]
            )
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "--no-prompt", "deploy", *which],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=300,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"prefect deploy {' '.join(which)} failed ({done.returncode}); see {out}"
            )
        if self.opts.limits:
            asyncio.run(sync_limits(self.directory))
        if self.opts.automations:
            settings = AutomationSettings(
                heartbeat_seconds=self.opts.heartbeat,
                zombie_after=timedelta(seconds=self.opts.zombie_after),
                max_crashes=self.opts.max_crashes,
                reply_within={k: parse_duration(v) for k, v in self.opts.reply_within.items()},
            )
            from flows.operations import with_family_routings

            routing = with_family_routings(self.routing)
            asyncio.run(sync_automations(routing, settings, home=ROOT))

    def start_worker(self, i: int) -> subprocess.Popen[bytes]:
        self._generation += 1
        log = open(self.log_dir / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                "amtsbote-process",
                "--type",
                "process",
                "--name",
                f"cluster-{i}-{self._generation}",
            ],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.workers[i] = proc
        return proc

    def flow_run_processes(self, i: int) -> dict[int, str]:
        """pid → flow run id of the flow runs worker ``i`` executes right now."""
        proc = self.workers.get(i)
        if proc is None or proc.poll() is not None:
            return {}
        out = {}
        for pid in descendants(proc.pid):
            run = flow_run_of(pid)
            if run:
                out[pid] = run
        return out

    def kill_worker(self, i: int) -> list[str]:
        """``kill -9`` worker ``i`` and every process it started (the machine is gone); returns
        the flow runs that were executing there."""
        proc = self.workers.pop(i)
        victims = descendants(proc.pid)
        runs = sorted({r for r in (flow_run_of(p) for p in victims) if r})
        for pid in [proc.pid, *victims]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        self.killed_runs.extend(runs)
        return runs

    def stop_worker(self, i: int) -> None:
        proc = self.workers.pop(i, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        from flows.runtime import use_runtime

        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        for i in list(self.workers):
            self.stop_worker(i)
        if self.installation is not None:
            self.installation.stop()
        if self.rt is not None:
            self.rt.close()
        if self.journal is not None:
            self.journal.close()
        use_runtime(None)
        self._restore_env()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ work

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _clerk(self) -> None:
        """Approves every case that waits for approval, through ``amtsbote approve``'s code."""
        from flows.correlation import approve_case

        done: set[str] = set()
        while not self._stop.wait(0.5):
            if not self.approving.is_set():
                continue
            try:
                for case in self.journal.list_cases(status="waiting"):
                    if case.case_id in done:
                        continue
                    events = self.journal.events(case_id=case.case_id, kind="case.updated")
                    if any(
                        e.detail.get("waiting_for") == "approval" for e in events
                    ) and approve_case(
                        self.journal,
                        case.case_id,
                        decision="approve",
                        comment="geprüft",
                        via="clerk",
                    ):
                        done.add(case.case_id)  # else: not suspended yet, try again
            except Exception as exc:  # keep approving; the run takes the decision later
                print(f"clerk: {type(exc).__name__}: {exc}", file=sys.stderr)

    def submit(self, kind: str) -> str:
        """The portal posts a notification (``kind`` abmeldung/ummeldung/anmeldung) to the
        city's inbox; returns its nachrichtenUUID."""
        return submit(self.directory, kind)

    def case_of(self, nachrichten_uuid: str) -> Any:
        from connectors.journal import Direction

        msg = self.journal.get_message(nachrichten_uuid, direction=Direction.INBOUND)
        return self.journal.get_case(msg.case_id) if msg.case_id else None

    def wait_closed(
        self, uuids: Iterable[str], *, timeout: float, on_tick: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Wait until every notification has a closed case; returns uuid → case."""
        pending = set(uuids)
        cases: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for u in list(pending):
                case = self.case_of(u)
                if case is not None and case.status.value in ("closed", "failed"):
                    cases[u] = case
                    pending.discard(u)
            if on_tick:
                on_tick()
            if pending:
                time.sleep(0.5)
        if pending:
            raise TimeoutError(f"{len(pending)} of the cases not finished after {timeout:g} s")
        return cases

    def audit(self, cases: dict[str, Any]) -> list[str]:
        """What went wrong with ``cases`` (uuid → case, from :meth:`wait_closed`), as texts; an
        empty list is the proof asked for: every notification has its own case, every case is
        closed and was closed exactly once; one outbound message per (case, message type,
        recipient), each delivered or fetched; every recipient's inbox holds exactly the
        nachrichtenUUIDs the home journal sent it, each once (file drop and mailbox included);
        no tracked agency ever had more requests in flight than its concurrency."""
        from collections import Counter

        from connectors.journal import Direction

        problems: list[str] = []
        j = self.journal
        if len({c.case_id for c in cases.values()}) != len(cases):
            problems.append("two notifications share a case")
        statuses = Counter(c.status.value for c in cases.values())
        if set(statuses) != {"closed"}:
            problems.append(f"cases not closed: {dict(statuses)}")
        for case in cases.values():
            closings = [
                e
                for e in j.events(case_id=case.case_id, kind="case.updated")
                if e.detail.get("to") == "closed"
            ]
            if len(closings) != 1:
                problems.append(f"case {case.case_id} closed {len(closings)} times")
        case_ids = {c.case_id for c in cases.values()}
        outbound = [d for d in j.deliveries(direction=Direction.OUTBOUND) if d.case_id in case_ids]
        states = {d.state.value for d in outbound}
        if not states <= {"delivered", "fetched"}:
            problems.append(f"outbound deliveries in states {sorted(states)}")
        types = {
            m.nachrichten_uuid: m.message_type for m in j.messages(direction=Direction.OUTBOUND)
        }
        per_rule = Counter((d.case_id, types[d.nachrichten_uuid], d.recipient) for d in outbound)
        problems += [f"{key} sent {n} times" for key, n in per_rule.items() if n > 1]
        sent_to: dict[str, list[str]] = {}
        for d in outbound:
            sent_to.setdefault(d.recipient, []).append(d.nachrichten_uuid)
        for agency_id in self.installation.servers:
            if agency_id == HOME_AGENCY:
                continue
            received = [
                m.nachrichten_uuid
                for m in self.installation.journal_of(agency_id).messages(
                    direction=Direction.INBOUND
                )
            ]
            if len(received) != len(set(received)):
                problems.append(f"{agency_id} stored a nachrichtenUUID twice")
            if sorted(received) != sorted(sent_to.get(agency_id, [])):
                problems.append(
                    f"{agency_id} holds {len(received)} messages, the home journal "
                    f"sent it {len(sent_to.get(agency_id, []))}"
                )
        drops = sorted(p.stem for p in (self.tmp / "drop").glob("*.xml"))
        if drops != sorted(sent_to.get("finanzamt-paderborn", [])):
            problems.append(
                f"file drop holds {len(drops)} files, sent "
                f"{len(sent_to.get('finanzamt-paderborn', []))}"
            )
        for agency_id, tracker in self.trackers.items():
            limit = self.directory.get(agency_id).concurrency
            if tracker.max > limit:
                problems.append(f"{agency_id}: {tracker.max} requests in flight, limit {limit}")
        return problems


_SAMPLES: dict[str, bytes] = {}
_NATIONALITY = re.compile(rb"(<xga:staatsangehoerigkeitSchluessel\b[^>]*>\s*<code>)\d+(</code>)")


def _sample(kind: str) -> bytes:
    if not _SAMPLES:
        from xoev.xgewerbeanzeige import notifications

        for s in notifications():
            for k in KINDS[:3]:
                if s.path.name.startswith(f"notification-{k}"):
                    _SAMPLES[k] = s.path.read_bytes()
        german, n = _NATIONALITY.subn(rb"\g<1>000\g<2>", _SAMPLES["anmeldung"])
        if n == 0:
            raise ValueError("the restaurant sample names no nationality to change")
        _SAMPLES["anmeldung-de"] = german
    return _SAMPLES[kind]


def submit(directory: Any, kind: str) -> str:
    from connectors.senders import OutgoingMessage, sender_for
    from flows.local import behoerde
    from xoev.nachrichtenkopf import Nachrichtenkopf
    from xoev.xgewerbeanzeige import v2_2

    model = v2_2.parse(_sample(kind))
    kopf = Nachrichtenkopf.neu(
        nachrichtentyp="0010",
        leser=behoerde(directory.get(HOME_AGENCY)),
        autor=behoerde(directory.get(PORTAL)),
    )
    payload = v2_2.build(v2_2.project(model, "gwa.gewerbemeldung.0010", kopf=kopf))
    with sender_for(HOME_AGENCY, directory) as sender:
        sender.send(
            OutgoingMessage(
                payload=payload,
                nachrichten_uuid=kopf.nachrichten_uuid,
                recipient=HOME_AGENCY,
                sender=PORTAL,
            )
        )
    return kopf.nachrichten_uuid


def mix_kinds(n: int, mix: tuple[int, ...]) -> list[str]:
    """``n`` kinds in the proportions ``mix`` (in the order of :data:`KINDS`; missing = 0),
    interleaved."""
    if len(mix) > len(KINDS):
        raise ValueError(f"mix: at most {len(KINDS)} numbers ({':'.join(KINDS)})")
    pattern = [k for k, count in zip(KINDS, mix, strict=False) for _ in range(count)]
    if not pattern:
        raise ValueError("empty mix")
    return [pattern[i % len(pattern)] for i in range(n)]


def executions_per_kind() -> dict[str, int]:
    """Flow-run executions per case (a suspended run is executed again when resumed)."""
    return {"abmeldung": 1, "ummeldung": 1, "anmeldung": 3, "anmeldung-de": 2}


# --------------------------------------------------------------------------- benchmark


def _baseline(tmp: Path, kinds: list[str], timeout: float) -> float:
    """Single process: in-process flow runs started by the inbox hook (as the demo does)."""
    from connectors.directory import Directory
    from connectors.journal import Journal
    from flows.correlation import approve_case
    from flows.local import LocalInstallation
    from flows.procedures import PROCEDURES
    from flows.routing import Routing
    from flows.runtime import FlowSettings, Runtime, use_runtime

    journal_url, drop = create_database("amtsbote_bench_journal")
    agencies = write_agencies(tmp / "agencies.yaml", drop_dir=tmp / "drop")
    old = {
        k: os.environ.get(k)
        for k in (
            "AMTSBOTE_AGENCIES",
            "AMTSBOTE_DATA_DIR",
            "AMTSBOTE_DEV_TOKENS",
            "AMTSBOTE_DATABASE_URL",
        )
    }
    os.environ.update(
        {
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(tmp / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
            "AMTSBOTE_DATABASE_URL": journal_url,
        }
    )
    directory = Directory.default()
    journal = Journal.from_env(create=True)  # the key of the data dir, as the workers
    rt = Runtime(
        journal=journal,
        directory=directory,
        routing=Routing.default(directory=directory),
        settings=FlowSettings(
            retry_delays=(0.5, 1, 2, 5),
            poll_interval=0.5,
            receipt_wait=timedelta(seconds=60),
            suspend=False,
        ),
    )
    use_runtime(rt)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[Any]] = []

        def on_notification(u: str, procedure: str) -> None:
            loop.call_soon_threadsafe(
                lambda: tasks.append(loop.create_task(PROCEDURES[procedure](message_uuid=u)))
            )

        installation = LocalInstallation(
            directory=directory,
            home=HOME_AGENCY,
            home_journal=journal,
            on_notification=on_notification,
        )
        installation.start()
        stop = asyncio.Event()

        async def clerk() -> None:
            done: set[str] = set()
            while not stop.is_set():
                await asyncio.sleep(0.5)
                for case in journal.list_cases(status="waiting"):
                    ev = journal.events(case_id=case.case_id, kind="case.updated")
                    if case.case_id not in done and any(
                        e.detail.get("waiting_for") == "approval" for e in ev
                    ):
                        done.add(case.case_id)
                        await asyncio.to_thread(
                            approve_case, journal, case.case_id, decision="approve", via="clerk"
                        )

        clerk_task = loop.create_task(clerk())
        try:
            t0 = time.perf_counter()
            for k in kinds:
                await asyncio.to_thread(submit, directory, k)
            while len(tasks) < len(kinds):
                await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout)
            return time.perf_counter() - t0
        finally:
            stop.set()
            clerk_task.cancel()
            installation.stop()

    try:
        return asyncio.run(run())
    finally:
        rt.close()
        journal.close()
        use_runtime(None)
        drop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cluster_run(
    tmp: Path, kinds: list[str], workers: int, timeout: float, deploy: bool
) -> tuple[float, int, dict[str, int], list[str]]:
    journal_url, drop = create_database("amtsbote_bench_journal")
    opts = ClusterOptions(
        workers=workers,
        deploy=deploy,
        heartbeat=60,
        zombie_after=240,
        tracked={"bezreg-detmold": 0.0, "it-nrw": 0.0},
    )
    cluster = Cluster(tmp, journal_url=journal_url, options=opts)
    try:
        cluster.start()
        time.sleep(5)  # the workers register and poll
        t0 = time.perf_counter()
        uuids = [cluster.submit(k) for k in kinds]
        cases = cluster.wait_closed(uuids, timeout=timeout)
        elapsed = time.perf_counter() - t0
        closed = sum(1 for c in cases.values() if c.status.value == "closed")
        problems = cluster.audit(cases)
        return elapsed, closed, {a: t.max for a, t in cluster.trackers.items()}, problems
    finally:
        cluster.stop()
        drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument(
        "--mix",
        default="4:4:0:2",
        help="Abmeldung:Ummeldung:Anmeldung:Anmeldung-de (German national: "
        "approval, no consultation)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    mix = tuple(int(x) for x in args.mix.split(":"))
    if not 1 <= len(mix) <= len(KINDS):
        parser.error(f"--mix: up to {len(KINDS)} numbers")
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    kinds = mix_kinds(args.cases, mix)
    executions = sum(executions_per_kind()[k] for k in kinds)

    import tempfile

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    tmp = Path(tempfile.mkdtemp(prefix="amtsbote-bench-cluster-"))
    prefect_url, drop_prefect = create_database("amtsbote_bench_prefect", driver="asyncpg")
    port = free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
    from flows.local import PrefectServer

    server = PrefectServer(home=tmp / "prefect-server", port=port, database_url=prefect_url)
    print(f"Prefect server on PostgreSQL ({server.ui_url}) …", flush=True)
    server.start()
    rows: list[tuple[str, float, int]] = []
    try:
        from connectors.directory import Directory
        from flows.operations import sync_limits

        # the baseline pays for the per-agency limits too (the agency ids are the OWL ones)
        asyncio.run(sync_limits(Directory.load(ROOT / "deployments" / "owl" / "agencies.yaml")))
        print(
            f"{args.cases} cases (mix {args.mix} Ab:Um:An:An-de = {executions} flow-run "
            f"executions in processes), {os.cpu_count()} cores",
            flush=True,
        )
        base = None
        if not args.no_baseline:
            base = _baseline(tmp / "baseline", kinds, args.timeout)
            rows.append(("single process (in-process flow runs)", base, args.cases))
            print(f"  single process: {base:.1f} s", flush=True)
        deploy = True
        for w in counts:
            elapsed, closed, peaks, problems = _cluster_run(
                tmp / f"workers-{w}", kinds, w, args.timeout, deploy
            )
            deploy = False
            rows.append((f"{w} process worker(s)", elapsed, closed))
            verdict = (
                "audit ok: every case closed exactly once, every message delivered "
                "once, no limit exceeded"
                if not problems
                else "AUDIT FAILED: " + "; ".join(problems[:10])
            )
            print(
                f"  {w} worker(s): {elapsed:.1f} s, peak in-flight {peaks}; {verdict}", flush=True
            )
    finally:
        server.stop()
        drop_prefect()
    print()
    print(f"{'configuration':40} {'wall s':>8} {'cases/s':>8} {'executions/s':>13} {'vs base':>8}")
    for name, secs, closed in rows:
        ratio = f"{base / secs:.2f}x" if base else "-"
        execs = executions if "worker" in name else 0
        per_exec = f"{execs / secs:13.2f}" if execs else f"{'-':>13}"
        print(f"{name:40} {secs:8.1f} {closed / secs:8.2f} {per_exec} {ratio:>8}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
