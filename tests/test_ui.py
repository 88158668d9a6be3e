"""The Prefect UI shows a case as a clerk would look at it — in a real headless Chromium.

A case runs end to end (in-process flow run against the session's Prefect server on PostgreSQL,
the OWL inboxes on loopback); Chromium opens the flow run's page of the Prefect UI, the test reads
the rendered page through the DevTools protocol (the UI is a JavaScript app: ``--dump-dom`` alone
shows the default tab only), clicks the "Artifacts" tab and then the case's table artifact, and
checks what a person would see: the run named after the case, its state, the artifact
``case-…`` and the recipients in its table. A screenshot of each page is kept in the test's
temporary directory.

Chromium comes from Debian (``apt-get install -y chromium``); the test installs it when missing
and it runs as root. Under ``CI=true`` a failed install fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import IN_CI, free_port, write_agencies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"headless Chromium is required under CI=true: {why}", pytrace=False)
    pytest.skip(f"headless Chromium unavailable (would fail under CI=true): {why}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; installed from Debian when missing (as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        _unavailable("not installed and not root (apt-get install -y chromium)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=900, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"{' '.join(cmd)}: {exc}")
        if done.returncode != 0:
            _unavailable(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-500:]}")
    installed = shutil.which("chromium")
    if installed is None:
        _unavailable("apt-get install chromium succeeded but no chromium binary on PATH")
        raise AssertionError("unreachable")  # _unavailable fails or skips
    return installed


class Browser:
    """Headless Chromium driven over the DevTools protocol (loopback only)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={self.port}",
                "--remote-debugging-address=127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(
                    f"http://127.0.0.1:{self.port}/json", timeout=2, trust_env=False
                ).json()
                self.ws_url = next(
                    t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"
                )
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("chromium's DevTools endpoint did not come up") from None
                time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def session(self, url: str, steps: Any) -> Any:
        import websockets

        async with websockets.connect(self.ws_url, max_size=64 * 1024 * 1024) as ws:
            counter = 0

            async def call(method: str, **params: Any) -> dict[str, Any]:
                nonlocal counter
                counter += 1
                mine = counter
                await ws.send(json.dumps({"id": mine, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == mine:
                        if "error" in msg:
                            raise RuntimeError(f"{method}: {msg['error']}")
                        return dict(msg.get("result", {}))

            await call("Page.enable")
            await call("Page.navigate", url=url)
            return await steps(call)


async def _text(call: Any) -> str:
    r = await call(
        "Runtime.evaluate",
        expression="document.body ? document.body.innerText : ''",
        returnByValue=True,
    )
    return str(r["result"].get("value", ""))


async def _wait_text(call: Any, *needles: str, timeout: float = 45) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = await _text(call)
        if all(n in text for n in needles):
            return text
        await asyncio.sleep(0.25)
    raise AssertionError(f"page never showed {needles!r}; it shows:\n{text[:3000]}")


async def _click_text(call: Any, label: str, timeout: float = 30) -> None:
    """Click the innermost element whose whole text is ``label`` (what a person clicks on),
    once the page shows one."""
    script = (
        "(() => { const want = " + json.dumps(label) + ";"
        " const el = [...document.querySelectorAll('body *')].find(e =>"
        "   e.children.length === 0 && e.textContent.trim() === want);"
        " if (!el) return false; el.click(); return true; })()"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await call("Runtime.evaluate", expression=script, returnByValue=True)
        if r["result"].get("value") is True:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(
        f"nothing labelled {label!r} to click; the page shows:\n{(await _text(call))[:3000]}"
    )


async def _screenshot(call: Any, path: Path) -> None:
    shot = await call("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def closed_case(tmp_path: Path, prefect_server: Any) -> Iterator[dict[str, Any]]:
    """An Abmeldung submitted by the portal and run to its end (in-process flow run)."""
    import bench.cluster as harness
    from connectors.directory import Directory
    from connectors.journal import Journal
    from flows.local import LocalInstallation
    from flows.procedures import gewerbeabmeldung
    from flows.routing import Routing
    from flows.runtime import FlowSettings, Runtime, use_runtime

    agencies = write_agencies(tmp_path / "agencies.yaml", drop_dir=tmp_path / "drop")
    env = {
        "AMTSBOTE_AGENCIES": str(agencies),
        "AMTSBOTE_DATA_DIR": str(tmp_path / "data"),
        "AMTSBOTE_DEV_TOKENS": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    directory = Directory.default()
    journal = Journal(f"sqlite:///{tmp_path / 'data' / 'journal.sqlite'}", create=True)
    from datetime import timedelta

    rt = Runtime(
        journal=journal,
        directory=directory,
        routing=Routing.default(directory=directory),
        settings=FlowSettings(
            retry_delays=(0.2,),
            poll_interval=0.5,
            receipt_wait=timedelta(seconds=20),
            suspend=False,
        ),
    )
    use_runtime(rt)
    installation = LocalInstallation(
        directory=directory, home="stadt-paderborn", home_journal=journal, on_notification=None
    ).start()
    try:
        uuid = harness.submit(directory, "abmeldung")
        summary = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
        case = journal.get_case(summary["case_id"])
        yield {
            "case_id": case.case_id,
            "flow_run_id": case.flow_run_id,
            "status": case.status.value,
            "ui": prefect_server.ui_url,
        }
    finally:
        installation.stop()
        rt.close()
        journal.close()
        use_runtime(None)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_flow_run_page_shows_the_case(
    chromium: str, closed_case: dict[str, Any], tmp_path: Path
) -> None:
    case_id = closed_case["case_id"]
    assert closed_case["status"] == "closed"
    run_name = f"gewerbeabmeldung-{case_id}"
    key = "case-" + "".join(c if c.isalnum() else "-" for c in case_id.lower())
    url = f"{closed_case['ui']}/runs/flow-run/{closed_case['flow_run_id']}"

    async def steps(call: Any) -> dict[str, str]:
        page = await _wait_text(call, run_name, "Artifacts", "Completed")
        await _screenshot(call, tmp_path / "flow-run.png")
        await _click_text(call, "Artifacts")
        artifacts = await _wait_text(call, key, f"Deliveries of case {case_id}")
        await _screenshot(call, tmp_path / "flow-run-artifacts.png")
        await _click_text(call, key)  # the table artifact's card opens the artifact
        table = await _wait_text(call, "it-nrw", "sta.gewerbemeldung.0100")
        await _screenshot(call, tmp_path / "artifact.png")
        return {"page": page, "artifacts": artifacts, "table": table}

    browser = Browser(chromium, Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
    try:
        seen = asyncio.run(browser.session(url, steps))
    finally:
        browser.close()

    # the run is named after the case and shows its final state
    assert run_name in seen["page"]
    assert "Completed" in seen["page"]
    # the Artifacts tab lists the case's table artifact (and its timeline)
    assert key in seen["artifacts"]
    assert "TABLE" in seen["artifacts"].upper()
    assert f"Deliveries of case {case_id}" in seen["artifacts"]
    # the table itself: one row per recipient with its message type and state
    for recipient in ("it-nrw", "finanzamt-paderborn", "dguv"):
        assert recipient in seen["table"]
    assert "delivered" in seen["table"]
    assert (tmp_path / "artifact.png").stat().st_size > 10_000
