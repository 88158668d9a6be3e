"""``amtsbote demo`` as a user runs it (subprocess), against the test session's Prefect server on
PostgreSQL — and afterwards Prefect's own database holds no personal data from the notifications."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import write_agencies

from xoev.xgewerbeanzeige import notifications, v2_2

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _demo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    agencies = write_agencies(tmp / "agencies.yaml", drop_dir=tmp / "drop")
    env = dict(os.environ, AMTSBOTE_AGENCIES=str(agencies))
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from flows.cli import main; sys.exit(main())",
            "demo",
            "--data-dir",
            str(tmp / "demo"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _personal_data() -> set[str]:
    """Names, birth dates and streets of the people in the demo's notifications."""
    values: set[str] = set()
    for sample in notifications():
        msg = v2_2.parse(sample.path.read_bytes())
        for satz in msg.saetze:
            for person in satz.meldung.gewerbe.beteiligte_personen:
                values.update(
                    v for v in (person.familienname, person.vorname, person.geburtsname) if v
                )
                if person.geburtsdatum is not None:
                    values.add(str(person.geburtsdatum))
                if person.anschrift is not None and person.anschrift.strasse:
                    values.add(person.anschrift.strasse)
    return {v for v in values if len(v) >= 4}


def _prefect_database_text(pg_url: str) -> str:
    import psycopg

    url = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    chunks: list[str] = []
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            for (row,) in conn.execute(f'SELECT t::text FROM "{table}" t'):
                chunks.append(row)
    return "\n".join(chunks)


def test_demo_closes_every_case_and_prefect_holds_no_personal_data(
    tmp_path: Path, prefect_server: Any, prefect_pg_url: str
) -> None:
    result = _demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "approved AUTOMATICALLY" in out
    assert "every case closed, every delivery acknowledged" in out
    for procedure in ("gewerbeanmeldung", "gewerbeummeldung", "gewerbeabmeldung"):
        assert procedure in out
    assert "abh.gewerbemeldung.0500" in out and "fetched" in out
    # the four-stage Aussonderung with the simulated Landesarchiv, its process printed
    assert re.search(r"case \S+  aussonderung  status=closed", out), out
    assert "Simulierter Partner" in out
    assert "appraisal (0502): 12 records archivwürdig, 6 kassabel" in out
    assert "handed over (0503): 12 records, 6 primary documents" in out
    assert re.search(r"archive signatures \(0506\): 6, e\.g\. LAV NRW OWL", out), out
    assert "released for deletion: 12 archived records, 6 kassabel ones" in out

    # the commands it prints run as printed, from another shell
    report = _printed_command(out, "report of these cases: ")
    done = _shell(report, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "report.html").is_file()
    evidence = _printed_command(out, "  evidence: ")
    done = _shell(evidence, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "closed" and doc["case_id"] == evidence.rsplit(" ", 1)[1]
    assert "aussonderung.released" in {e["kind"] for e in doc["events"]}

    dump = _prefect_database_text(prefect_pg_url)
    assert "aussonderung-05774032-" in dump
    assert "Gewerbeakte" not in dump and "32.10.01-" not in dump  # titles, Aktenzeichen
    assert "gewerbeanmeldung-05774032-" in dump  # the runs are there, named after their cases
    personal = _personal_data()
    assert len(personal) >= 6  # names, birth dates and streets of three people were submitted
    leaked = sorted(v for v in personal if v in dump)
    assert not leaked, f"personal data in Prefect's database: {leaked}"


def test_demo_with_a_failing_agency_shows_dead_letters_and_redelivers(
    tmp_path: Path, prefect_server: Any
) -> None:
    result = _demo(tmp_path, "--fail", "bezreg-detmold")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "dead letter(s)" in out
    assert "amtsbote redeliver --case 05774032-" in out
    assert "bezreg-detmold is back" in out
    assert "every case closed, every delivery acknowledged" in out
    assert "Traceback" not in result.stderr, result.stderr


def _printed_command(out: str, lead: str) -> str:
    lines = [ln[len(lead) :] for ln in out.splitlines() if ln.startswith(lead)]
    assert lines, f"no line starting {lead!r} in:\n{out}"
    return lines[0].strip()


def _shell(command: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` as an operator pastes it: a shell with this installation's bin dir on PATH and
    nothing of the test session's Prefect or amtsbote settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AMTSBOTE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PREFECT_HOME"] = str(cwd / "operator-prefect-home")
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def test_demo_keeps_expected_failures_off_the_console_and_its_redeliver_runs_as_printed(
    tmp_path: Path, prefect_server: Any
) -> None:
    """``--fail`` without the redeliver: no tracebacks and no missing-limit warnings on the
    console (they are in the demo's log); the printed redeliver command runs as printed and,
    with the agency still down, ends promptly with the letters still dead (exit 1)."""
    result = _demo(tmp_path, "--fail", "bezreg-detmold", "--no-redeliver")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "does not exist on the Prefect server" not in result.stderr
    assert len(result.stderr.splitlines()) <= 5, result.stderr
    log = _printed_command(
        result.stdout, "log (warnings, errors and the tracebacks of expected failures): "
    )
    assert "Traceback" in Path(log).read_text(encoding="utf-8")  # kept, off the console

    lead = "    "
    commands = [
        ln.strip()
        for ln in result.stdout.splitlines()
        if ln.startswith(lead) and "amtsbote redeliver --case " in ln
    ]
    assert len(commands) == 2, result.stdout
    assert "PREFECT_API_URL=" in commands[0] and "AMTSBOTE_DATA_DIR=" in commands[0]
    done = _shell(commands[0], cwd=tmp_path)
    case_id = commands[0].rsplit(" ", 1)[1]
    assert done.returncode == 1, done.stdout + done.stderr  # bezreg-detmold is still down
    assert case_id in done.stdout + done.stderr


def test_demo_rejects_an_unknown_agency(tmp_path: Path, prefect_server: Any) -> None:
    result = _demo(tmp_path, "--fail", "no-such-agency")
    assert result.returncode == 2
    assert "unknown agency" in result.stderr
