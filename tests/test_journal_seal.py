"""The sealed journal (hash chain over events, message rows bound into it) and ``amtsbote
journal verify``, on SQLite and PostgreSQL: an intact journal verifies; what an attacker with
database access does — delete an event (after dropping the trigger), change an event, change a
message row, drop a trigger, leave the schema behind — is found and named."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from connectors.journal import DeliveryState, Journal, MessageMeta, migrate
from connectors.journal.engine import create_journal_engine
from connectors.journal.seal import GENESIS, SEALED_MESSAGE_COLUMNS, verify
from flows.cli import main

GEWERBEAMT = "MELDID:12052000"
AZR = "azr:000100"


def meta() -> MessageMeta:
    return MessageMeta(
        nachrichten_uuid=str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type="0500",
        author=GEWERBEAMT,
        reader=AZR,
        created_at=datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
    )


def populate(j: Journal) -> None:
    j.create_case("c-1", procedure="xgewerbeanzeige", summary={"facts": {"n": 1}})
    j.record_inbound(b"<in>1</in>", meta(), sender_agency=GEWERBEAMT)
    _, deliveries, _ = j.record_outbound(b"<out>2</out>", meta(), recipients=[AZR], case_id="c-1")
    j.transition(deliveries[0].id, DeliveryState.SENT, actor="test")
    j.log_event(
        "test.note",
        actor="test",
        detail={"float": 1.5, "whole": 2.0, "big": 10**20, "text": "Grüße ✓", "list": [1, "a"]},
    )


@pytest.fixture
def journal(db_url: str) -> Iterator[Journal]:
    j = Journal(db_url, key=None, create=True)
    try:
        populate(j)
        yield j
    finally:
        j.close()


@pytest.fixture
def raw(db_url: str, journal: Journal) -> Iterator[Engine]:
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def check(url: str):  # type: ignore[no-untyped-def]
    engine = create_journal_engine(url)
    try:
        return verify(engine)
    finally:
        engine.dispose()


def sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def drop_event_trigger(engine: Engine) -> str:
    if engine.dialect.name == "postgresql":
        sql(engine, "DROP TRIGGER events_append_only ON events")
        return "events_append_only"
    sql(engine, "DROP TRIGGER events_no_delete", "DROP TRIGGER events_no_update")
    return "events_no_delete"


def event_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(text("SELECT id FROM events ORDER BY seq")).scalars()]


# ----------------------------------------------------------------------------- intact


def test_an_intact_journal_verifies(db_url: str, journal: Journal, raw: Engine) -> None:
    report = check(db_url)
    assert report.ok, report.findings
    assert report.events == len(event_ids(raw)) >= 6
    assert report.messages == 2
    with raw.connect() as conn:
        head = conn.execute(text("SELECT seq, hash FROM journal_seal")).one()
        last = conn.execute(text("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")).one()
        first = conn.execute(text("SELECT seq, prev_hash FROM events ORDER BY seq LIMIT 1")).one()
    assert tuple(head) == tuple(last) == (report.head_seq, report.head_hash)
    assert tuple(first) == (1, GENESIS)


def test_every_write_path_seals_its_events(db_url: str, journal: Journal, raw: Engine) -> None:
    from connectors.journal.retention import RetentionConfig, run_retention

    journal.update_case("c-1", status="closed", actor="test")
    later = datetime.now(UTC) + timedelta(days=4000)
    run_retention(journal.engine, RetentionConfig.load(), now=later)
    with raw.connect() as conn:
        unsealed = conn.execute(text("SELECT count(*) FROM events WHERE hash IS NULL")).scalar()
        kinds = set(conn.execute(text("SELECT kind FROM events")).scalars())
    assert unsealed == 0 and "retention.run" in kinds
    assert check(db_url).ok


def test_concurrent_writers_do_not_fork_the_chain(db_url: str, journal: Journal) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                journal.log_event("test.concurrent", actor=f"w{n}", detail={"i": i})
                state = None if i % 2 else DeliveryState.DELIVERED
                journal.record_inbound(f"<m>{n}-{i}</m>".encode(), meta(), initial_state=state)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = check(db_url)
    assert report.ok, report.findings
    assert report.messages == 2 + 60


def test_a_repeated_message_leaves_the_head_alone(db_url: str, journal: Journal) -> None:
    m = meta()
    journal.record_inbound(b"<again/>", m)
    head = check(db_url).head_seq
    _, created = journal.record_inbound(b"<again/>", m)
    assert not created
    report = check(db_url)
    assert report.ok and report.head_seq == head


def test_the_migration_chains_existing_rows(db_url: str, journal: Journal) -> None:
    engine = create_journal_engine(db_url)
    try:
        migrate.downgrade(engine, "0002")  # back to a journal without seal, rows kept
        assert check(db_url).first.what == "revision"  # type: ignore[union-attr]
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    report = check(db_url)
    assert report.ok, report.findings
    sealed = journal.events(kind="message.sealed")
    assert len(sealed) == report.messages == 2
    journal.log_event("test.after", actor="test")  # appending continues the chain
    assert check(db_url).ok


def test_migration_and_seal_agree_on_the_message_columns() -> None:
    import importlib

    mod = importlib.import_module("connectors.journal.migrations.versions.0003_seal")
    assert tuple(mod.SEALED) == SEALED_MESSAGE_COLUMNS


# ----------------------------------------------------------------------------- attacks


def test_a_deleted_event_is_a_gap(db_url: str, raw: Engine) -> None:
    drop_event_trigger(raw)
    ids = event_ids(raw)
    sql(raw, f"DELETE FROM events WHERE id = {ids[2]}")
    report = check(db_url)
    assert not report.ok
    first = report.first
    assert first is not None and first.what == "gap" and first.event_id == ids[3]
    assert f"event {ids[3]}" in first.text and "seq 3 missing" in first.text
    assert any(f.what == "trigger" for f in report.findings)


def test_deleting_the_last_events_is_found_at_the_head(db_url: str, raw: Engine) -> None:
    drop_event_trigger(raw)
    ids = event_ids(raw)
    sql(raw, f"DELETE FROM events WHERE id >= {ids[-2]}")
    report = check(db_url)
    assert report.first is not None and report.first.what == "head"
    assert "deleted" in report.first.text


def test_a_changed_event_is_a_hash_mismatch(db_url: str, raw: Engine) -> None:
    drop_event_trigger(raw)
    ids = event_ids(raw)
    sql(raw, f"UPDATE events SET actor = 'forger' WHERE id = {ids[1]}")
    first = check(db_url).first
    assert first is not None and first.what == "changed" and first.event_id == ids[1]
    assert "hash mismatch" in first.text


def test_a_changed_event_detail_is_found(db_url: str, raw: Engine) -> None:
    drop_event_trigger(raw)
    ids = event_ids(raw)
    detail = "'{\"rewritten\": true}'"
    if raw.dialect.name == "postgresql":
        detail += "::jsonb"
    sql(raw, f"UPDATE events SET detail = {detail} WHERE id = {ids[-1]}")
    first = check(db_url).first
    assert first is not None and first.what == "changed" and first.event_id == ids[-1]


def test_a_rewritten_chain_suffix_is_a_broken_link(db_url: str, raw: Engine) -> None:
    drop_event_trigger(raw)
    ids = event_ids(raw)
    sql(raw, f"UPDATE events SET hash = '{'ab' * 32}' WHERE id = {ids[0]}")
    first = check(db_url).first
    assert first is not None and first.what == "changed" and first.event_id == ids[0]


def test_an_event_inserted_behind_the_journals_back_is_unsealed(db_url: str, raw: Engine) -> None:
    sql(
        raw,
        "INSERT INTO events (at, actor, kind, detail) "
        "VALUES (CURRENT_TIMESTAMP, 'sql', 'manual.insert', '{}')",
    )
    first = check(db_url).first
    assert first is not None and first.what == "unsealed" and "not sealed" in first.text


def test_the_sealed_message_columns_are_protected_by_a_trigger(raw: Engine) -> None:
    from sqlalchemy.exc import DBAPIError

    for statement in (
        "UPDATE messages SET payload_sha512 = 'x'",
        "UPDATE messages SET message_type = '0501'",
        "DELETE FROM messages WHERE direction = 'inbound'",
    ):
        with pytest.raises(DBAPIError, match="sealed"):
            sql(raw, statement)
    sql(raw, "UPDATE messages SET correlation_state = correlation_state")  # allowed


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE messages SET payload_sha512 = '{x}' WHERE direction = 'inbound'",
        "UPDATE messages SET author = 'MELDID:99999999' WHERE direction = 'inbound'",
    ],
)
def test_a_changed_message_row_is_found(db_url: str, raw: Engine, change: str) -> None:
    trigger = (
        "DROP TRIGGER messages_sealed ON messages"
        if raw.dialect.name == "postgresql"
        else "DROP TRIGGER messages_sealed"
    )
    sql(raw, trigger, change.replace("{x}", "0" * 128))
    with raw.connect() as conn:
        mid = conn.execute(text("SELECT id FROM messages WHERE direction = 'inbound'")).scalar()
    report = check(db_url)
    first = report.first
    assert first is not None and first.what == "message-changed" and first.message_id == mid
    assert f"message {mid}" in first.text and first.event_id is not None
    assert any(f.what == "trigger" and "messages_sealed" in f.text for f in report.findings)


def test_a_deleted_message_row_is_found(db_url: str, raw: Engine) -> None:
    if raw.dialect.name == "postgresql":
        sql(raw, "DROP TRIGGER messages_sealed ON messages")
    else:
        sql(raw, "DROP TRIGGER messages_no_delete")
    sql(
        raw,
        "DELETE FROM deliveries WHERE message_id IN "
        "(SELECT id FROM messages WHERE direction = 'inbound')",
        "DELETE FROM messages WHERE direction = 'inbound'",
    )
    first = check(db_url).first
    assert first is not None and first.what == "message-deleted"


def test_a_dropped_trigger_is_named(db_url: str, raw: Engine) -> None:
    name = drop_event_trigger(raw)
    report = check(db_url)
    assert [f.what for f in report.findings][:1] == ["trigger"]
    assert any(name in f.text and "missing" in f.text for f in report.findings)


@pytest.mark.postgres
def test_a_disabled_trigger_is_named(pg_schema_url: str) -> None:
    with Journal(pg_schema_url, create=True) as j:
        populate(j)
    engine = create_engine(pg_schema_url)
    try:
        sql(engine, "ALTER TABLE events DISABLE TRIGGER events_append_only")
    finally:
        engine.dispose()
    first = check(pg_schema_url).first
    assert first is not None and "events_append_only is disabled" in first.text


def test_a_stale_schema_revision_is_named(db_url: str, raw: Engine) -> None:
    sql(raw, "UPDATE amtsbote_journal_version SET version_num = '0002'")
    first = check(db_url).first
    assert first is not None and first.what == "revision" and "0002" in first.text


# ----------------------------------------------------------------------------- CLI


def test_cli_verify_exit_codes(
    db_url: str, raw: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "verify", "--database-url", db_url]) == 0
    out = capsys.readouterr().out
    report = check(db_url)
    assert "intact" in out and f"chain head: seq {report.head_seq} {report.head_hash}" in out
    drop_event_trigger(raw)
    ids = event_ids(raw)
    sql(raw, f"DELETE FROM events WHERE id = {ids[1]}")
    assert main(["journal", "verify", "--database-url", db_url]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and f"event {ids[2]}" in out and "gap" in out
    assert main(["journal", "verify", "--database-url", db_url, "--json"]) == 1
    assert '"what": "gap"' in capsys.readouterr().out


def test_cli_verify_unusable_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "verify", "--database-url", "nosuch://x/y"]) == 2
    missing = f"sqlite:///{tmp_path / 'none.sqlite'}"
    assert main(["journal", "verify", "--database-url", missing]) == 2
    assert not (tmp_path / "none.sqlite").exists()
    unreachable = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
    assert main(["journal", "verify", "--database-url", unreachable]) == 2
    err = capsys.readouterr().err
    assert "secret" not in err


def test_the_daily_report_prints_the_chain_head(db_url: str, journal: Journal) -> None:
    from flows.reporting import ReportOptions, build_report
    from flows.reporting.render import render_html, render_markdown, render_text

    report = build_report(journal.engine, ReportOptions())
    seal = check(db_url)
    assert report.chain_head == (seal.head_seq, seal.head_hash)
    line = f"journal chain head: seq {seal.head_seq} {seal.head_hash}"
    assert line in render_text(report) and line in render_markdown(report)
    assert seal.head_hash in render_html(report)
    assert report.overview()["chain_head"] == f"{seal.head_seq}:{seal.head_hash}"
