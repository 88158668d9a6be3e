"""The ``AMTSBOTE_*`` settings: one model (:mod:`connectors.settings`), documented in
``docs/settings.md``, every name in the tree known, bad values named."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.config import Settings
from connectors.exceptions import ConfigError
from connectors.settings import DYNAMIC_VARIABLES, AmtsboteSettings, settings_markdown

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"AMTSBOTE_[A-Z0-9_]+")
#: Where names are looked for: code, tests, benchmarks, docs and the deployment files.
SEARCHED = ("connectors", "flows", "xoev", "tests", "bench", "docs", "deployments")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".example", ".service", ".toml", ""}


def _names_in_tree(skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every ``AMTSBOTE_*`` literal → the first ``file:line`` naming it (``skip``: files)."""
    found: dict[str, str] = {}
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "prefect.yaml"]
    for top in SEARCHED:
        files += [p for p in sorted((ROOT / top).rglob("*")) if p.is_file()]
    for path in files:
        if path.suffix not in SUFFIXES or "__pycache__" in path.parts or not path.exists():
            continue
        if str(path.relative_to(ROOT)) in skip:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for name in NAME.findall(line):
                found.setdefault(name, f"{path.relative_to(ROOT)}:{number}")
    return found


def _known(name: str) -> bool:
    if name in AmtsboteSettings.variables() or name in DYNAMIC_VARIABLES:
        return True
    return any(name.startswith(p) for p in DYNAMIC_VARIABLES if p.endswith("_"))


def test_every_amtsbote_variable_in_the_tree_is_a_setting_or_documented_dynamic() -> None:
    names = _names_in_tree()
    assert "AMTSBOTE_DATA_DIR" in names and "AMTSBOTE_TOKEN_STADT_PADERBORN" in names
    unknown = [f"{where}: {name}" for name, where in sorted(names.items()) if not _known(name)]
    assert unknown == [], (
        "AMTSBOTE_* names that are neither a field of connectors.settings.AmtsboteSettings nor "
        "in DYNAMIC_VARIABLES:\n" + "\n".join(unknown)
    )


def test_every_setting_is_used_somewhere_outside_the_settings_module() -> None:
    names = _names_in_tree(skip=("docs/settings.md", "connectors/settings.py"))
    fields = AmtsboteSettings.variables()
    unused = [v for v in fields if v not in names]
    assert unused == []


def test_family_routing_variables_are_dynamic_routing_names() -> None:
    from flows.families import all_families

    for family in all_families():
        assert family.routing_env.startswith("AMTSBOTE_ROUTING"), family.name
        assert _known(family.routing_env)


def test_docs_settings_md_is_generated_from_the_model() -> None:
    shipped = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert shipped == settings_markdown(), (
        "docs/settings.md is out of date: run "
        "`.venv/bin/python -m connectors.settings > docs/settings.md`"
    )
    for variable in AmtsboteSettings.variables():
        assert f"| `{variable}` |" in shipped


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("AMTSBOTE_SEND_RETRY_DELAYS", "soon", "expected comma-separated seconds, got 'soon'"),
        ("AMTSBOTE_SEND_RETRY_DELAYS", "1,-2", "expected non-negative seconds"),
        ("AMTSBOTE_RECEIPT_WAIT", "a minute", "not an ISO 8601 duration"),
        ("AMTSBOTE_POLL_INTERVAL", "fast", "expected seconds"),
        ("AMTSBOTE_SUSPEND", "perhaps", "expected on or off, got 'perhaps'"),
        ("AMTSBOTE_DEV_TOKENS", "2", "expected on or off"),
        ("AMTSBOTE_AGENCY_LIMITS", "maybe", "expected on or off, got 'maybe'"),
        ("AMTSBOTE_LIMIT_WAIT", "0", "must be > 0"),
        ("AMTSBOTE_LIMIT_WAIT", "long", "expected seconds, got 'long'"),
        ("AMTSBOTE_DATABASE_URL", "nonsense", "not a database URL"),
        ("AMTSBOTE_DATABASE_URL", "mysql://u:secret@h/db", "unsupported database 'mysql'"),
        ("AMTSBOTE_INBOX_MAX_CONTAINER_BYTES", "lots", "'lots' is not a number"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        AmtsboteSettings.from_environ({variable: value})
    assert info.value.setting == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert words in str(info.value)
    assert "secret" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_defaults_blank_values_and_stripping() -> None:
    s = AmtsboteSettings.from_environ({"AMTSBOTE_JOURNAL_KEY": "  ", "AMTSBOTE_SUSPEND": " off "})
    assert s.journal_key is None
    assert s.suspend is False
    assert s.send_retry_delays == (2.0, 10.0, 60.0, 300.0)
    assert s.receipt_wait == timedelta(seconds=60)
    assert s.data_dir == (Path.cwd() / "var").resolve()
    assert AmtsboteSettings.from_environ(
        {"AMTSBOTE_SEND_RETRY_DELAYS": "0.5, 1", "amtsbote_limit_wait": "3"}
    ).send_retry_delays == (0.5, 1.0)


def test_only_reads_the_named_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {"AMTSBOTE_LIMIT_WAIT": "never", "AMTSBOTE_HOME_AGENCY": "kreis-paderborn"}
    assert AmtsboteSettings.from_environ(bad, only=("home_agency",)).home_agency == (
        "kreis-paderborn"
    )
    with pytest.raises(ConfigError, match="AMTSBOTE_LIMIT_WAIT"):
        AmtsboteSettings.from_environ(bad)
    with pytest.raises(ValueError, match="no such settings field"):
        AmtsboteSettings.from_environ({}, only=("nope",))
    # without a mapping: os.environ
    monkeypatch.setenv("AMTSBOTE_POLL_INTERVAL", "7")
    assert AmtsboteSettings.from_environ(only=("poll_interval",)).poll_interval == 7.0
    assert AmtsboteSettings().poll_interval == 7.0
    # a given mapping is all there is
    assert AmtsboteSettings.from_environ({}).poll_interval == 2.0


def test_several_bad_values_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        AmtsboteSettings.from_environ({"AMTSBOTE_SUSPEND": "x", "AMTSBOTE_LIMIT_WAIT": "y"})
    assert "AMTSBOTE_SUSPEND" in str(info.value) and "AMTSBOTE_LIMIT_WAIT" in str(info.value)


def test_secrets_stay_out_of_repr() -> None:
    s = AmtsboteSettings.from_environ(
        {"AMTSBOTE_JOURNAL_KEY": "k" * 44, "AMTSBOTE_DATABASE_URL": "postgresql://u:pw@h/db"}
    )
    assert "kkkk" not in repr(s) and "pw" not in repr(s)
    assert "pw" not in repr(Settings.from_env({"AMTSBOTE_DATABASE_URL": "postgresql://u:pw@h/d"}))


def test_component_readers_go_through_the_model() -> None:
    from connectors.directory import dev_tokens_enabled
    from connectors.inbox.config import InboxConfig, home_agency
    from connectors.inbox.exceptions import InboxConfigError
    from flows.operations import LimitSettings
    from flows.runtime import FlowSettings

    env = {
        "AMTSBOTE_SEND_RETRY_DELAYS": "1,2",
        "AMTSBOTE_RECEIPT_WAIT": "PT5S",
        "AMTSBOTE_POLL_INTERVAL": "0.5",
        "AMTSBOTE_SUSPEND": "0",
        "AMTSBOTE_AGENCY_LIMITS": "off",
        "AMTSBOTE_LIMIT_WAIT": "3",
        "AMTSBOTE_DEV_TOKENS": "yes",
        "AMTSBOTE_HOME_AGENCY": "kreis-paderborn",
        "AMTSBOTE_INBOX_MAX_CONTAINER_BYTES": "1024",
    }
    assert FlowSettings.from_env(env) == FlowSettings(
        retry_delays=(1.0, 2.0),
        receipt_wait=timedelta(seconds=5),
        poll_interval=0.5,
        suspend=False,
    )
    assert FlowSettings.from_env({}) == FlowSettings()
    limits = LimitSettings.from_env(env)
    assert (limits.enabled, limits.wait) == (False, 3.0)
    assert dev_tokens_enabled(env) and not dev_tokens_enabled({})
    assert home_agency(env) == "kreis-paderborn"
    assert InboxConfig.from_env(env).max_container_bytes == 1024
    assert InboxConfig.from_env(env, max_container_bytes=5).max_container_bytes == 5
    with pytest.raises(InboxConfigError, match=r"AMTSBOTE_INBOX_MAX_CONTAINER_BYTES='x' is not"):
        InboxConfig.from_env({"AMTSBOTE_INBOX_MAX_CONTAINER_BYTES": "x"})
    with pytest.raises(ValueError, match="AMTSBOTE_SEND_RETRY_DELAYS: expected comma-separated"):
        FlowSettings.from_env({"AMTSBOTE_SEND_RETRY_DELAYS": "x"})
