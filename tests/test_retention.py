"""Journal retention on generated journals (SQLite and PostgreSQL): after a run no fictitious
name is left in anything retention was responsible for (a full dump is scanned, payloads
decompressed), the audit skeleton is unchanged, what was done is in the event log, and a dry
run changes nothing."""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bench.generate import (
    FICTITIOUS_NAMES,
    GeneratorOptions,
    SynthAttempt,
    SynthCase,
    SynthDelivery,
    SynthMessage,
    epoch,
    generate,
    write_cases,
)
from connectors.exceptions import ConfigError, PayloadPurgedError
from connectors.journal import Direction, Journal, MessageMeta
from connectors.journal.models import metadata
from connectors.journal.retention import (
    DEFAULT_RETENTION_PATH,
    TOMBSTONE,
    TOMBSTONE_TEXT,
    Periods,
    RetentionConfig,
    is_purged,
    run_retention,
)
from flows.cli import main

GENERATED_NOW = datetime(2026, 6, 30, 10, 0, tzinfo=UTC)
NAMES = tuple(
    n.encode() for group in ("vorname", "familienname", "strasse") for n in FICTITIOUS_NAMES[group]
)
#: Abmeldungen are never purged here: a control group that keeps its payloads.
CONFIG = RetentionConfig(
    defaults=Periods(closed=30, cancelled=30, failed=30),
    procedures={"gewerbeabmeldung": Periods(closed=None, cancelled=None, failed=None)},
    unassigned=0,
    batch_size=7,
)


def person_payload(name: str) -> bytes:
    return (
        f"<nachricht><person><familienname>{name}</familienname>"
        f"<strasse>{FICTITIOUS_NAMES['strasse'][0]}</strasse></person></nachricht>"
    ).encode()


def meta(reader: str = "MELDID:05774032") -> MessageMeta:
    return MessageMeta(
        nachrichten_uuid=str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type="gwa.gewerbemeldung.0010",
        author="PORTAL:05-wsp",
        reader=reader,
        created_at=datetime(2026, 6, 1, tzinfo=UTC),
    )


def pending_case() -> SynthCase:
    """A failed case (ended long ago) with a delivery still waiting for its retry."""
    t0 = epoch(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    payload = person_payload("Zorrenbeek")
    case = SynthCase(
        "05774032-2026-900001",
        "gewerbeanmeldung",
        t0 + 1,
        [(t0 + 1, "open"), (t0 + 400, "failed")],
        {"facts": {}},
    )
    case.messages.append(
        SynthMessage(
            str(uuid.uuid4()),
            "outbound",
            "dgu.gewerbemeldung.0230",
            t0 + 5,
            "MELDID:05774032",
            "UVT:15087927",
            "stadt-paderborn",
            payload,
            [
                SynthDelivery(
                    "dguv",
                    [(t0 + 5, "created", "rule"), (t0 + 6, "failed", "sender")],
                    [SynthAttempt(t0 + 6, False, 503, "SendHTTPError", "HTTP 503")],
                    next_attempt_at=t0 + 3600,
                )
            ],
        )
    )
    return case


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every journal table; payloads decompressed (they are zlib)."""
    journal = Journal(url)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with journal.engine.connect() as conn:
            for name, table in metadata.tables.items():
                rows = []
                for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                    record = dict(row._mapping)
                    if name == "messages":
                        record["payload"] = zlib.decompress(bytes(record["payload"]))
                    rows.append(record)
                out[name] = rows
    finally:
        journal.close()
    return out


def names_in(value: Any) -> set[bytes]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        data = json.dumps(value, default=str, ensure_ascii=False).encode()
    return {n for n in NAMES if n in data}


def test_retention_removes_personal_data_and_keeps_the_audit_skeleton(db_url: str) -> None:
    generate(db_url, GeneratorOptions(cases=90, seed=23, now=GENERATED_NOW, days=40))
    write_cases(db_url, [pending_case()], now=GENERATED_NOW)
    journal = Journal(db_url)
    try:
        closed = [
            c for c in journal.list_cases(status="closed") if c.procedure == "gewerbeanmeldung"
        ]
        target = closed[0]
        journal.update_case(
            target.case_id, summary={**target.summary, "comments": ["Rückruf: Frau Plumpeck"]}
        )
        comment = journal.log_event(
            "case.decision",
            actor="cli",
            case_id=target.case_id,
            detail={"decision": "approve", "reason": "ok", "comment": "Erlaubnis liegt vor"},
        )
        # messages without a case: one fetched (due), one still in our mailbox (pending)
        fetched, _ = journal.record_inbound(
            person_payload("Murkelhaus"), meta("IHK:0521"), recipient="ihk-owl"
        )
        journal.mark_fetched(fetched.nachrichten_uuid, "ihk-owl")
        waiting, _ = journal.record_inbound(
            person_payload("Trundelmann"), meta("IHK:0521"), recipient="ihk-owl"
        )
    finally:
        journal.close()
    run_at = datetime.now(UTC) + timedelta(days=1)
    before = dump(db_url)
    engine_journal = Journal(db_url)
    try:
        dry = run_retention(engine_journal.engine, CONFIG, now=run_at, dry_run=True)
        assert dump(db_url) == before, "a dry run changes nothing"
        result = run_retention(engine_journal.engine, CONFIG, now=run_at)
        again = run_retention(engine_journal.engine, CONFIG, now=run_at)
    finally:
        engine_journal.close()
    after = dump(db_url)

    assert dry.to_dict()["totals"] == result.to_dict()["totals"]
    assert dry.case_ids == result.case_ids and result.totals.cases > 0
    assert again.totals.cases == 0 and again.totals.messages == 0

    cases = {c["case_id"]: c for c in before["cases"]}
    purged = set(result.case_ids)
    eligible = {
        cid
        for cid, c in cases.items()
        if c["status"] in ("closed", "failed", "cancelled")
        and c["procedure"] != "gewerbeabmeldung"
        and cid != "05774032-2026-900001"
    }
    assert purged == eligible
    assert result.kept_pending == 2  # the pending case's message + the unfetched mailbox one
    assert result.unassigned_ids == [fetched.id]
    assert result.comment_events == [comment.id]

    # no fictitious name left in anything retention was responsible for
    kept_messages = {
        m["id"] for m in after["messages"] if m["case_id"] not in purged and m["id"] != fetched.id
    }
    for table, rows in after.items():
        for row in rows:
            if table == "messages" and row["id"] in kept_messages:
                continue
            assert not names_in(row), (table, row)
    # ... and the control group still has them (the scan does find names)
    assert any(names_in(m["payload"]) for m in after["messages"] if m["id"] == waiting.id)
    assert any(
        names_in(m["payload"])
        for m in after["messages"]
        if cases.get(m["case_id"], {}).get("procedure") == "gewerbeabmeldung"
    )

    # the audit skeleton is unchanged
    def skeleton(d: dict[str, list[dict[str, Any]]], table: str, drop: set[str]) -> list[Any]:
        return [{k: v for k, v in r.items() if k not in drop} for r in d[table]]

    assert skeleton(after, "messages", {"payload", "payload_encoding"}) == skeleton(
        before, "messages", {"payload", "payload_encoding"}
    )
    assert skeleton(after, "deliveries", {"last_error"}) == skeleton(
        before, "deliveries", {"last_error"}
    )
    assert skeleton(after, "delivery_attempts", {"error"}) == skeleton(
        before, "delivery_attempts", {"error"}
    )
    assert after["expectations"] == before["expectations"]
    assert skeleton(after, "cases", {"summary"}) == skeleton(before, "cases", {"summary"})
    assert after["events"][: len(before["events"])] == before["events"]

    # what was removed
    for m in after["messages"]:
        if m["case_id"] in purged or m["id"] == fetched.id:
            assert m["payload"] == TOMBSTONE_TEXT
        else:
            assert m["payload"] != TOMBSTONE_TEXT
    summaries = {c["case_id"]: c["summary"] for c in after["cases"]}
    assert summaries[target.case_id] == {
        k: v
        for k, v in target.summary.items()
        if k in ("facts", "outcome", "deliveries", "recipients")
    }
    assert "comments" not in summaries[target.case_id]
    purged_messages = {m["id"] for m in after["messages"] if m["case_id"] in purged}
    purged_deliveries = {d["id"] for d in after["deliveries"] if d["message_id"] in purged_messages}
    assert all(d["last_error"] is None for d in after["deliveries"] if d["id"] in purged_deliveries)
    assert all(
        a["error"] is None
        for a in after["delivery_attempts"]
        if a["delivery_id"] in purged_deliveries
    )
    assert any(
        a["error"] for a in after["delivery_attempts"] if a["delivery_id"] not in purged_deliveries
    ), "error texts of others stay"

    # the event log says what was done, with ids and counts only
    new = after["events"][len(before["events"]) :]
    per_case = {
        e["case_id"]: e["detail"] for e in new if e["kind"] == "retention.purged" and e["case_id"]
    }
    assert set(per_case) == purged
    for case_id, detail in per_case.items():
        ids = sorted(m["id"] for m in before["messages"] if m["case_id"] == case_id)
        assert sorted(detail["message_ids"]) == ids and detail["messages"] == len(ids)
    assert per_case[target.case_id]["summary_keys_removed"] == ["comments"]
    assert per_case[target.case_id]["comment_events"] == [comment.id]
    unassigned = [e for e in new if e["kind"] == "retention.purged" and not e["case_id"]]
    assert [e["nachrichten_uuid"] for e in unassigned] == [fetched.nachrichten_uuid]
    runs = [e for e in new if e["kind"] == "retention.run"]
    assert len(runs) == 2 and runs[0]["detail"]["cases"] == len(purged)
    assert runs[1]["detail"]["cases"] == 0

    # the journal refuses a purged payload instead of returning the tombstone
    journal = Journal(db_url)
    try:
        one = next(m for m in after["messages"] if m["case_id"] in purged)
        with pytest.raises(PayloadPurgedError, match="purged by the retention policy"):
            journal.payload(one["nachrichten_uuid"], direction=one["direction"])
        assert journal.payload(waiting.nachrichten_uuid, direction=Direction.INBOUND)
        with journal.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT payload FROM messages WHERE id = :i"), {"i": one["id"]}
            ).scalar()
        assert stored is not None and is_purged(stored) and stored == TOMBSTONE
        # once fetched, the pending mailbox message goes too
        journal.mark_fetched(waiting.nachrichten_uuid, "ihk-owl")
        later = run_retention(journal.engine, CONFIG, now=run_at)
        assert later.unassigned_ids == [waiting.id]
    finally:
        journal.close()


def test_a_case_reopened_during_the_run_is_left_alone(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eligibility is checked again inside each batch's transaction: a failed case reopened
    for redelivery between the selection and its batch keeps its payloads."""
    import connectors.journal.retention as retention

    t0 = epoch(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    case = SynthCase(
        "05774032-2026-900002",
        "gewerbeanmeldung",
        t0 + 1,
        [(t0 + 1, "open"), (t0 + 900, "failed")],
        {"facts": {}},
    )
    case.messages.append(
        SynthMessage(
            str(uuid.uuid4()),
            "outbound",
            "dgu.gewerbemeldung.0230",
            t0 + 5,
            "MELDID:05774032",
            "UVT:15087927",
            "stadt-paderborn",
            person_payload("Quackhorst"),
            [
                SynthDelivery(
                    "dguv",
                    [
                        (t0 + 5, "created", "rule"),
                        (t0 + 6, "failed", "sender"),
                        (t0 + 7, "dead", "sender"),
                    ],
                    [SynthAttempt(t0 + 6, False, 422, "SendRejected", "HTTP 422")],
                )
            ],
        )
    )
    write_cases(db_url, [case], now=GENERATED_NOW)
    journal = Journal(db_url)
    selected = retention._Run.candidates

    def candidates(self: Any, conn: Any) -> list[tuple[str, str]]:
        found = selected(self, conn)
        journal.update_case(case.case_id, status="open", actor="redeliver")  # meanwhile
        return found

    monkeypatch.setattr(retention._Run, "candidates", candidates)
    try:
        result = run_retention(journal.engine, CONFIG, now=GENERATED_NOW)
        assert result.case_ids == [] and result.totals.messages == 0
        uuid_ = case.messages[0].nachrichten_uuid
        assert b"Quackhorst" in journal.payload(uuid_, direction=Direction.OUTBOUND)
        assert not journal.events(case_id=case.case_id, kind="retention.purged")
    finally:
        journal.close()


def test_sqlite_file_keeps_no_remnant_of_purged_payloads(tmp_path: Path) -> None:
    """The stored (compressed) payloads do not survive in the database file or its WAL."""
    path = tmp_path / "journal.sqlite"
    url = f"sqlite:///{path}"
    generate(url, GeneratorOptions(cases=40, seed=2, now=GENERATED_NOW, days=20))
    with sqlite3.connect(path) as conn:
        stored = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT payload FROM messages JOIN cases USING (case_id) "
                "WHERE status IN ('closed', 'failed') AND procedure != 'gewerbeabmeldung'"
            )
        ]
    conn.close()
    assert stored
    journal = Journal(url)
    try:
        run_retention(journal.engine, CONFIG, now=GENERATED_NOW + timedelta(days=60))
    finally:
        journal.close()
    raw = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert not [b for b in stored if b[16:64] in raw]


def test_config_file_and_errors(tmp_path: Path) -> None:
    shipped = RetentionConfig.load(DEFAULT_RETENTION_PATH)
    assert shipped.defaults == Periods(closed=90, cancelled=30, failed=180)
    assert shipped.periods("gewerbeanmeldung").closed == 90
    assert shipped.periods("unknown-procedure") == shipped.defaults
    assert shipped.unassigned == 90 and shipped.clear_error_texts

    merged = RetentionConfig.from_yaml(
        "version: 1\ndefaults: {closed: 10, failed: null}\nprocedures:\n  p: {cancelled: 3}\n"
    )
    assert merged.periods("p") == Periods(closed=10, cancelled=3, failed=None)
    assert merged.periods("q") == Periods(closed=10, cancelled=30, failed=None)

    bad = {
        "version: 2\n": ("r.yaml:1 version", "unsupported"),
        "defaults:\n  closed: -5\n": ("r.yaml:2 defaults.closed", "integer >= 0"),
        "defaults:\n  closd: 5\n": ("r.yaml:2 defaults.closd", "unknown key"),
        "procedures:\n  p:\n    failed: soon\n": ("r.yaml:3 procedures.p.failed", "'soon'"),
        "keep: 1\n": ("r.yaml:1 keep", "unknown key"),
        "batch_size: 0\n": ("r.yaml:1 batch_size", "positive"),
        "defaults: [1\n": ("r.yaml:2", "not valid YAML"),
    }
    for source, (where, problem) in bad.items():
        with pytest.raises(ConfigError) as info:
            RetentionConfig.from_yaml(source, source="r.yaml")
        assert info.value.setting == where and problem in info.value.problem, source
    with pytest.raises(ConfigError, match="cannot read"):
        RetentionConfig.load(tmp_path / "missing.yaml")


def test_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    generate(url, GeneratorOptions(cases=30, seed=4, now=GENERATED_NOW, days=20))
    monkeypatch.setenv("AMTSBOTE_DATABASE_URL", url)
    config = tmp_path / "retention.yaml"
    config.write_text("version: 1\ndefaults: {closed: 0, failed: 0, cancelled: 0}\n")

    assert main(["retention", "run", "--dry-run", "--format", "json", "--config", str(config)]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["totals"]["cases"] > 0

    assert main(["retention", "run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "*/closed>0d" in out and str(dry["totals"]["messages"]) in out

    assert main(["retention", "run", "--format", "json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["cases"] == 0

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ndefaults:\n  closed: forever\n")
    assert main(["retention", "run", "--config", str(broken)]) == 2
    assert "broken.yaml:3 defaults.closed" in capsys.readouterr().err
    monkeypatch.setenv("AMTSBOTE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert main(["retention", "run", "--config", str(config)]) == 2
    assert "amtsbote db upgrade" in capsys.readouterr().err

    assert main(["retention", "config"]) == 0
    assert json.loads(capsys.readouterr().out)["defaults"]["closed"] == 90
