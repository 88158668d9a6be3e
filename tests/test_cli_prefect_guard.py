"""Commands that talk to Prefect refuse to run without ``PREFECT_API_URL`` (issue 12, point 7).

Without the variable (and without a Prefect profile naming a server) Prefect would start a
temporary server for the one command and forget it on exit: ``limits sync`` used to exit 0
having configured nothing an operator could see. Real processes, a Prefect home of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    ["limits", "sync"],
    ["automations", "sync"],
    ["automations", "retire", "--dry-run", "gewerbeanmeldung/gewerbeanmeldung"],
    ["approve", "05774032-2026-000001", "--decision", "approve"],
    ["redeliver", "--all-dead"],
    ["aussonderung", "hand-over", "nowhere.zip"],
]


def _amtsbote(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {
        "PREFECT_HOME": str(tmp / "prefect-home"),  # no profile naming a server
        "AMTSBOTE_DATA_DIR": str(tmp / "data"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_prefect_command_without_a_server_refuses_and_says_what_to_export(
    args: list[str], tmp_path: Path
) -> None:
    done = _amtsbote(args, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"amtsbote {args[0]}: PREFECT_API_URL is not set" in done.stderr
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in done.stderr
    assert "Traceback" not in done.stderr
    # nothing was done: no journal was even opened
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_a_journal_only_command_runs_without_a_server(tmp_path: Path) -> None:
    done = _amtsbote(["cases"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0 case(s)" in done.stdout
