"""``amtsbote serve`` as an operator runs it: one command brings up a Prefect server (SQLite, none
being configured), the local inboxes, the deployments with their triggers, limits, automations and
a process worker; a notification posted to the city's inbox becomes a closed case; Ctrl-C stops
everything and leaves no process and no bound port behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, write_agencies

from bench.cluster import descendants, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def _port_bound(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_runs_a_case_and_stops_cleanly(tmp_path: Path) -> None:
    from connectors.directory import Directory
    from connectors.journal import Direction, Journal

    agencies = write_agencies(tmp_path / "agencies.yaml", drop_dir=tmp_path / "drop")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AMTSBOTE_"))}
    env.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(tmp_path / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
            "AMTSBOTE_HOME": str(ROOT),
            "AMTSBOTE_SEND_RETRY_DELAYS": "0.5,1",
            "AMTSBOTE_POLL_INTERVAL": "0.5",
        }
    )
    log = open(tmp_path / "serve.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "amtsbote"),
            "serve",
            "--port",
            str(port),
            "--simulate-partners",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        text = ""
        while "export PREFECT_API_URL=" not in text:  # the line after "ready"
            assert proc.poll() is None, f"serve exited {proc.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"serve not ready:\n{text}"
            time.sleep(0.5)
            text = (tmp_path / "serve.log").read_text(errors="replace")
        assert f"Prefect UI: http://127.0.0.1:{port}" in text
        # what an operator pastes into another shell for approve, redeliver, limits …
        assert f"export PREFECT_API_URL=http://127.0.0.1:{port}/api" in text
        assert "SQLite" in text
        children = descendants(proc.pid)
        assert children  # the server and the worker

        directory = Directory.load(agencies)
        old = os.environ.get("AMTSBOTE_DEV_TOKENS")
        os.environ["AMTSBOTE_DEV_TOKENS"] = "1"
        try:
            uuid = submit(directory, "abmeldung")
        finally:
            if old is None:
                os.environ.pop("AMTSBOTE_DEV_TOKENS", None)
            else:
                os.environ["AMTSBOTE_DEV_TOKENS"] = old
        journal = Journal.from_env(environ={"AMTSBOTE_DATA_DIR": str(tmp_path / "data")})
        try:
            status, case_id = None, None
            deadline = time.monotonic() + 180
            while status != "closed":
                assert time.monotonic() < deadline, (status, (tmp_path / "serve.log").read_text())
                time.sleep(1)
                case_id = journal.get_message(uuid, direction=Direction.INBOUND).case_id
                if case_id:
                    status = journal.get_case(case_id).status.value
            assert case_id is not None
            case = journal.get_case(case_id)
            assert case.flow_run_id  # a flow run of the deployment, started by its trigger
            assert {
                d.state.value
                for d in journal.deliveries(case_id=case.case_id, direction=Direction.OUTBOUND)
            } <= {"delivered", "fetched"}
        finally:
            journal.close()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        text = (tmp_path / "serve.log").read_text(errors="replace")
        assert "amtsbote serve: stopped" in text
        time.sleep(1)
        alive = [
            p
            for p in children
            if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
        ]
        assert alive == [], alive
        assert not _port_bound(port)
        for agency in directory:
            if agency.endpoint:
                assert not _port_bound(int(agency.endpoint.rsplit(":", 1)[1])), agency.id
    finally:
        if proc.poll() is None:  # the test failed: leave nothing running
            for p in [proc.pid, *descendants(proc.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            proc.wait()
        log.close()
