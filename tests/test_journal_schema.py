"""The journal's schema and plumbing: Alembic migrations (empty database → head, twice, down and
up), the append-only event log enforced by the database itself, SQLite settings, the
``amtsbote db`` command, settings from the environment and key handling."""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from connectors.config import Settings
from connectors.exceptions import ConfigError, JournalKeyError
from connectors.journal import Journal, MessageMeta, generate_key, head_revision
from connectors.journal.crypto import PayloadCodec, parse_keys
from connectors.journal.engine import create_journal_engine
from connectors.journal.migrate import VERSION_TABLE, current_revision, downgrade, upgrade
from connectors.journal.models import metadata
from flows.cli import main

TABLES = {
    "cases",
    "messages",
    "deliveries",
    "delivery_attempts",
    "events",
    "expectations",
    "journal_seal",
    "blobs",
    "message_blobs",
    "journal_secrets",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- migrations


def test_upgrade_on_an_empty_database_creates_everything(db_url: str) -> None:
    engine = create_journal_engine(db_url)
    try:
        first = upgrade(engine)
        assert (first.before, first.after) == (None, head_revision()) and first.changed
        assert _tables(db_url) == TABLES | {VERSION_TABLE}
        with Journal(db_url) as j:
            j.create_case("keep-1", procedure="p")
        second = upgrade(engine)  # harmless at head
        assert (second.before, second.after) == (head_revision(), head_revision())
        assert not second.changed
        with Journal(db_url) as j:
            assert j.get_case("keep-1").procedure == "p"
    finally:
        engine.dispose()


def test_head_revision_is_the_scripts_head() -> None:
    from connectors.journal.migrate import HEAD_REVISION, script_head_revision

    assert script_head_revision() == HEAD_REVISION == head_revision()


def test_opening_a_migrated_journal_does_not_import_alembic(tmp_path: Path) -> None:
    """Flow-run processes open the journal without ``create``: checking the revision is plain
    SQL, so the ~0.2 s import of Alembic is paid only where migrations run."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    Journal(url, create=True).close()
    code = (
        "import sys; from connectors.journal import Journal; j = Journal(sys.argv[1]); "
        "j.check_schema(); j.close(); print(sorted(m for m in sys.modules if "
        "m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_current_revision_of_an_empty_database_is_none(db_url: str) -> None:
    engine = create_journal_engine(db_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) is None
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_journal_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
    finally:
        engine.dispose()
    unexpected = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert unexpected == []


def test_downgrade_and_upgrade_again(db_url: str) -> None:
    engine = create_journal_engine(db_url)
    try:
        upgrade(engine)
        down = downgrade(engine, "base")
        assert down.after is None
        assert _tables(db_url) <= {VERSION_TABLE}
        assert upgrade(engine).after == head_revision()
        assert _tables(db_url) >= TABLES
    finally:
        engine.dispose()


def test_concurrent_upgrades_are_serialised(db_url: str) -> None:
    import threading

    results = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        engine = create_journal_engine(db_url)
        try:
            barrier.wait(timeout=30)
            results.append(upgrade(engine))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(r.changed for r in results) == [False, False, True]


# ----------------------------------------------------------------------------- append-only log


def test_event_log_refuses_update_and_delete_in_the_database(db_url: str) -> None:
    with Journal(db_url, create=True) as j:
        j.log_event("test.note", actor="test", detail={"n": 1})
    engine = create_engine(db_url)
    try:
        for sql in ("UPDATE events SET actor = 'forger'", "DELETE FROM events"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(sql))
        if engine.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text("TRUNCATE events"))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT actor, kind FROM events")).all()
        assert [tuple(r) for r in rows] == [("test", "test.note")]
        with engine.begin() as conn:  # appending still works
            conn.execute(
                text(
                    "INSERT INTO events (at, actor, kind, detail) "
                    "VALUES (CURRENT_TIMESTAMP, 'sql', 'manual.insert', '{}')"
                )
            )
    finally:
        engine.dispose()


def test_sqlite_triggers_hold_for_a_plain_sqlite3_client(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(f"sqlite:///{path}", create=True) as j:
        j.log_event("test.note", actor="test")
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
            conn.execute("DELETE FROM events")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute("UPDATE events SET kind = 'x'")
    finally:
        conn.close()


# ----------------------------------------------------------------------------- SQLite setup


def test_sqlite_connection_settings_and_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite"
    with Journal(f"sqlite:///{path}", create=True) as j:
        j.record_inbound(b"<a/>", MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1"))
        engine = j._engine
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_foreign_keys_are_enforced_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    Journal(url, create=True).close()
    engine = create_journal_engine(url)
    try:
        with pytest.raises(DBAPIError, match="FOREIGN KEY"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO deliveries (message_id, recipient, state, attempts, created_at, "
                    "updated_at) VALUES (4711, 'a:1', 'created', 0, '2026-01-01', '2026-01-01')"
                )
            )
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- CLI


def test_cli_db_upgrade_and_current(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--database-url", db_url]) == 1
    assert "amtsbote db upgrade" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", db_url]) == 0
    assert f"upgraded (empty) → {head_revision()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", db_url]) == 0
    assert f"already at revision {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current", "--database-url", db_url]) == 0
    assert f"revision {head_revision()} (head {head_revision()})" in capsys.readouterr().out
    with Journal(db_url) as j:  # usable as migrated by the CLI
        assert j.schema_revision() == head_revision()


def test_cli_uses_the_data_dir_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AMTSBOTE_DATABASE_URL", raising=False)
    monkeypatch.setenv("AMTSBOTE_DATA_DIR", str(tmp_path / "state"))
    assert main(["db", "current"]) == 1
    assert "no database file yet" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "state" / "journal.sqlite").is_file()
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMTSBOTE_DATA_DIR")
    assert main(["db", "upgrade"]) == 0
    assert str(tmp_path / "var" / "journal.sqlite") in capsys.readouterr().out


@pytest.mark.postgres
def test_cli_masks_passwords_and_reports_unreachable_databases(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with_password = pg_url.replace("postgres@", "postgres:s3cr3t-pw@", 1)  # trust auth ignores it
    assert main(["db", "upgrade", "--database-url", with_password]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-pw" not in out and "***" in out
    unreachable = "postgresql+psycopg://postgres:s3cr3t-pw@127.0.0.1:1/none"
    assert main(["db", "current", "--database-url", unreachable]) == 2
    captured = capsys.readouterr()
    assert "s3cr3t-pw" not in captured.err + captured.out
    assert "127.0.0.1:1" in captured.err


def test_cli_rejects_unsupported_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--database-url", "mysql://u:pw@localhost/x"]) == 2
    assert "unsupported database 'mysql'" in capsys.readouterr().err


def test_cli_genkey(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "genkey"]) == 0
    key = capsys.readouterr().out.strip()
    codec = PayloadCodec(key)
    encoded = codec.encode(b"<x/>")
    assert codec.decode(encoded.data, encoded.encoding, encoded.sha512, nachrichten_uuid="u")


# ----------------------------------------------------------------------------- settings and keys


def test_settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = Settings.from_env({})
    assert defaults.data_dir == tmp_path / "var"
    assert defaults.database_url == f"sqlite:///{tmp_path}/var/journal.sqlite"
    assert defaults.journal_key is None and defaults.journal_file == tmp_path / "var/journal.sqlite"

    key = generate_key()
    custom = Settings.from_env(
        {
            "AMTSBOTE_DATA_DIR": str(tmp_path / "d"),
            "AMTSBOTE_DATABASE_URL": "postgresql+psycopg://u:pw@db/amtsbote",
            "AMTSBOTE_JOURNAL_KEY": key,
        }
    )
    assert custom.data_dir == tmp_path / "d" and custom.journal_file is None
    assert key not in repr(custom) and ":pw@" not in repr(custom) and "<set>" in repr(custom)
    assert Settings.from_env({"AMTSBOTE_JOURNAL_KEY": "  "}).journal_key is None  # empty = unset
    with pytest.raises(ConfigError, match="AMTSBOTE_DATABASE_URL: not a database URL"):
        Settings.from_env({"AMTSBOTE_DATABASE_URL": "nonsense"})
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"AMTSBOTE_DATA_DIR: .* not a directory"):
        Settings.from_env({"AMTSBOTE_DATA_DIR": str(tmp_path / "afile")})


def test_journal_from_env(tmp_path: Path) -> None:
    key = generate_key()
    env = {"AMTSBOTE_DATA_DIR": str(tmp_path / "state"), "AMTSBOTE_JOURNAL_KEY": key}
    with Journal.from_env(create=True, environ=env) as j:
        assert j.encrypts
        m = MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1")
        j.record_inbound(b"<secret/>", m)
    assert (tmp_path / "state" / "journal.sqlite").is_file()
    with Journal.from_env(environ=env) as again:
        assert again.payload(m.nachrichten_uuid) == b"<secret/>"


def test_passphrases_and_malformed_keys_are_refused_without_echo() -> None:
    for bad in ("correct horse battery staple", "short", generate_key()[:-2]):
        with pytest.raises(JournalKeyError, match="not a Fernet key") as err:
            parse_keys(bad)
        assert bad not in str(err.value)
    assert len(parse_keys(f"{generate_key()}, {generate_key()}")) == 2
    with pytest.raises(JournalKeyError, match="#2"):
        parse_keys(f"{generate_key()},nope")


def test_key_rotation_encrypts_with_the_first_key(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    with Journal(url, key=old, create=True) as j:
        old_msg = MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1")
        j.record_inbound(b"<old/>", old_msg)
    with Journal(url, key=f"{new},{old}") as j:
        new_msg = MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1")
        j.record_inbound(b"<new/>", new_msg)
        assert j.payload(old_msg.nachrichten_uuid) == b"<old/>"
    with Journal(url, key=new) as j:
        assert j.payload(new_msg.nachrichten_uuid) == b"<new/>"
        with pytest.raises(JournalKeyError):
            j.payload(old_msg.nachrichten_uuid)


def test_current_revision_of_an_empty_database(tmp_path: Path) -> None:
    engine = create_journal_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    try:
        with engine.connect() as conn:
            assert current_revision(conn) is None
    finally:
        engine.dispose()
    assert os.path.exists(tmp_path / "empty.sqlite")


# ----------------------------------------------------------------------------- lost connections


@pytest.mark.postgres
def test_idempotent_operations_survive_a_database_restart(pg_url: str, pg_schema_url: str) -> None:
    """Every pooled connection is killed (as by a server restart): idempotent operations retry
    once on a fresh connection; appending an event is not retried and says the connection was
    lost."""
    import psycopg

    from connectors.exceptions import JournalDatabaseError

    url = pg_schema_url
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")

    def kill_connections() -> int:
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return len(rows)

    with Journal(url, create=True) as j:
        j.create_case("r-1", procedure="p")
        m = MessageMeta(str(uuid.uuid4()), "X", "1", "0500", reader="a:1")
        assert kill_connections() >= 1
        assert j.get_case("r-1").procedure == "p"
        assert kill_connections() >= 1
        assert j.record_inbound(b"<a/>", m)[1] is True
        assert kill_connections() >= 1
        with pytest.raises(JournalDatabaseError) as err:
            j.log_event("test.note", actor="t")
        assert err.value.disconnected
        j.log_event("test.note", actor="t")  # the pool has recovered
        assert [e.kind for e in j.events(kind="test.note")] == ["test.note"]
