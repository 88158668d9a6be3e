"""The token policy before an inbox starts (issue 12, point 3): development tokens only on a
loopback bind and always loudly; every accepted agency has a token; tokens of at least 32
characters; no token shared by two agencies. Refusals name variables, never a token. The policy
as a function, and ``amtsbote inbox serve`` refusing (or warning) as a real process."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

from connectors.directory import DEFAULT_PATH, Directory
from connectors.directory.tokens import MIN_TOKEN_LENGTH, check_tokens, is_loopback

OWL = Directory.load(DEFAULT_PATH)


def _all_tokens() -> dict[str, str]:
    return {a.token_env: secrets.token_hex(32) for a in OWL}


def _directory(environ: dict[str, str]) -> Directory:
    return Directory.load(DEFAULT_PATH, environ=environ)


def test_every_agency_with_its_own_long_token_passes() -> None:
    check = check_tokens(_directory(_all_tokens()), host="0.0.0.0")
    assert check.ok and check.warnings == ()


def test_missing_tokens_refuse_and_name_every_variable() -> None:
    env = _all_tokens()
    del env["AMTSBOTE_TOKEN_DGUV"], env["AMTSBOTE_TOKEN_IHK_OWL"]
    [refusal] = check_tokens(_directory(env), host="127.0.0.1").refusals
    assert "dguv (set AMTSBOTE_TOKEN_DGUV)" in refusal
    assert "ihk-owl (set AMTSBOTE_TOKEN_IHK_OWL)" in refusal
    assert "it-nrw" not in refusal
    assert not check_tokens(_directory({}), host="127.0.0.1").ok  # none at all


def test_development_tokens_only_on_loopback_and_always_loudly() -> None:
    dev = {"AMTSBOTE_DEV_TOKENS": "1"}
    for host in ("0.0.0.0", "10.1.2.3", "::", "inbox.paderborn.de"):
        check = check_tokens(_directory(dev), host=host)
        assert not check.ok and "only allowed on a loopback bind" in check.refusals[0], host
    for host in ("127.0.0.1", "::1", "localhost"):
        check = check_tokens(_directory(dev), host=host)
        assert check.ok and "DEVELOPMENT TOKENS" in check.warnings[0], host
    # mixed: only the agencies without their variable get a development token, named
    mixed = {**dev, "AMTSBOTE_TOKEN_DGUV": secrets.token_hex(32)}
    [warning] = check_tokens(_directory(mixed), host="127.0.0.1").warnings
    assert "stadt-paderborn" in warning and "dguv" not in warning


def test_short_and_shared_tokens_refuse_naming_variables_not_tokens() -> None:
    env = _all_tokens()
    env["AMTSBOTE_TOKEN_IT_NRW"] = "x"
    env["AMTSBOTE_TOKEN_HWK_OWL"] = env["AMTSBOTE_TOKEN_IHK_OWL"]
    refusals = check_tokens(_directory(env), host="0.0.0.0").refusals
    text = "\n".join(refusals)
    assert "AMTSBOTE_TOKEN_IT_NRW (agency it-nrw) is 1 characters long" in text
    assert f"at least {MIN_TOKEN_LENGTH}" in text
    assert "AMTSBOTE_TOKEN_IHK_OWL (ihk-owl)" in text and "AMTSBOTE_TOKEN_HWK_OWL (hwk-owl)" in text
    assert env["AMTSBOTE_TOKEN_IHK_OWL"] not in text  # never the token itself


def test_an_agency_with_a_certificate_needs_no_token_under_mutual_tls() -> None:
    env = _all_tokens()
    del env["AMTSBOTE_TOKEN_DGUV"]
    agencies = [
        dataclasses.replace(a, client_cert_sha256="ab" * 32) if a.id == "dguv" else a for a in OWL
    ]
    d = Directory(agencies, roles=OWL.roles, environ=env)
    assert check_tokens(d, host="0.0.0.0", client_certificates=True).ok
    assert not check_tokens(d, host="0.0.0.0").ok  # without mutual TLS it could not log in


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.5.5") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.1")


# ------------------------------------------------------------------------------------ process


def _inbox_serve(tmp: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AMTSBOTE_TOKEN_") and k != "AMTSBOTE_DEV_TOKENS"
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "inbox",
            "serve",
            "--agency",
            "it-nrw",
            "--port",
            str(free_port()),
            "--database-url",
            f"sqlite:///{tmp / 'it-nrw.sqlite'}",
            *args,
        ],
        env={**base, "AMTSBOTE_DATA_DIR": str(tmp / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, (), "no token for "),
        ({"AMTSBOTE_DEV_TOKENS": "1"}, ("--host", "0.0.0.0"), "only allowed on a loopback bind"),
        (
            {**_all_tokens(), "AMTSBOTE_TOKEN_DGUV": "short"},
            (),
            "AMTSBOTE_TOKEN_DGUV (agency dguv)",
        ),
    ],
    ids=["no-tokens", "dev-tokens-on-all-interfaces", "short-token"],
)
def test_inbox_serve_refuses_to_start(
    env: dict[str, str], args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    proc = _inbox_serve(tmp_path, env, *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert expected in err
    assert " on http://" not in err  # it never bound a socket
    assert "Traceback" not in err


def test_inbox_serve_with_development_tokens_warns_before_it_serves(tmp_path: Path) -> None:
    proc = _inbox_serve(tmp_path, {"AMTSBOTE_DEV_TOKENS": "1"})
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if " on http://" in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    text = "".join(lines)
    assert "WARNING: DEVELOPMENT TOKENS" in text, text
    assert text.index("DEVELOPMENT TOKENS") < text.index(" on http://")


def test_serve_refuses_before_anything_listens(tmp_path: Path) -> None:
    """``amtsbote serve`` without tokens: exit 2 naming the variables, no Prefect server
    started (it used to report ready and then answer every delivery 401)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AMTSBOTE_TOKEN_", "PREFECT_API_URL")) and k != "AMTSBOTE_DEV_TOKENS"
    }
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", "--port", str(free_port())],
        env={**base, "AMTSBOTE_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "no token for stadt-paderborn (set AMTSBOTE_TOKEN_STADT_PADERBORN)" in text
    assert "starting a Prefect server" not in text and "ready" not in text
