"""Encrypted by default: without ``AMTSBOTE_JOURNAL_KEY`` the journal's key is the data dir's
``journal.key`` (created 0600 on first use, reused after); plaintext only with
``AMTSBOTE_JOURNAL_PLAINTEXT`` and a warning; ``Journal(url)`` itself keeps its meaning."""

from __future__ import annotations

import logging
import stat
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.config import Settings
from connectors.exceptions import ConfigError
from connectors.journal import Journal, MessageMeta, generate_key
from connectors.journal.keyfile import KEY_FILE_NAME, journal_key_for


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"AMTSBOTE_DATA_DIR": str(tmp_path / "state"), **extra}


def record(j: Journal) -> str:
    m = MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1")
    j.record_inbound(b"<secret>Tibor</secret>", m)
    return m.nachrichten_uuid


def encodings(tmp_path: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT payload_encoding FROM messages")).scalars())
    finally:
        engine.dispose()


def test_a_key_is_created_0600_on_first_use_and_reused(tmp_path: Path) -> None:
    e = env(tmp_path)
    path = tmp_path / "state" / KEY_FILE_NAME
    with Journal.from_env(create=True, environ=e) as j:
        assert j.encrypts
        uuid_ = record(j)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    key = path.read_text().strip()
    assert journal_key_for(Settings.from_env(e)) == key
    with Journal.from_env(environ=e) as again:  # the next command, same data dir
        assert again.payload(uuid_) == b"<secret>Tibor</secret>"
    assert path.read_text().strip() == key
    assert encodings(tmp_path) == ["zlib+fernet"]


def test_journal_without_url_uses_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Journal(create=True)`` (the demo, the flow runtime) reads the same settings."""
    for name, value in env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AMTSBOTE_JOURNAL_KEY", raising=False)
    monkeypatch.delenv("AMTSBOTE_JOURNAL_PLAINTEXT", raising=False)
    with Journal(create=True) as j:
        assert j.encrypts
        uuid_ = record(j)
    with Journal.from_env(environ=env(tmp_path)) as again:
        assert again.payload(uuid_) == b"<secret>Tibor</secret>"


def test_a_configured_key_wins_and_no_file_is_made(tmp_path: Path) -> None:
    key = generate_key()
    e = env(tmp_path, AMTSBOTE_JOURNAL_KEY=key)
    assert journal_key_for(Settings.from_env(e)) == key
    assert not (tmp_path / "state" / KEY_FILE_NAME).exists()


def test_plaintext_opt_out_logs_a_warning_and_stores_plaintext(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = env(tmp_path, AMTSBOTE_JOURNAL_PLAINTEXT="1")
    with (
        caplog.at_level(logging.WARNING, logger="connectors.journal"),
        Journal.from_env(create=True, environ=e) as j,
    ):
        assert not j.encrypts
        record(j)
    assert any(
        "NOT encrypted" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    assert not (tmp_path / "state" / KEY_FILE_NAME).exists()
    assert encodings(tmp_path) == ["zlib"]


def test_the_library_constructor_keeps_its_meaning(tmp_path: Path) -> None:
    with Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", create=True) as j:
        assert not j.encrypts
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    e = env(tmp_path)
    journal_key_for(Settings.from_env(e))
    path = tmp_path / "state" / KEY_FILE_NAME
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        journal_key_for(Settings.from_env(e))


def test_concurrent_first_runs_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    keys: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: keys.append(journal_key_for(settings))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1 and keys[0]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [KEY_FILE_NAME]
