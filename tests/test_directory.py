"""The agency directory: the shipped OWL file, errors naming file:line and field, tokens, CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from connectors.directory import (
    DEFAULT_PATH,
    Agency,
    AmbiguousTokenError,
    Channel,
    Directory,
    InvalidDirectoryError,
    MissingTokenError,
    UnknownAgencyError,
    UnknownRoleError,
    dev_token,
)
from connectors.directory import core as directory_core
from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]
OWL_IDS = [
    "stadt-paderborn",
    "kreis-paderborn",
    "bezreg-detmold",
    "it-nrw",
    "ihk-owl",
    "hwk-owl",
    "finanzamt-paderborn",
    "dguv",
    "wsp-nrw",
    "landesarchiv-owl",
    "dms-paderborn",
]


@pytest.fixture
def owl() -> Directory:
    return Directory.load(DEFAULT_PATH, environ={})


# ------------------------------------------------------------------------- the shipped file


def test_shipped_file_is_the_default_and_has_the_owl_agencies_and_the_portal(
    owl: Directory,
) -> None:
    assert DEFAULT_PATH == ROOT / "deployments" / "owl" / "agencies.yaml"
    assert [a.id for a in owl] == OWL_IDS
    assert len(owl) == 11
    assert [a.id for a in Directory.default(environ={})] == OWL_IDS


def test_shipped_roles(owl: Directory) -> None:
    expected = {
        "Gewerbeamt": ["stadt-paderborn"],
        "Lebensmittelüberwachung": ["kreis-paderborn"],
        "Ausländerbehörde": ["kreis-paderborn"],
        "Arbeitsschutz": ["bezreg-detmold"],
        "Statistik": ["it-nrw"],
        "IHK": ["ihk-owl"],
        "HWK": ["hwk-owl"],
        "Finanzamt": ["finanzamt-paderborn"],
        "Unfallversicherung": ["dguv"],
        "Portal": ["wsp-nrw"],
    }
    for role, ids in expected.items():
        assert [a.id for a in owl.by_role(role)] == ids, role
    assert owl.get("kreis-paderborn").has_role("Ausländerbehörde")
    with pytest.raises(UnknownRoleError, match="Gewerbamt"):
        owl.by_role("Gewerbamt")


def test_shipped_channels_endpoints_and_tokens(owl: Directory) -> None:
    stadt = owl.by_behoerdenkennung("MELDID:05774032")
    assert stadt.id == "stadt-paderborn"
    assert (stadt.praefix, stadt.kennung) == ("MELDID", "05774032")
    assert owl.by_behoerdenkennung("meldid:05774032") is stadt  # praefix case-insensitive
    with pytest.raises(UnknownAgencyError, match="MELDID:99999999"):
        owl.by_behoerdenkennung("MELDID:99999999")

    ihk = owl.get("ihk-owl")
    assert ihk.channel is Channel.MAILBOX and ihk.endpoint is None
    assert ihk.mailbox_host == "stadt-paderborn"
    assert owl.hosted_by("stadt-paderborn") == (ihk, owl.get("wsp-nrw"), owl.get("dms-paderborn"))
    assert owl.delivery_endpoint("ihk-owl") == stadt.endpoint

    finanzamt = owl.get("finanzamt-paderborn")
    assert finanzamt.channel is Channel.FILE
    assert finanzamt.drop_dir == ROOT / "var" / "drop" / "finanzamt-paderborn"
    assert owl.delivery_endpoint("finanzamt-paderborn") is None

    http = [a for a in owl if a.channel is Channel.HTTP]
    ports = set()
    for agency in http:
        assert agency.endpoint is not None
        parts = urlsplit(agency.endpoint)
        assert parts.hostname == "127.0.0.1"
        assert parts.port is not None and 8701 <= parts.port <= 8799
        ports.add(parts.port)
    assert len(ports) == len(http) == 6
    kreis = owl.get("kreis-paderborn")  # its Fachverfahren speak XTA 2
    assert kreis.channel is Channel.XTA and kreis.endpoint is None
    assert kreis.xta_url == "http://127.0.0.1:8702/services/XTAService"
    assert urlsplit(kreis.xta_url).port not in ports
    envs = [a.token_env for a in owl]
    assert len(set(envs)) == len(OWL_IDS) and all(e.startswith("AMTSBOTE_TOKEN_") for e in envs)
    assert owl.get("kreis-paderborn").token_env == "AMTSBOTE_TOKEN_KREIS_PADERBORN"
    assert all(a.rate_limit > 0 and a.concurrency >= 1 for a in owl)
    with pytest.raises(UnknownAgencyError, match="nowhere"):
        owl.get("nowhere")
    assert "dguv" in owl and "nowhere" not in owl


def test_agencies_env_var_selects_another_file(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(_valid_yaml(), encoding="utf-8")
    loaded = Directory.default(environ={"AMTSBOTE_AGENCIES": str(other)})
    assert loaded.source == other
    assert [a.id for a in loaded] == ["amt-a", "amt-b"]


# ------------------------------------------------------------------------------ bad files


def _valid_yaml() -> str:
    return textwrap.dedent(
        """\
        version: 1
        roles: [Gewerbeamt, IHK]
        agencies:
          - id: amt-a
            name: Amt A
            behoerdenkennung: "MELDID:01001000"
            roles: [Gewerbeamt]
            channel: http
            endpoint: http://127.0.0.1:8701
            token_env: TOKEN_A
          - id: amt-b
            name: Amt B
            behoerdenkennung: "IHK:0001"
            roles: [IHK]
            channel: mailbox
            mailbox_host: amt-a
            token_env: TOKEN_B
        """
    )


def _load_bad(tmp_path: Path, text: str) -> tuple[Path, InvalidDirectoryError]:
    path = tmp_path / "agencies.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(InvalidDirectoryError) as info:
        Directory.load(path)
    return path, info.value


def _replace(old: str, new: str) -> str:
    text = _valid_yaml()
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            count += 1
            if count == occurrence:
                return number
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("old", "new", "needle", "field", "message"),
    [
        (
            "    token_env: TOKEN_A\n",
            "    token_env: TOKEN_A\n    colour: red\n",
            "colour",
            "agencies[0].colour",
            "unknown field",
        ),
        (
            "    channel: http\n",
            "    channel: smtp\n",
            "smtp",
            "agencies[0].channel",
            "unknown channel 'smtp'",
        ),
        (
            "    name: Amt B\n",
            "    name: [Amt, B]\n",
            "[Amt, B]",
            "agencies[1].name",
            "wrong type: expected a string, got a list",
        ),
        (
            "    token_env: TOKEN_A\n",
            '    token_env: TOKEN_A\n    concurrency: "4"\n',
            "concurrency",
            "agencies[0].concurrency",
            "expected an integer, got string '4'",
        ),
        (
            "    token_env: TOKEN_A\n",
            "    token_env: TOKEN_A\n    rate_limit: 0\n",
            "rate_limit",
            "agencies[0].rate_limit",
            "must be > 0",
        ),
        (
            "- id: amt-b\n",
            "- id: amt-a\n",
            "id: amt-a#2",
            "agencies[1].id",
            "duplicate id 'amt-a': already used by 'amt-a' at agencies[0] (line 4)",
        ),
        (
            '"IHK:0001"',
            '"meldid:01001000"',
            "meldid",
            "agencies[1].behoerdenkennung",
            "duplicate behoerdenkennung",
        ),
        (
            '"IHK:0001"',
            '"IHK0001"',
            "IHK0001",
            "agencies[1].behoerdenkennung",
            "is not 'praefix:kennung'",
        ),
        (
            "http://127.0.0.1:8701",
            "ftp://127.0.0.1:8701",
            "ftp:",
            "agencies[0].endpoint",
            "bad URL 'ftp://127.0.0.1:8701': scheme must be http or https",
        ),
        (
            "http://127.0.0.1:8701",
            "http://user:pw@127.0.0.1:8701",
            "user:pw",
            "agencies[0].endpoint",
            "credentials do not belong in the URL",
        ),
        (
            "    mailbox_host: amt-a\n",
            "    mailbox_host: amt-x\n",
            "amt-x",
            "agencies[1].mailbox_host",
            "unknown mailbox host 'amt-x'",
        ),
        (
            "    roles: [IHK]\n",
            "    roles: [IKH]\n",
            "IKH",
            "agencies[1].roles[0]",
            "unknown role 'IKH'",
        ),
        (
            "    token_env: TOKEN_B\n",
            "    token_env: TOKEN_A\n",
            "TOKEN_A#2",
            "agencies[1].token_env",
            "duplicate token_env 'TOKEN_A'",
        ),
        (
            "    token_env: TOKEN_B\n",
            "    token_env: token-b\n",
            "token-b",
            "agencies[1].token_env",
            "is not an environment variable name",
        ),
        (
            "    mailbox_host: amt-a\n",
            "    mailbox_host: amt-a\n    endpoint: http://127.0.0.1:1\n",
            "endpoint: http://127.0.0.1:1",
            "agencies[1].endpoint",
            "not allowed for channel mailbox",
        ),
        ("- id: amt-b\n", "- id: Amt B\n", "Amt B", "agencies[1].id", "is not a slug"),
        ("version: 1\n", "version: 1\nextra: 1\n", "extra", "extra", "unknown field"),
        ("version: 1\n", "version: 2\n", "version", "version", "unsupported version 2"),
        (
            "    name: Amt A\n",
            "    name: Amt A\n    name: Amt A2\n",
            "Amt A2",
            "agencies[0].name",
            "duplicate key (first at line 5)",
        ),
    ],
)
def test_bad_field_is_named_with_file_line_and_field(
    tmp_path: Path, old: str, new: str, needle: str, field: str, message: str
) -> None:
    text = _replace(old, new)
    path, error = _load_bad(tmp_path, text)
    needle, _, occurrence = needle.partition("#")
    line = _line_of(text, needle, occurrence=int(occurrence or 1))
    assert error.file == str(path)
    assert error.line == line
    assert error.field == field
    assert f"{path}:{line}:" in str(error)
    assert f"{field}: " in str(error)
    assert message in str(error)


def test_missing_required_field_points_at_the_agency(tmp_path: Path) -> None:
    text = _replace('    behoerdenkennung: "MELDID:01001000"\n', "")
    path, error = _load_bad(tmp_path, text)
    assert (error.line, error.field) == (4, "agencies[0].behoerdenkennung")
    assert str(error) == f"{path}:4:5: agencies[0].behoerdenkennung: missing required field"


def test_http_agency_without_endpoint(tmp_path: Path) -> None:
    text = _replace("    endpoint: http://127.0.0.1:8701\n", "")
    path, error = _load_bad(tmp_path, text)
    line = _line_of(text, "channel: http")
    assert f"{path}:{line}:" in str(error)
    assert "agencies[0].channel: channel http needs the field endpoint" in str(error)


def test_mailbox_host_must_run_an_inbox(tmp_path: Path) -> None:
    text = _replace(
        "    channel: http\n    endpoint: http://127.0.0.1:8701\n",
        "    channel: file\n    drop_dir: drop/a\n",
    )
    path, error = _load_bad(tmp_path, text)
    line = _line_of(text, "mailbox_host: amt-a")
    assert f"{path}:{line}:" in str(error)
    assert "agencies[1].mailbox_host: mailbox host 'amt-a' has channel file" in str(error)


def test_all_problems_are_reported_in_line_order(tmp_path: Path) -> None:
    text = _replace("    channel: http\n", "    channel: pigeon\n").replace(
        "    roles: [IHK]\n", "    roles: [Kammer]\n"
    )
    _, error = _load_bad(tmp_path, text)
    assert [p.field for p in error.problems] == ["agencies[0].channel", "agencies[1].roles[0]"]
    assert [p.line for p in error.problems] == [8, 14]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("version: 1\nroles: [A]\nagencies:\n  - id: a\n   name: b\n", 5, "", "not valid YAML"),
        ("", 1, "", "the file is empty"),
        ("- just\n- a list\n", 1, "", "must be a mapping, got a list"),
        ("version: 1\nroles: [A]\n", 1, "agencies", "missing required field"),
        ("version: 1\nroles: [A]\nagencies: {}\n", 3, "agencies", "expected a list of agencies"),
        ("version: 1\nroles: [A]\nagencies: []\n", 3, "agencies", "the list of agencies is empty"),
    ],
)
def test_broken_file_structure(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path, error = _load_bad(tmp_path, text)
    assert error.file == str(path) and error.line == line and error.field == field
    assert f"{path}:{line}:" in str(error)
    assert message in str(error)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InvalidDirectoryError, match=r"nope\.yaml: cannot read"):
        Directory.load(missing)


def test_relative_drop_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    text = _replace(
        "    channel: http\n    endpoint: http://127.0.0.1:8701\n",
        "    channel: http\n    endpoint: http://127.0.0.1:8701\n",
    ).replace(
        "    channel: mailbox\n    mailbox_host: amt-a\n",
        "    channel: file\n    drop_dir: out/b\n",
    )
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "agencies.yaml").write_text(text, encoding="utf-8")
    loaded = Directory.load(sub / "agencies.yaml")
    assert loaded.get("amt-b").drop_dir == sub / "out" / "b"


def test_agencies_built_in_code_are_checked_too() -> None:
    a = Agency(
        id="amt-a",
        name="Amt A",
        behoerdenkennung="X:1",
        roles=("R",),
        channel=Channel.HTTP,
        token_env="T_A",
        endpoint="http://127.0.0.1:1/",
    )
    assert a.endpoint == "http://127.0.0.1:1"  # trailing slash dropped
    with pytest.raises(InvalidDirectoryError, match=r"agency 'amt-b'\.channel: unknown channel"):
        Agency(
            id="amt-b",
            name="B",
            behoerdenkennung="X:2",
            roles=("R",),
            channel="smtp",  # type: ignore[arg-type]
            token_env="T_B",
        )
    b = Agency(
        id="amt-b",
        name="B",
        behoerdenkennung="x:1",
        roles=("R",),
        channel=Channel.MAILBOX,
        mailbox_host="amt-c",
        token_env="T_B",
    )
    with pytest.raises(InvalidDirectoryError) as info:
        Directory([a, b], roles=["R"])
    text = str(info.value)
    assert "agencies[1].behoerdenkennung: duplicate behoerdenkennung 'x:1'" in text
    assert "agencies[1].mailbox_host: unknown mailbox host 'amt-c'" in text
    with pytest.raises(InvalidDirectoryError, match=r"agencies\[0\]\.roles\[0\]: unknown role"):
        Directory([a], roles=["Other"])


# --------------------------------------------------------------------------------- tokens


def test_token_from_environment_else_clear_error(owl: Directory) -> None:
    env = {"AMTSBOTE_TOKEN_KREIS_PADERBORN": " s3cret \n"}
    d = Directory.load(DEFAULT_PATH, environ=env)
    assert d.token_for("kreis-paderborn") == "s3cret"
    assert d.token_source("kreis-paderborn") == "env"
    with pytest.raises(MissingTokenError) as info:
        d.token_for("dguv")
    assert info.value.env_var == "AMTSBOTE_TOKEN_DGUV"
    assert "AMTSBOTE_TOKEN_DGUV is unset or empty" in str(info.value)
    assert "AMTSBOTE_DEV_TOKENS=1" in str(info.value)
    assert d.token_source("dguv") == "missing"


def test_dev_tokens_only_when_switched_on() -> None:
    expected = "dev-" + hmac.new(b"amtsbote-dev-token", b"dguv", hashlib.sha256).hexdigest()[:32]
    assert dev_token("dguv") == expected
    assert dev_token("it-nrw") != expected
    on = Directory.load(DEFAULT_PATH, environ={"AMTSBOTE_DEV_TOKENS": "1"})
    assert on.token_for("dguv") == expected
    assert on.token_source("dguv") == "dev"
    assert on.authenticate(expected) == on.get("dguv")
    both = Directory.load(
        DEFAULT_PATH, environ={"AMTSBOTE_DEV_TOKENS": "yes", "AMTSBOTE_TOKEN_DGUV": "real"}
    )
    assert both.token_for("dguv") == "real"  # a configured token wins
    assert both.authenticate(expected) is None
    off = Directory.load(DEFAULT_PATH, environ={"AMTSBOTE_DEV_TOKENS": "0"})
    assert off.authenticate(expected) is None
    with pytest.raises(MissingTokenError):
        off.token_for("dguv")


def test_authenticate_compares_every_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {f"AMTSBOTE_TOKEN_{i}": f"token-{i}" for i in ("STADT_PADERBORN", "IT_NRW", "DGUV")}
    d = Directory.load(DEFAULT_PATH, environ=env)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(directory_core.hmac, "compare_digest", recording)
    assert d.authenticate("token-STADT_PADERBORN") == d.get("stadt-paderborn")
    # no early exit: all three configured tokens were compared, the first one matched
    assert [b for _, b in calls] == [b"token-STADT_PADERBORN", b"token-IT_NRW", b"token-DGUV"]
    assert d.authenticate("token-unknown") is None
    assert d.authenticate("") is None and d.authenticate(None) is None
    assert d.authenticate("tökén") is None  # non-ASCII does not break the comparison


def test_shared_token_is_ambiguous() -> None:
    env = {"AMTSBOTE_TOKEN_IT_NRW": "same", "AMTSBOTE_TOKEN_DGUV": "same"}
    d = Directory.load(DEFAULT_PATH, environ=env)
    with pytest.raises(AmbiguousTokenError, match="it-nrw, dguv"):
        d.authenticate("same")


# ------------------------------------------------------------------------------------ CLI


def test_cli_prints_the_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMTSBOTE_AGENCIES", raising=False)
    monkeypatch.delenv("AMTSBOTE_DEV_TOKENS", raising=False)
    monkeypatch.setenv("AMTSBOTE_TOKEN_DGUV", "do-not-print-me")
    assert main(["agencies"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "BEHOERDENKENNUNG", "CHANNEL", "TARGET"]
    rows = {line.split()[0]: line for line in lines[1 : 1 + len(OWL_IDS)]}
    assert list(rows) == OWL_IDS
    assert "MELDID:05774032" in rows["stadt-paderborn"]
    assert "mailbox on stadt-paderborn" in rows["ihk-owl"]
    assert "http://127.0.0.1:8702/services/XTAService" in rows["kreis-paderborn"]
    assert "AMTSBOTE_TOKEN_DGUV (env)" in rows["dguv"]
    assert "AMTSBOTE_TOKEN_IT_NRW (missing)" in rows["it-nrw"]
    assert "do-not-print-me" not in out
    assert f"{len(OWL_IDS)} agencies from {DEFAULT_PATH}" in out


def test_cli_json_and_role_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "agencies",
                "--file",
                str(DEFAULT_PATH),
                "--format",
                "json",
                "--role",
                "Ausländerbehörde",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [a["id"] for a in data["agencies"]] == ["kreis-paderborn"]
    assert data["agencies"][0]["channel"] == "xta"
    assert data["agencies"][0]["xta_url"] == "http://127.0.0.1:8702/services/XTAService"
    assert main(["agencies", "--role", "Nope"]) == 2
    assert "role 'Nope' is not declared" in capsys.readouterr().err


def test_cli_bad_file_exits_2_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text(_replace("    channel: http\n", "    channel: smtp\n"), encoding="utf-8")
    assert main(["agencies", "--file", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:8:14: agencies[0].channel: unknown channel 'smtp'" in captured.err


# ------------------------------------------------------------------ transfer-dir and webdav

_MAILBOX_B = "    channel: mailbox\n    mailbox_host: amt-a\n"


def test_transfer_dir_and_webdav_agencies_load(tmp_path: Path) -> None:
    text = _replace(
        _MAILBOX_B,
        "    channel: webdav\n"
        "    webdav_url: https://dav.example.org/transfer/stadt/\n"
        "    webdav_user_env: DAV_USER_B\n"
        "    webdav_password_env: DAV_PASSWORD_B\n"
        "    webdav_ca: pki/ca.pem\n",
    ).replace(
        "    channel: http\n    endpoint: http://127.0.0.1:8701\n",
        "    channel: transfer-dir\n    transfer_dir: transfer/a\n",
    )
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "agencies.yaml").write_text(text, encoding="utf-8")
    loaded = Directory.load(sub / "agencies.yaml")
    a, b = loaded.get("amt-a"), loaded.get("amt-b")
    assert a.channel is Channel.TRANSFER_DIR and a.transfer_dir == sub / "transfer" / "a"
    assert b.channel is Channel.WEBDAV
    assert b.webdav_url == "https://dav.example.org/transfer/stadt"  # no trailing slash
    assert (b.webdav_user_env, b.webdav_password_env) == ("DAV_USER_B", "DAV_PASSWORD_B")
    assert b.webdav_ca == sub / "pki" / "ca.pem"
    assert json.loads(loaded.to_json())["agencies"][1]["webdav_url"] == b.webdav_url
    assert loaded.delivery_endpoint("amt-b") is None


@pytest.mark.parametrize(
    ("block", "needle", "field", "message"),
    [
        (
            "    channel: transfer-dir\n",
            "channel: transfer-dir",
            "agencies[1].channel",
            "channel transfer-dir needs the field transfer_dir",
        ),
        (
            "    channel: webdav\n    webdav_url: https://dav.example.org/t\n"
            "    webdav_user_env: DAV_USER\n",
            "channel: webdav",
            "agencies[1].channel",
            "channel webdav needs the field webdav_password_env",
        ),
        (
            "    channel: webdav\n    webdav_url: ftp://dav.example.org/t\n"
            "    webdav_user_env: DAV_USER\n    webdav_password_env: DAV_PW\n",
            "webdav_url:",
            "agencies[1].webdav_url",
            "scheme must be http or https",
        ),
        (
            "    channel: webdav\n    webdav_url: https://u:pw@dav.example.org/t\n"
            "    webdav_user_env: DAV_USER\n    webdav_password_env: DAV_PW\n",
            "webdav_url:",
            "agencies[1].webdav_url",
            "credentials do not belong in the URL",
        ),
        (
            "    channel: webdav\n    webdav_url: https://dav.example.org/t\n"
            "    webdav_user_env: DAV_USER\n    webdav_password_env: geheim123\n",
            "webdav_password_env:",
            "agencies[1].webdav_password_env",
            "is not an environment variable name",
        ),
        (
            "    channel: transfer-dir\n    transfer_dir: t/b\n    webdav_ca: ca.pem\n",
            "webdav_ca:",
            "agencies[1].webdav_ca",
            "not allowed for channel transfer-dir (only for channel webdav)",
        ),
        (
            "    channel: file\n    drop_dir: d/b\n    transfer_dir: t/b\n",
            "transfer_dir:",
            "agencies[1].transfer_dir",
            "not allowed for channel file (only for channel transfer-dir)",
        ),
        (
            "    channel: webdav\n    webdav_url: https://dav.example.org/t\n"
            "    webdav_user_env: DAV_USER\n    webdav_password_env: DAV_PW\n"
            "    webdav_ca: [a, b]\n",
            "webdav_ca:",
            "agencies[1].webdav_ca",
            "wrong type: expected a string",
        ),
    ],
)
def test_transfer_channel_fields_are_checked_with_file_and_line(
    tmp_path: Path, block: str, needle: str, field: str, message: str
) -> None:
    text = _replace(_MAILBOX_B, block)
    path, error = _load_bad(tmp_path, text)
    line = _line_of(text, needle)
    problem = next(p for p in error.problems if p.field == field)
    assert problem.file == str(path) and problem.line == line
    assert f"{path}:{line}:" in str(error)
    assert message in str(error)


def test_transfer_dir_and_webdav_url_are_unique(tmp_path: Path) -> None:
    text = _replace(
        "    channel: http\n    endpoint: http://127.0.0.1:8701\n",
        "    channel: transfer-dir\n    transfer_dir: t/x\n",
    ).replace(_MAILBOX_B, "    channel: transfer-dir\n    transfer_dir: t/./x\n")
    _, error = _load_bad(tmp_path, text)
    assert "agencies[1].transfer_dir: duplicate transfer_dir" in str(error)


def test_transfer_agencies_built_in_code_are_checked_too() -> None:
    with pytest.raises(InvalidDirectoryError, match="needs the field webdav_url"):
        Agency(
            id="archiv",
            name="Archiv",
            behoerdenkennung="LA:05",
            roles=("Archiv",),
            channel=Channel.WEBDAV,
            token_env="T",
            webdav_user_env="U",
            webdav_password_env="P",
        )
    agency = Agency(
        id="archiv",
        name="Archiv",
        behoerdenkennung="LA:05",
        roles=("Archiv",),
        channel=Channel.TRANSFER_DIR,
        token_env="T",
        transfer_dir="/srv/transfer",  # type: ignore[arg-type]
    )
    assert agency.transfer_dir == Path("/srv/transfer")
