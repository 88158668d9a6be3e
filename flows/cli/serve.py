"""``amtsbote serve``: a complete installation on one machine, in the foreground.

::

    amtsbote serve [--port 4200] [--prefect-database-url URL] [--workers N]
                   [--concurrency N] [--simulate-partners] [--no-deploy]
                   [--heartbeat SECONDS]

Brings up, in this order, and stops again on Ctrl-C / SIGTERM (in reverse order):

1. a **Prefect server** — unless ``PREFECT_API_URL`` names one (it must answer): ``prefect server
   start`` on ``127.0.0.1:--port`` with its data in ``<data dir>/prefect`` — SQLite by default,
   PostgreSQL with ``--prefect-database-url`` or ``AMTSBOTE_PREFECT_DATABASE_URL``
   (``postgresql+asyncpg://…``);
2. the **journal** (``AMTSBOTE_DATABASE_URL`` or ``<data dir>/journal.sqlite``), migrated;
3. the **inboxes** of the local agencies of the directory (every ``http`` agency whose endpoint is
   on this machine: loopback or ``localhost``); the home agency's inbox emits
   ``amtsbote.message.accepted`` for every new notification (the deployments' triggers start the
   procedures) and correlates replies. ``--simulate-partners`` also plays the partner agencies
   (the Ausländerbehörde answers, mailbox agencies fetch) — for trials only;
4. the work pool ``amtsbote-process`` with its concurrency limit (``--concurrency``, default
   4 × ``--workers``: flow runs executing at once across the workers; every run is a process
   with its own journal connections; runs waiting for an approval or a reply do not count), the
   deployments of ``prefect.yaml`` (``prefect deploy
   --all`` in ``AMTSBOTE_HOME``, default: the directory of this code), ``amtsbote limits sync``
   and ``amtsbote automations sync`` — skipped with ``--no-deploy``;
5. ``--workers`` process workers (default 1; ``prefect worker start --pool amtsbote-process``
   subprocesses, restarted when they die). Their logs go to ``<data dir>/logs/``.

Then it prints the Prefect UI's URL and runs until interrupted. ``--heartbeat`` sets
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` for the workers (default: Prefect's, 180 s; zombie runs are
marked crashed after three missed heartbeats).

Exit 0 after a clean shutdown, 1 when a worker keeps dying, 2 when something cannot be started
(busy port, unreachable ``PREFECT_API_URL``, unusable directory, a ``prefect deploy --all`` that
makes no deployment at all). When only some deployments of ``prefect.yaml`` fail, a warning names
them and the others are served.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]

POOL = "amtsbote-process"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run a complete installation on this machine (server, inboxes, workers)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port", type=int, default=4200, help="port of the Prefect server started here (4200)"
    )
    p.add_argument(
        "--prefect-database-url",
        metavar="URL",
        help="database of the Prefect server started here (default SQLite; also "
        "AMTSBOTE_PREFECT_DATABASE_URL)",
    )
    p.add_argument("--workers", type=int, default=1, metavar="N", help="process workers to run (1)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="flow runs executing at once across all workers: the work pool's "
        "concurrency limit (default 4 x --workers); each run is a process",
    )
    p.add_argument(
        "--simulate-partners",
        action="store_true",
        help="simulate the partner agencies (replies, mailbox fetches): trials only",
    )
    p.add_argument(
        "--no-deploy",
        action="store_true",
        help="do not create the work pool, deployments, limits and automations",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        metavar="SECONDS",
        help="flow run heartbeat for the workers (>= 30; Prefect's default 180)",
    )
    p.set_defaults(handler=run)


def _say(message: str) -> None:
    print(f"amtsbote serve: {message}", file=sys.stderr, flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _is_local(endpoint: str | None) -> bool:
    from connectors.directory.tokens import is_loopback

    return is_loopback(urlsplit(endpoint or "").hostname or "")


@dataclass
class _Workers:
    """The worker subprocesses, restarted when one dies (at most ``max_restarts`` a minute)."""

    count: int
    cwd: Path
    log_dir: Path
    max_restarts: int = 5
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)

    def start(self, i: int) -> None:
        log = open(self.log_dir / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        name = f"serve-{socket.gethostname()}-{i}"
        self.procs[i] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                POOL,
                "--type",
                "process",
                "--name",
                name,
            ],
            cwd=self.cwd,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def start_all(self) -> None:
        for i in range(self.count):
            self.start(i)

    def supervise(self) -> bool:
        """Restart dead workers; False when they die too often."""
        now = time.monotonic()
        for i, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            self.restarts = [t for t in self.restarts if now - t < 60] + [now]
            if len(self.restarts) > self.max_restarts:
                _say(
                    f"worker {i} keeps dying (exit {proc.returncode}); see "
                    f"{self.log_dir / f'worker-{i}.log'}"
                )
                return False
            _say(f"worker {i} exited with {proc.returncode}; restarting it")
            self.start(i)
        return True

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def _deploy(home: Path, log_dir: Path) -> list[str]:
    """``prefect deploy --all`` in ``home``; returns the deployments of its prefect.yaml that are
    missing on the server afterwards (empty: all there). Raises when none could be made."""
    import asyncio

    import yaml

    out = log_dir / "deploy.log"
    with open(out, "ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
            cwd=home,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
    if done.returncode == 0:
        return []
    config = yaml.safe_load((home / "prefect.yaml").read_text(encoding="utf-8")) or {}
    wanted = [d["name"] for d in config.get("deployments") or [] if d.get("name")]

    async def present() -> set[str]:
        from prefect.client.orchestration import get_client

        async with get_client() as c:
            return {d.name for d in await c.read_deployments()}

    have = asyncio.run(present())
    missing = [n for n in wanted if n not in have]
    if len(missing) == len(wanted):
        raise RuntimeError(
            f"prefect deploy --all failed with exit {done.returncode} and made no "
            f"deployment; see {out}"
        )
    return missing or [f"a deployment (exit {done.returncode}; older versions on the server)"]


def run(args: argparse.Namespace) -> int:
    if args.workers < 0 or (args.concurrency is not None and args.concurrency < 1):
        _say("--workers must be >= 0 and --concurrency >= 1")
        return EXIT_UNUSABLE
    if args.heartbeat is not None:
        if args.heartbeat < 30:
            _say("--heartbeat: Prefect requires at least 30 seconds")
            return EXIT_UNUSABLE
        os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(args.heartbeat)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")

    from connectors.config import Settings, mask_url

    try:
        settings = Settings.from_env()
    except Exception as exc:
        _say(str(exc))
        return EXIT_UNUSABLE
    data_dir = settings.data_dir
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # the workers' flow runs must find the same state whatever their working directory
    os.environ["AMTSBOTE_DATA_DIR"] = str(data_dir)
    os.environ["AMTSBOTE_DATABASE_URL"] = settings.database_url
    # not flows.operations.project_root: Prefect must not be imported before PREFECT_API_URL is
    # final (it reads its settings once, at import)
    from connectors.settings import AmtsboteSettings

    home = (
        AmtsboteSettings.from_environ(only=("home",)).home or Path(__file__).resolve().parents[2]
    ).resolve()
    os.environ["AMTSBOTE_HOME"] = str(home)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: leave at once
            raise KeyboardInterrupt
        _say(f"{signal.Signals(signum).name}: stopping …")
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cleanup: list[tuple[str, Any]] = []
    code = EXIT_OK
    try:
        code = _bring_up(args, settings, home, log_dir, stop, cleanup, mask_url)
    finally:
        for what, fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:  # keep stopping the rest
                _say(f"stopping {what} failed: {type(exc).__name__}: {exc}")
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code == EXIT_OK:
        _say("stopped")
    return code


def _bring_up(
    args: argparse.Namespace,
    settings: Any,
    home: Path,
    log_dir: Path,
    stop: threading.Event,
    cleanup: list[tuple[str, Any]],
    mask_url: Any,
) -> int:
    import httpx

    # 0. the tokens of the agencies the inboxes accept, before anything listens -------------
    from connectors.directory import Directory, DirectoryError
    from connectors.directory.tokens import check_tokens

    try:
        directory = Directory.default()
    except DirectoryError as exc:
        _say(str(exc))
        return EXIT_UNUSABLE
    tokens = check_tokens(directory, host="127.0.0.1")  # the inboxes bind loopback endpoints
    for warning in tokens.warnings:
        _say(f"WARNING: {warning}")
    if not tokens.ok:
        for refusal in tokens.refusals:
            _say(refusal)
        return EXIT_UNUSABLE

    # 1. Prefect server ---------------------------------------------------------------------
    api_url = os.environ.get("PREFECT_API_URL", "").strip()
    if api_url:
        try:
            ok = (
                httpx.get(f"{api_url.rstrip('/')}/health", timeout=5, trust_env=False).status_code
                == 200
            )
        except httpx.HTTPError:
            ok = False
        if not ok:
            _say(
                f"PREFECT_API_URL={api_url} does not answer; start that server or unset the "
                "variable to have one started here"
            )
            return EXIT_UNUSABLE
        ui_url = api_url.rstrip("/").removesuffix("/api")
        _say(f"using the Prefect server at {ui_url}")
    else:
        from ..local import PrefectServer

        if not _port_free(args.port):
            _say(f"port {args.port} is busy; choose another with --port")
            return EXIT_UNUSABLE
        from connectors.settings import AmtsboteSettings

        db = (
            args.prefect_database_url
            or AmtsboteSettings.from_environ(only=("prefect_database_url",)).prefect_database_url
        )
        server = PrefectServer(
            home=settings.data_dir / "prefect",
            port=args.port,
            database_url=db,
            log_file=log_dir / "prefect-server.log",
        )
        _say(
            f"starting a Prefect server on {server.ui_url} "
            f"({'PostgreSQL' if db else 'SQLite'}, data in {settings.data_dir / 'prefect'}) …"
        )
        try:
            server.start()
        except RuntimeError as exc:
            _say(str(exc))
            return EXIT_UNUSABLE
        cleanup.append(("the Prefect server", server.stop))
        os.environ["PREFECT_API_URL"] = server.api_url
        ui_url = server.ui_url
    if stop.is_set():
        return EXIT_OK

    # Prefect is imported from here on, with PREFECT_API_URL set
    import asyncio

    from connectors.directory import Channel
    from connectors.journal import Journal

    from ..correlation import emit_accepted_event
    from ..local import LocalInstallation
    from ..operations import (
        AutomationSettings,
        ensure_work_pool,
        sync_automations,
        sync_limits,
    )
    from ..routing import Routing

    # 2. journal, 3. inboxes ----------------------------------------------------------------
    try:
        routing = Routing.default(directory=directory)
    except (DirectoryError, ValueError) as exc:
        _say(str(exc))
        return EXIT_UNUSABLE
    try:
        from connectors.journal.keyfile import journal_key_for

        journal = Journal(settings.database_url, key=journal_key_for(settings), create=True)
    except Exception as exc:
        _say(f"journal {mask_url(settings.database_url)}: {exc}")
        return EXIT_UNUSABLE
    cleanup.append(("the journal", journal.close))
    remote = frozenset(
        a.id for a in directory if a.channel is Channel.HTTP and not _is_local(a.endpoint)
    )
    installation = LocalInstallation(
        directory=directory,
        home=routing.sender,
        home_journal=journal,
        failing=remote,
        simulate_partners=args.simulate_partners,
        on_notification=emit_accepted_event,
        rejected_dir=settings.data_dir / "xta-rejected",
    )
    try:
        installation.start()
    except Exception as exc:
        installation.stop()
        _say(f"inboxes: {exc}")
        return EXIT_UNUSABLE
    cleanup.append(("the inboxes", installation.stop))
    for agency_id, srv in sorted(installation.servers.items()):
        _say(
            f"inbox {agency_id} on {srv.url}"
            + (" (home: starts the procedures)" if agency_id == routing.sender else "")
        )
    if args.simulate_partners:
        _say("partner agencies SIMULATED (--simulate-partners): not for production")
    if stop.is_set():
        return EXIT_OK

    # 4. work pool, deployments, limits, automations -----------------------------------------
    if not args.no_deploy:
        try:
            concurrency = args.concurrency or max(1, 4 * args.workers)
            asyncio.run(ensure_work_pool(POOL, concurrency_limit=concurrency))
            _say(f"work pool {POOL}: at most {concurrency} flow runs executing at once")
            _say(f"prefect deploy --all in {home} …")
            missing = _deploy(home, log_dir)
            if missing:
                _say(
                    f"WARNING: prefect deploy --all failed for {', '.join(missing)} (see "
                    f"{log_dir / 'deploy.log'}); serving the other deployments"
                )
            limits = asyncio.run(sync_limits(directory))
            from ..operations import with_family_routings

            autos = asyncio.run(
                sync_automations(
                    with_family_routings(routing), AutomationSettings.from_env(), home=home
                )
            )
        except Exception as exc:
            _say(f"deploying failed: {type(exc).__name__}: {exc}")
            return EXIT_UNUSABLE
        _say(
            f"deployments ready; {sum(c.action != 'unchanged' for c in limits)} limit(s) and "
            f"{sum(c.action not in ('unchanged', 'deploy') for c in autos)} automation(s) "
            "changed"
        )
    if stop.is_set():
        return EXIT_OK

    # 5. workers ------------------------------------------------------------------------------
    workers = _Workers(args.workers, cwd=home, log_dir=log_dir)
    workers.start_all()
    cleanup.append(("the workers", workers.stop))
    _say(f"{args.workers} process worker(s) on pool {POOL} (logs in {log_dir})")
    _say(f"journal {mask_url(settings.database_url)}")
    _say(f"ready — Prefect UI: {ui_url}   (Ctrl-C stops everything)")
    _say(
        "amtsbote commands in another shell (approve, redeliver, limits, automations) need: "
        f"export PREFECT_API_URL={os.environ['PREFECT_API_URL']}"
    )
    while not stop.wait(1.0):
        if not workers.supervise():
            return EXIT_FINDINGS
    return EXIT_OK
