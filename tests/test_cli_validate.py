"""``amtsbote validate`` / ``amtsbote schemas``: exit codes, output shapes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xoev.xdomea
from flows.cli import main
from xoev.namespaces import XDOMEA_3_0_0, XDOMEA_3_1_0, XGEWERBEANZEIGE_2_2
from xoev.registry import SCHEMA_PATH_ENV, SchemaRegistry
from xoev.xdomea import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = SAMPLES / "empfangbestaetigen-0102.xml"
INFORMATION = SAMPLES / "information-0101.xml"


@pytest.fixture(autouse=True)
def _no_env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEMA_PATH_ENV, raising=False)


@pytest.fixture
def invalid_xdomea(tmp_path: Path) -> Path:
    path = tmp_path / "invalid-0102.xml"
    path.write_bytes(
        MINIMAL.read_bytes().replace(
            b"<xdomea:Erstellungszeitpunkt>2024-05-02T11:00:00+02:00</xdomea:Erstellungszeitpunkt>",
            b"",
        )
    )
    return path


def test_valid_exits_0(schemata_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(MINIMAL), str(INFORMATION), "--schema-path", str(schemata_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"{MINIMAL}: valid (xdomea 3.0.0, 0102)" in out.out
    assert f"{INFORMATION}: valid (xdomea 3.0.0, 0101)" in out.out
    assert out.err == ""


def test_findings_exit_1(
    schemata_dir: Path, invalid_xdomea: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(MINIMAL), str(invalid_xdomea), "--schema-path", str(schemata_dir)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{invalid_xdomea}: INVALID (xdomea 3.0.0, 0102)" in out
    assert "[xsd:SCHEMAV_ELEMENT_CONTENT] Pflichtelement Erstellungszeitpunkt fehlt in Kopf" in out


def test_unusable_input_exits_2_and_names_the_file(
    schemata_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xxe = tmp_path / "xxe.xml"
    xxe.write_bytes(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    notxml = tmp_path / "notxml.xml"
    notxml.write_bytes(b"PK\x03\x04 zip, not xml")
    missing = tmp_path / "missing.xml"
    code = main(
        [
            "validate",
            str(MINIMAL),
            str(xxe),
            str(notxml),
            str(missing),
            "--schema-path",
            str(schemata_dir),
        ]
    )
    out = capsys.readouterr()
    assert code == 2
    assert f"{MINIMAL}: valid" in out.out  # the usable file is still checked
    err = out.err.splitlines()
    assert any(str(xxe) in line and "external entity" in line for line in err)
    assert any(str(notxml) in line and "not well-formed XML" in line for line in err)
    assert any(str(missing) in line and "file not found" in line for line in err)


def test_two_wins_over_one(
    schemata_dir: Path, invalid_xdomea: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "validate",
            str(invalid_xdomea),
            str(tmp_path / "gone.xml"),
            "--schema-path",
            str(schemata_dir),
        ]
    )
    assert code == 2
    assert "INVALID" in capsys.readouterr().out


def test_unknown_document_exits_2(xgwa_samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = xgwa_samples / "xy-unknown.xml"
    code = main(["validate", str(unknown)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(unknown) in err
    assert "unknown document" in err and "no namespace" in err
    assert XDOMEA_3_0_0 in err  # lists what is supported


def test_vendored_xdomea_needs_no_schema_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(MINIMAL)]) == 0
    assert f"{MINIMAL}: valid (xdomea 3.0.0, 0102)" in capsys.readouterr().out


def test_missing_bundle_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    import xoev.xdomea

    unshipped = dataclasses.replace(xoev.xdomea.V3_0_0, schema=None, origin="schema path")
    monkeypatch.setattr(xoev.xdomea, "VERSIONS", (unshipped,))
    code = main(["validate", str(MINIMAL)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(MINIMAL) in err and "xdomea.xsd not found" in err


def test_bad_schema_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(MINIMAL), "--schema-path", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["schemas", "--schema-path", str(tmp_path / "nope")]) == 2


def test_json_output_shape(
    schemata_dir: Path, invalid_xdomea: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "validate",
            str(MINIMAL),
            str(invalid_xdomea),
            "--format",
            "json",
            "--schema-path",
            str(schemata_dir),
        ]
    )
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 2
    keys = {
        "source",
        "valid",
        "standard",
        "version",
        "message_type",
        "nachrichtenUUID",
        "findings",
        "exit",
    }
    assert all(set(report) == keys for report in data)
    good, bad = data
    assert (good["exit"], bad["exit"]) == (0, 1)
    assert good["valid"] is True and good["findings"] == []
    assert (good["standard"], good["version"], good["message_type"]) == ("xdomea", "3.0.0", "0102")
    assert bad["valid"] is False and bad["source"] == str(invalid_xdomea)
    assert bad["findings"] == [
        {
            "severity": "error",
            "message": "Pflichtelement Erstellungszeitpunkt fehlt in Kopf",
            "rule": "xsd:SCHEMAV_ELEMENT_CONTENT",
            "line": 11,
            "xpath": "/xdomea:Information.EmpfangBestaetigen.0102/xdomea:Kopf",
        }
    ]


def test_env_schema_path_for_the_cli(
    schemata_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(schemata_dir))
    assert main(["validate", str(MINIMAL)]) == 0
    assert "valid (xdomea 3.0.0, 0102)" in capsys.readouterr().out


def test_schemas_text(schemata_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas"]) == 0
    out = capsys.readouterr().out
    assert "xdomea 3.0.0" in out and XDOMEA_3_0_0 in out
    vendored = Path(xoev.xdomea.V3_0_0.schema)  # type: ignore[arg-type]
    assert f"{vendored} (built-in)" in out
    assert "xdomea 3.1.0" in out and XDOMEA_3_1_0 in out

    assert main(["schemas", "--schema-path", str(schemata_dir)]) == 0
    out = capsys.readouterr().out
    resolved = schemata_dir.resolve()
    assert f"{resolved / 'xdomea-3.0.0' / 'xdomea.xsd'} ({resolved})" in out
    assert "0501  Aussonderung.Anbieteverzeichnis.0501" in out
    assert "urn:xoev-de:xdomea:codeliste:nachrichtentyp 2.0 (63 codes)" in out


def test_schemas_json(schemata_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--format", "json", "--schema-path", str(schemata_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_path"] == [str(schemata_dir.resolve())]
    xdomea = next(v for v in data["versions"] if v["namespace"] == XDOMEA_3_0_0)
    assert xdomea["available"] is True
    assert xdomea["origin"] == str(schemata_dir.resolve())
    assert xdomea["standard"] == "xdomea" and xdomea["version"] == "3.0.0"
    assert len(xdomea["message_types"]) == 64
    assert {
        "code": "0102",
        "root": "Information.EmpfangBestaetigen.0102",
        "description": "Information.EmpfangBestaetigen",
    } in xdomea["message_types"]
    assert sum(c["source"].startswith(str(schemata_dir)) for c in data["codelists"]) == 48
    assert isinstance(data["problems"], list)


@pytest.mark.parametrize("command", [["validate"], ["schemas"], []])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: amtsbote" in out
    if command:
        assert "--schema-path DIR" in out and "--format" in out


def test_real_process_exit_codes(schemata_dir: Path, invalid_xdomea: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != SCHEMA_PATH_ENV}
    entry = "import sys; from flows.cli import main; sys.exit(main())"
    base = [sys.executable, "-c", entry, "validate", "--schema-path", str(schemata_dir)]
    codes = [
        subprocess.run(
            [*base, str(path)], cwd=ROOT, env=env, capture_output=True, timeout=120
        ).returncode
        for path in (MINIMAL, invalid_xdomea, invalid_xdomea.parent / "missing.xml")
    ]
    assert codes == [0, 1, 2]


# -- the KoSIT XGewerbeanzeige 2.2 test messages (the xgewerbeanzeige package ships the XSD) ------


def test_xgewerbeanzeige_is_built_in() -> None:
    sv = SchemaRegistry(use_env=False).get(XGEWERBEANZEIGE_2_2)
    assert sv is not None and sv.schema is not None and sv.origin == "built-in"


def test_kosit_valid(xgwa_samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = xgwa_samples / "xgwa2.2-valid.xml"
    assert main(["validate", str(sample)]) == 0
    assert f"{sample}: valid (XGewerbeanzeige 2.2, 0500)" in capsys.readouterr().out


def test_kosit_invalid_names_both_defects(
    xgwa_samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = xgwa_samples / "xgwa2.2-invalid.xml"
    assert main(["validate", str(sample), "--format", "json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["nachrichtenUUID"] == "00000000-0000-0000-0000-000000000001"
    found = [(f["message"], f["xpath"]) for f in report["findings"]]
    gewerbe = "/xga:abh.gewerbemeldung.0500/xga:satz/xga:anmeldung/xga:gewerbe"
    assert found == [
        ("Pflichtelement betriebArt fehlt in gewerbe", gewerbe),
        (
            "Pflichtelement familienname fehlt in beteiligtePerson",
            f"{gewerbe}/xga:beteiligtePerson",
        ),
    ]
    assert [f["line"] for f in report["findings"]] == [137, 172]


def test_kosit_all_three(xgwa_samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(xgwa_samples / n)
        for n in ("xgwa2.2-valid.xml", "xgwa2.2-invalid.xml", "xy-unknown.xml")
    ]
    assert main(["validate", *files]) == 2
    out = capsys.readouterr()
    assert "xgwa2.2-valid.xml: valid" in out.out
    assert "Pflichtelement betriebArt fehlt in gewerbe" in out.out
    assert "Pflichtelement familienname fehlt in beteiligtePerson" in out.out
    assert "xy-unknown.xml:1: unknown document" in out.err
    assert XGEWERBEANZEIGE_2_2 in out.err


# -- xdomea containers (x-man layout) ------------------------------------------------------------


def _container(tmp_path: Path, shared_dir: Path, *, xml: bytes | None = None) -> Path:
    from tests.xdomea_examples import PRIMARY_SOURCES, messages
    from xoev.container import write_container
    from xoev.xdomea.aussonderung import build

    folder = shared_dir / "xoev" / "beispiele" / "primaerdokumente"
    files = {name: folder / source for name, source in PRIMARY_SOURCES.items()}
    written = write_container(tmp_path, xml or build(messages()["0503"]), files)
    return next(iter(written.values())).container


def test_valid_container_exits_0(
    tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _container(tmp_path, shared_dir)
    assert main(["validate", str(path)]) == 0
    assert f"{path}: valid (xdomea 3.0.0, 0503)" in capsys.readouterr().out


def test_container_with_invalid_xml_exits_1(
    tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.xdomea_examples import messages
    from xoev.xdomea.aussonderung import build

    xml = build(messages()["0503"])
    broken = re.sub(rb"<xdomea:Erstellungszeitpunkt>[^<]*</xdomea:Erstellungszeitpunkt>", b"", xml)
    assert broken != xml
    path = _container(tmp_path, shared_dir, xml=broken)
    assert main(["validate", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)[0]
    assert report["source"] == str(path) and report["valid"] is False
    assert report["message_type"] == "0503"


def test_hostile_container_exits_2(
    tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    path = _container(tmp_path, shared_dir)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../etc/cron.d/evil", b"* * * * * root true")
    code = main(["validate", str(path), str(MINIMAL)])
    out = capsys.readouterr()
    assert code == 2
    assert str(path) in out.err and "rule member:traversal" in out.err
    assert "'../../etc/cron.d/evil'" in out.err
    assert f"{MINIMAL}: valid" in out.out  # the other files are still checked
    misnamed = path.rename(tmp_path / "container.zip")
    assert main(["validate", str(misnamed)]) == 2
    assert "rule name" in capsys.readouterr().err


# -- output: line order, one JSON entry per file, worst exit, a closed pipe ---------------------


def _out_of_order(tmp_path: Path, xgwa_samples: Path) -> Path:
    """The KoSIT invalid message with a bad code at line 26: the codelist check reports it after
    the XSD findings at lines 137 and 172."""
    data = (xgwa_samples / "xgwa2.2-invalid.xml").read_bytes()
    path = tmp_path / "three-defects.xml"
    path.write_bytes(data.replace(b"<code>01</code>", b"<code>77</code>", 1))
    return path


def test_findings_in_line_order(
    tmp_path: Path, xgwa_samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _out_of_order(tmp_path, xgwa_samples)
    assert main(["validate", str(path), "--format", "json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert [(f["line"], f["rule"]) for f in report["findings"]] == [
        (26, "codelist"),
        (137, "xsd:SCHEMAV_ELEMENT_CONTENT"),
        (172, "xsd:SCHEMAV_ELEMENT_CONTENT"),
    ]
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.index("line 26 ") < out.index("line 137 ") < out.index("line 172 ")


def test_findings_without_line_come_last_in_a_stable_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import xoev.validation
    from xoev.findings import Finding, Report, Severity

    def fake(name: str, **_kw: object) -> Report:
        findings = [
            Finding(Severity.ERROR, "late", "r1", line=30),
            Finding(Severity.WARNING, "nowhere-a", "r2"),
            Finding(Severity.ERROR, "early-a", "r3", line=5),
            Finding(Severity.ERROR, "nowhere-b", "r4"),
            Finding(Severity.ERROR, "early-b", "r5", line=5),
        ]
        return Report(source=name, standard="S", version="1", findings=findings)

    monkeypatch.setattr(xoev.validation, "validate_file", fake)
    assert main(["validate", "m.xml", "--format", "json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert [f["message"] for f in report["findings"]] == [
        "early-a",
        "early-b",
        "late",
        "nowhere-a",
        "nowhere-b",
    ]


def test_json_has_one_entry_per_file_unusable_ones_included(
    tmp_path: Path,
    xgwa_samples: Path,
    invalid_xdomea: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_xml = tmp_path / "not.xml"
    not_xml.write_bytes(b"<a><b></a>")
    unshipped = tmp_path / "xgwa-2.1.xml"
    unshipped.write_bytes(
        (xgwa_samples / "xgwa2.2-valid.xml")
        .read_bytes()
        .replace(XGEWERBEANZEIGE_2_2.encode(), b"http://www.xgewerbeanzeige.de/spezifikation/2.1")
    )
    files = [
        MINIMAL,
        tmp_path / "missing.xml",
        invalid_xdomea,
        not_xml,
        xgwa_samples / "xy-unknown.xml",
        unshipped,
    ]
    assert main(["validate", "--format", "json", *map(str, files)]) == 2
    data = json.loads(capsys.readouterr().out)
    assert [entry["source"] for entry in data] == [str(f) for f in files]
    assert [entry["exit"] for entry in data] == [0, 2, 1, 2, 2, 2]
    assert [entry["valid"] for entry in data] == [True, False, False, False, False, False]
    errors = [entry for entry in data if entry["exit"] == 2]
    assert all(set(entry) == {"source", "valid", "exit", "error"} for entry in errors)
    missing, broken, unknown, not_built_in = (entry["error"] for entry in errors)
    assert str(files[1]) in missing
    assert f"{not_xml}:1:" in broken
    assert "unknown document" in unknown
    assert "XGewerbeanzeige 2.1 is not built in; put its bundle on the schema path" in not_built_in


def test_kosit_json_has_one_entry_per_file(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simple = shared_dir / "kosit" / "examples" / "simple"
    files = [
        simple / "input" / "simple-schematron-invalid.xml",
        tmp_path / "missing.xml",
        simple / "input" / "unknown.xml",
        simple / "input" / "foo-schematron-invalid.xml",
    ]
    argv = ["validate", "--kosit", str(simple), "--kosit-repository", str(simple / "repository")]
    assert main([*argv, "--format", "json", *map(str, files)]) == 2
    data = json.loads(capsys.readouterr().out)
    assert [entry["source"] for entry in data] == [str(f) for f in files]
    assert [entry["exit"] for entry in data] == [0, 2, 2, 1]
    assert "error" in data[1] and data[2]["findings"][0]["rule"] == "kosit:no-scenario"


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["valid"], 0),
        (["invalid", "valid"], 1),
        (["valid", "invalid"], 1),
        (["missing", "invalid", "valid"], 2),
        (["invalid", "valid", "missing"], 2),
    ],
)
def test_a_batch_exits_with_its_worst_result(
    names: list[str], expected: int, invalid_xdomea: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {"valid": MINIMAL, "invalid": invalid_xdomea, "missing": invalid_xdomea.with_name("x")}
    assert main(["validate", *(str(paths[n]) for n in names)]) == expected


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """``python -m flows.cli ARGS`` with stdout a pipe whose reading end is already closed."""
    env = {k: v for k, v in os.environ.items() if k != SCHEMA_PATH_ENV}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args", [["schemas"], ["schemas", "--format", "json"], ["validate", str(MINIMAL)]]
)
def test_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    result = _closed_pipe_run(args)
    assert result.stderr == b""
    assert result.returncode == 141


def test_head_one_ends_validate_quietly(invalid_xdomea: Path) -> None:
    """``amtsbote validate FILE… | head -1`` with more output than a pipe holds."""
    env = {k: v for k, v in os.environ.items() if k != SCHEMA_PATH_ENV}
    files = [str(invalid_xdomea), str(MINIMAL)] * 1000
    with subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "validate", *files],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        code = process.wait(timeout=120)
    assert first.startswith(str(invalid_xdomea).encode())
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert code == 141


# -- a large batch on several cores (--jobs) -----------------------------------------------------


def _pid(_name: str) -> int:
    return os.getpid()


def _slow_pid(_name: str) -> int:
    import time

    time.sleep(0.01)  # a chunk takes a second: the second worker gets one too
    return os.getpid()


def test_in_order_forks_workers_and_keeps_the_order() -> None:
    from flows.cli._jobs import MIN_PARALLEL, in_order

    names = [str(i) for i in range(MIN_PARALLEL * 2)]
    assert list(in_order(names, int, jobs=2)) == list(range(len(names)))
    pids = set(in_order(names[:MIN_PARALLEL], _slow_pid, jobs=2))
    assert os.getpid() not in pids and len(pids) == 2  # checked by two worker processes
    assert set(in_order(names, _pid, jobs=1)) == {os.getpid()}
    assert set(in_order(names[: MIN_PARALLEL - 1], _pid, jobs=2)) == {os.getpid()}  # small


def test_jobs_give_what_one_process_gives(invalid_xdomea: Path, xgwa_samples: Path) -> None:
    """Reports, stderr lines and the exit code of 500 files on 2 workers are those of 1 process,
    in the same order — unusable ones (missing, unknown document) included."""
    env = {k: v for k, v in os.environ.items() if k != SCHEMA_PATH_ENV}
    kinds = [MINIMAL, invalid_xdomea, invalid_xdomea.with_name("missing.xml")]
    kinds += [xgwa_samples / "xy-unknown.xml", xgwa_samples / "xgwa2.2-valid.xml"]
    files = [str(kinds[i % len(kinds)]) for i in range(500)]
    runs = {}
    command = [sys.executable, "-m", "flows.cli", "validate"]
    for fmt in ("text", "json"):
        for jobs in ("1", "2"):
            runs[fmt, jobs] = subprocess.run(
                [*command, "--jobs", jobs, "--format", fmt, *files],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=300,
            )
    for fmt in ("text", "json"):
        one, two = runs[fmt, "1"], runs[fmt, "2"]
        assert two.returncode == one.returncode == 2
        assert two.stdout == one.stdout
        assert two.stderr == one.stderr
    entries = json.loads(runs["json", "2"].stdout)
    assert [e["source"] for e in entries] == files
    assert [e["exit"] for e in entries[:5]] == [0, 1, 2, 2, 0]


def test_ctrl_c_stops_the_workers_quietly(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the foreground process group) during a parallel batch: exit 130, one
    line on stderr, no traceback from the parent or a worker, no process left behind."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != SCHEMA_PATH_ENV}
    files = [str(MINIMAL)] * 20_000  # bounded: ends by itself in well under a minute
    with subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "validate", "--jobs", "2", *files],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 60
        while not children.read_text().split():  # the workers are forked
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        assert process.stderr is not None
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert code == 130, err
    assert err.strip() == "amtsbote: interrupted", err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing of the session is left
        os.killpg(process.pid, 0)
