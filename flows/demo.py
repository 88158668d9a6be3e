"""``amtsbote demo``: the Gewerbe procedures of the Stadt Paderborn, end to end, on one machine.

Starts a local Prefect server (unless ``PREFECT_API_URL`` names a reachable one), the inboxes of the
OWL agencies on loopback and their simulated clerks and systems, submits three notifications from
the Wirtschafts-Service-Portal.NRW to the Gewerbeamt's inbox — an Anmeldung of a restaurant by a
non-EU national (consultation of the Ausländerbehörde, Lebensmittelüberwachung at the Kreis,
Arbeitsschutz at the Bezirksregierung, approval of the Gaststätte), an Ummeldung and an Abmeldung —
runs every case to its end and prints what happened. Approvals are given automatically, and the
demo says so. ``--fail AGENCY`` keeps that agency's inbox down: its deliveries are retried, become
dead letters, and the printed ``amtsbote redeliver`` command completes the case once the agency is
back.

Must be imported after ``PREFECT_API_URL`` is set (see :func:`main`).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DemoOptions", "main"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DemoOptions:
    fail: tuple[str, ...] = ()
    data_dir: Path = ROOT / "var" / "demo"
    prefect_home: Path = ROOT / "var" / "prefect"
    keep_running: bool = False
    redeliver: bool = True
    timeout: float = 300.0
    out: TextIO = field(default_factory=lambda: sys.stdout)


def _drain_prefect() -> None:
    """Send the logs and events still queued before the server goes away."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()
        EventsWorker.drain_all(timeout=10)
    except Exception:  # pragma: no cover - best effort on shutdown
        pass


def _quiet_console(run_dir: Path) -> Path:
    """The demo prints its own account; Prefect's console lines would only repeat it, and the
    expected failures of ``--fail`` would print their tracebacks. Every log record (WARNING and
    up, tracebacks included) goes to ``<run dir>/demo.log`` instead; returns that path."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    log_file = run_dir / "demo.log"
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setLevel(logging.WARNING)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(to_file)
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)
    return log_file


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare_environment(opts: DemoOptions, run_dir: Path) -> None:
    os.environ["AMTSBOTE_DATA_DIR"] = str(run_dir)
    os.environ.pop("AMTSBOTE_DATABASE_URL", None)
    os.environ["AMTSBOTE_DEV_TOKENS"] = "1"
    os.environ.setdefault("AMTSBOTE_SEND_RETRY_DELAYS", "0.5,1,2")
    os.environ.setdefault("AMTSBOTE_RECEIPT_WAIT", "PT30S")
    os.environ.setdefault("AMTSBOTE_POLL_INTERVAL", "1")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def demo_command(command: str, *, prefect: bool = False) -> str:
    """``command`` (an ``amtsbote …`` line) as an operator runs it against this demo, in another
    shell: with the demo's data dir (journal and key), directory file, development tokens and
    short retry delays — and its Prefect server when the command talks to Prefect."""
    names = ["AMTSBOTE_AGENCIES", "AMTSBOTE_DATA_DIR"]
    if prefect:
        names += ["AMTSBOTE_DEV_TOKENS", "AMTSBOTE_SEND_RETRY_DELAYS", "PREFECT_API_URL"]
    env = {name: os.environ[name] for name in names if os.environ.get(name)}
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"{prefix} {command}" if prefix else command


def _redeliver_command(case_id: str) -> str:
    return demo_command(f"amtsbote redeliver --case {shlex.quote(case_id)}", prefect=True)


def main(opts: DemoOptions) -> int:
    out = opts.out
    run_dir = (opts.data_dir / datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _prepare_environment(opts, run_dir)

    server = None
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        import httpx

        try:
            ok = (
                httpx.get(f"{api_url.rstrip('/')}/health", timeout=3, trust_env=False).status_code
                == 200
            )
        except httpx.HTTPError:
            ok = False
        if not ok:
            print(
                f"PREFECT_API_URL={api_url} does not answer; start that server or unset the "
                "variable to let the demo start its own",
                file=sys.stderr,
            )
            return 2
    else:
        from .local import PrefectServer

        port = 4200 if _port_free(4200) else _free_port()
        server = PrefectServer(home=opts.prefect_home, port=port)
        print(
            f"starting a local Prefect server on {server.ui_url} (data in {opts.prefect_home}) …",
            file=out,
            flush=True,
        )
        server.start()
        os.environ["PREFECT_API_URL"] = server.api_url
    try:
        return asyncio.run(
            _run(
                opts,
                run_dir,
                server.ui_url if server else os.environ["PREFECT_API_URL"].removesuffix("/api"),
            )
        )
    finally:
        _drain_prefect()
        if server is not None:
            if opts.keep_running:
                print(f"\nPrefect UI stays up at {server.ui_url} — Ctrl-C to stop", file=out)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            server.stop()


async def _run(opts: DemoOptions, run_dir: Path, ui_url: str) -> int:
    from connectors.directory import Channel, Directory
    from connectors.journal import DeliveryState, Direction, Journal
    from connectors.senders import OutgoingMessage, sender_for
    from xoev.nachrichtenkopf import Nachrichtenkopf
    from xoev.xgewerbeanzeige import notifications as sample_notifications
    from xoev.xgewerbeanzeige import v2_2

    from .blocks import delivery_rows
    from .correlation import approve_case
    from .exceptions import DeadLetters
    from .local import LocalInstallation, behoerde
    from .procedures import PROCEDURES, redeliver
    from .routing import Routing
    from .runtime import FlowSettings, Runtime, use_runtime

    out = opts.out
    log_file = _quiet_console(run_dir)
    directory = Directory.default()
    routing = Routing.default(directory=directory)
    for agency_id in opts.fail:
        if agency_id not in directory:
            print(
                f"amtsbote demo: --fail {agency_id}: unknown agency "
                f"(known: {', '.join(a.id for a in directory)})",
                file=sys.stderr,
            )
            return 2
    # the per-agency limits the senders take across workers (`amtsbote limits sync`); without
    # them every delivery warns that its limit is missing. Others' limits are left alone.
    from .operations import sync_limits

    changes = await sync_limits(directory, prune=False)
    created = sum(1 for c in changes if c.action == "create")
    print(
        f"Prefect: {len(changes)} per-agency limits in place ({created} created, as "
        "`amtsbote limits sync` does)",
        file=out,
    )
    journal = Journal(create=True)
    rt = Runtime(
        journal=journal, directory=directory, routing=routing, settings=FlowSettings.from_env()
    )
    use_runtime(rt)
    home = directory.get(routing.sender)
    portal = directory.by_role("Portal")[0]

    loop = asyncio.get_running_loop()
    runs: dict[str, asyncio.Task[Any]] = {}

    def on_notification(uuid: str, procedure: str) -> None:
        def start() -> None:
            runs[uuid] = loop.create_task(PROCEDURES[procedure](message_uuid=uuid))

        loop.call_soon_threadsafe(start)

    print(
        "demo mode: development tokens (AMTSBOTE_DEV_TOKENS=1), short retry delays, partner "
        "agencies simulated, approvals given AUTOMATICALLY",
        file=out,
    )
    print(f"journal and inbox data: {run_dir}", file=out)
    print(f"log (warnings, errors and the tracebacks of expected failures): {log_file}", file=out)
    for agency in directory:
        if agency.channel is Channel.XTA:
            print(
                f"{agency.id} is connected by XTA 2: its SIMULATED XTA server at {agency.xta_url} "
                "and Fachverfahren (an XTA client); we send with sendMessage → "
                "getTransportReport and fetch its replies from our msgBox there",
                file=out,
            )
    if opts.fail:
        print(f"failing on purpose: {', '.join(opts.fail)} (inbox not started)", file=out)
    installation = LocalInstallation(
        directory=directory,
        home=home.id,
        home_journal=journal,
        failing=frozenset(opts.fail),
        on_notification=on_notification,
        rejected_dir=run_dir / "xta-rejected",
    )
    installation.start()
    approver = loop.create_task(_auto_approver(rt, approve_case, out))
    try:
        sender = sender_for(home.id, directory)
        submitted: list[tuple[str, str]] = []
        for sample in sample_notifications():
            model = v2_2.parse(sample.path.read_bytes())
            kopf = Nachrichtenkopf.neu(
                nachrichtentyp="0010", leser=behoerde(home), autor=behoerde(portal)
            )
            payload = v2_2.build(v2_2.project(model, "gwa.gewerbemeldung.0010", kopf=kopf))
            await sender.asend(
                OutgoingMessage(
                    payload=payload,
                    nachrichten_uuid=kopf.nachrichten_uuid,
                    recipient=home.id,
                    sender=portal.id,
                )
            )
            submitted.append((kopf.nachrichten_uuid, sample.path.name))
            print(f"submitted {sample.path.name} as {kopf.nachrichten_uuid}", file=out, flush=True)
        await sender.aclose()

        deadline = time.monotonic() + opts.timeout
        while len(runs) < len(submitted) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        results = await asyncio.wait_for(
            asyncio.gather(*runs.values(), return_exceptions=True),
            timeout=max(1.0, deadline - time.monotonic()),
        )
        for r in results:
            if isinstance(r, BaseException):
                print(f"a procedure failed: {type(r).__name__}: {r}", file=out)

        cases = [
            journal.get_message(uuid, direction=Direction.INBOUND).case_id for uuid, _ in submitted
        ]
        _print_cases(rt, [c for c in cases if c], ui_url, out)

        from .families.aussonderung.demo import run_demo_aussonderung

        try:
            archived = await run_demo_aussonderung(rt, run_dir, out)
        except Exception as exc:
            print(f"the Aussonderung failed: {type(exc).__name__}: {exc}", file=out)
            archived = None

        dead = journal.deliveries(state=DeliveryState.DEAD, direction=Direction.OUTBOUND)
        if dead:
            dead_cases = sorted({d.case_id for d in dead if d.case_id})
            print(
                f"\n{len(dead)} dead letter(s) — the recipient was down through every retry.",
                file=out,
            )
            print(
                "  re-drive with (in another shell, while this demo's server is up — "
                "--keep-running — and the agency's inbox is back):",
                file=out,
            )
            for cid in dead_cases:
                print(f"    {_redeliver_command(cid)}", file=out)
            if opts.redeliver:
                for agency_id in opts.fail:
                    installation.start_agency(agency_id)
                print(
                    f"\n{', '.join(opts.fail)} is back; running the redeliver command(s) now:",
                    file=out,
                )
                for cid in dead_cases:
                    print(f"$ {_redeliver_command(cid)}", file=out)
                    try:
                        done = await redeliver(case_id=cid)
                    except DeadLetters as exc:  # its run failed: letters remain dead
                        done = list(exc.summaries)
                    for s in done:
                        print(f"  case {s['case_id']}: {s['status']}", file=out)
                _print_cases(rt, dead_cases, ui_url, out)

        ok = len(cases) == len(submitted) and all(cases) and archived is not None
        for case_id in [*cases, archived]:
            if case_id is None:
                continue
            case = journal.get_case(case_id)
            rows = delivery_rows(rt, case_id)
            if case.status.value != "closed" or any(
                r["state"] not in ("delivered", "fetched") for r in rows
            ):
                ok = False
        print(
            "\n"
            + ("every case closed, every delivery acknowledged" if ok else "NOT all cases closed")
            + f" — Prefect UI: {ui_url}/runs",
            file=out,
        )
        print(
            "report of these cases: "
            + demo_command("amtsbote report --format html --out report.html --plots plots/"),
            file=out,
        )
        return 0 if ok else 1
    finally:
        approver.cancel()
        installation.stop()
        rt.close()
        journal.close()
        use_runtime(None)


async def _auto_approver(rt: Any, approve_case: Any, out: TextIO) -> None:
    """Demo mode only: give every pending approval (same path as ``amtsbote approve``)."""
    done: set[str] = set()
    while True:
        await asyncio.sleep(0.5)
        for case in rt.journal.list_cases(status="waiting"):
            if case.case_id in done:
                continue
            waiting = [
                e
                for e in rt.journal.events(case_id=case.case_id, kind="case.updated")
                if e.detail.get("waiting_for") == "approval"
            ]
            if not waiting:
                continue
            done.add(case.case_id)
            print(
                f"  case {case.case_id} waits for a clerk's approval — approved AUTOMATICALLY "
                f"(demo mode; normally: amtsbote approve {case.case_id} --decision approve)",
                file=out,
                flush=True,
            )
            await asyncio.to_thread(
                approve_case,
                rt.journal,
                case.case_id,
                decision="approve",
                reason="ok",
                via="demo-auto",
            )


def _print_cases(rt: Any, case_ids: Sequence[str], ui_url: str, out: TextIO) -> None:
    from .blocks import delivery_rows
    from .cli._util import table

    for cid in case_ids:
        case = rt.journal.get_case(cid)
        print(f"\ncase {cid}  {case.procedure}  status={case.status.value}", file=out)
        if case.flow_run_id:
            print(f"  Prefect UI: {ui_url}/runs/flow-run/{case.flow_run_id}", file=out)
        rows = delivery_rows(rt, cid)
        print(
            "  "
            + table(
                [[r["recipient"], r["message_type"], r["state"], r["attempts"]] for r in rows],
                ["recipient", "message type", "state", "attempts"],
            ).replace("\n", "\n  "),
            file=out,
        )


def clean(opts: DemoOptions) -> None:
    """Remove the demo's data (journals and Prefect history)."""
    for path in (opts.data_dir, opts.prefect_home):
        shutil.rmtree(path, ignore_errors=True)
