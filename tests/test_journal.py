"""The message journal's API, on SQLite (a file in tmp_path) and PostgreSQL (a fresh schema per
test in the session's ``pg_url`` database). Every journal here is created by the Alembic
migration, so the migration is what is tested."""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from lxml import etree
from sqlalchemy import create_engine, text

from connectors.exceptions import (
    CaseConflictError,
    InvalidTransitionError,
    JournalDatabaseError,
    JournalKeyError,
    JournalNotFoundError,
    JournalSchemaError,
    JournalValueError,
    MessageConflictError,
    PayloadIntegrityError,
)
from connectors.journal import (
    DELIVERY_TRANSITIONS,
    CaseStatus,
    CorrelationState,
    DeliveryState,
    Direction,
    ExpectationState,
    Journal,
    MessageMeta,
    OutboxEntry,
    generate_key,
    xdomea_message_uuid,
)
from connectors.journal.seal import verify as seal_verify
from xoev.message import xdomea_message_key

GEWERBEAMT = "MELDID:12052000"
KAMMER = "hwk:0004"
AZR = "azr:000100"
#: Personal data in xgwa2.2-valid.xml (name, birth date, birth place, street of the person).
PERSONAL = (b"Tibor", b"12101965", b"Santiago", b"Ewald-Hase-Str.")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def journal(db_url: str) -> Iterator[Journal]:
    j = Journal(db_url, create=True)
    try:
        yield j
    finally:
        j.close()


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def sealed(db_url: str, key: str) -> Iterator[Journal]:
    j = Journal(db_url, key=key, create=True)
    try:
        yield j
    finally:
        j.close()


def meta(
    message_type: str = "0500",
    *,
    author: str = GEWERBEAMT,
    reader: str = AZR,
    in_reply_to: str | None = None,
    nachrichten_uuid: str | None = None,
) -> MessageMeta:
    return MessageMeta(
        nachrichten_uuid=nachrichten_uuid or str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type=message_type,
        author=author,
        reader=reader,
        created_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        in_reply_to=in_reply_to,
    )


XGA = "{http://www.xgewerbeanzeige.de/spezifikation/2.2}"


def sample_meta(path: Path) -> MessageMeta:
    """MessageMeta from a real message's Nachrichtenkopf (parsed here, independent of xoev/)."""
    root = etree.parse(str(path)).getroot()
    kopf = root.find(f"{XGA}nachrichtenkopf")
    assert kopf is not None
    ident = kopf.find(f"{XGA}identifikation.nachricht")
    assert ident is not None

    def kennung(role: str) -> str:
        bk = kopf.find(f"{XGA}{role}/{XGA}behoerdenkennung")
        assert bk is not None
        praefix = bk.findtext(f"{XGA}praefix/code")
        nummer = bk.findtext(f"{XGA}kennung/code")
        return f"{praefix}:{nummer}"

    info = SimpleNamespace(
        nachrichten_uuid=ident.findtext(f"{XGA}nachrichtenUUID"),
        standard=root.get("standard"),
        version=root.get("version"),
        message_type=SimpleNamespace(code=ident.findtext(f"{XGA}nachrichtentyp/code")),
        author=kennung("autor"),
        reader=kennung("leser"),
        erstellungszeitpunkt=ident.findtext(f"{XGA}erstellungszeitpunkt"),
    )
    return MessageMeta.from_info(info)


def raw_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def count(url: str, table: str, where: str = "") -> int:
    rows = raw_rows(url, f"SELECT count(*) FROM {table} {where}")
    return int(rows[0][0])  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- metadata


def test_message_meta_normalises_and_validates() -> None:
    m = MessageMeta(
        "0A4C3E8E-1111-4222-8333-444455556666",
        "XGewerbeanzeige",
        "2.2",
        "0500",
        author=GEWERBEAMT,
        created_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
    )
    assert m.nachrichten_uuid == "0a4c3e8e-1111-4222-8333-444455556666"
    with pytest.raises(JournalValueError, match="nachrichten_uuid: not a UUID"):
        MessageMeta("not-a-uuid", "X", "1", "0500")
    with pytest.raises(JournalValueError, match="created_at"):
        MessageMeta(str(uuid.uuid4()), "X", "1", "0500", created_at=datetime(2026, 1, 1))
    with pytest.raises(JournalValueError, match="author"):
        MessageMeta(str(uuid.uuid4()), "X", "1", "0500", author="two words")
    with pytest.raises(JournalValueError, match="standard: must not be empty"):
        MessageMeta(str(uuid.uuid4()), " ", "1", "0500")


def test_message_meta_from_info_duck_types(xgwa_samples: Path) -> None:
    m = sample_meta(xgwa_samples / "xgwa2.2-valid.xml")
    assert m.nachrichten_uuid == "00000000-0000-0000-0000-000000000001"
    assert (m.standard, m.version, m.message_type) == ("XGewerbeanzeige", "2.2", "0500")
    assert (m.author, m.reader) == ("MELDID:12052000", "azr:000100")
    # 2019-10-24T00:00:00+02:00 → UTC
    assert m.created_at == datetime(2019, 10, 23, 22, 0, tzinfo=UTC)
    naive = SimpleNamespace(
        nachrichten_uuid=str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type="0500",
        author=None,
        reader=None,
        erstellungszeitpunkt=datetime(2026, 7, 1, 12, 0),  # German summer time, UTC+2
    )
    assert MessageMeta.from_info(naive).created_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(JournalValueError, match="nachrichten_uuid: missing"):
        MessageMeta.from_info(SimpleNamespace(standard="X"))


def test_xdomea_messages_of_one_process_get_distinct_keys() -> None:
    prozess = str(uuid.uuid4())

    def info(message_type: str) -> SimpleNamespace:
        return SimpleNamespace(
            nachrichten_uuid=prozess,  # what xoev.message reports for xdomea: the ProzessID
            standard="xdomea",
            version="3.0.0",
            message_type=message_type,
            author="bund:archiv",
            reader="land:behoerde",
            erstellungszeitpunkt="2026-02-01T10:00:00+01:00",
        )

    bewertung = MessageMeta.from_info(info("0502"))
    bestaetigung = MessageMeta.from_info(info("0504"))
    assert bewertung.nachrichten_uuid != bestaetigung.nachrichten_uuid
    # both answer the Anbietung (0501) of the same process
    assert bewertung.in_reply_to == bestaetigung.in_reply_to == xdomea_message_uuid(prozess, "0501")
    assert MessageMeta.from_info(info("0501")).in_reply_to is None  # it starts the process
    assert MessageMeta.from_info(info("0502")) == bewertung  # stable for redeliveries
    assert bewertung.nachrichten_uuid == xdomea_message_uuid(prozess, "0502")
    assert bewertung.nachrichten_uuid == xdomea_message_key(prozess, "0502")


# ----------------------------------------------------------------------------- opening


def test_journal_refuses_an_uninitialised_database(db_url: str) -> None:
    with pytest.raises(JournalSchemaError, match="amtsbote db upgrade"):
        Journal(db_url)
    if db_url.startswith("sqlite"):
        # a missing SQLite file is not silently created
        assert not Path(db_url.removeprefix("sqlite:///")).exists()
    Journal(db_url, create=True).close()
    with Journal(db_url) as j:
        assert j.schema_revision() is not None


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(JournalValueError, match="in-memory"):
        Journal("sqlite://", create=True)


def test_closed_journal_says_so(journal: Journal) -> None:
    journal.close()
    with pytest.raises(JournalDatabaseError, match="journal is closed"):
        journal.get_case("x-1")


# ----------------------------------------------------------------------------- cases


def test_create_case_is_idempotent_and_logged(journal: Journal) -> None:
    case, created = journal.create_case(
        "05774032-2026-000123", procedure="gewerbeanzeige", reference="GA-2026-123"
    )
    assert created and case.status is CaseStatus.OPEN and case.closed_at is None
    again, created_again = journal.create_case("05774032-2026-000123", procedure="gewerbeanzeige")
    assert not created_again and again == case
    with pytest.raises(CaseConflictError, match=r"05774032-2026-000123.*gewerbeanzeige"):
        journal.create_case("05774032-2026-000123", procedure="other")
    kinds = [e.kind for e in journal.events(case_id="05774032-2026-000123")]
    assert kinds == ["case.created"]
    assert journal.get_case("05774032-2026-000123") == case
    with pytest.raises(JournalNotFoundError, match="no case 05774032-2026-999999"):
        journal.get_case("05774032-2026-999999")
    with pytest.raises(JournalValueError, match="case_id"):
        journal.create_case("bad id with spaces", procedure="p")


def test_update_case_status_lifecycle(journal: Journal) -> None:
    journal.create_case("c-1", procedure="gewerbeanzeige")
    journal.create_case("c-2", procedure="abgabe", flow_run_id="run-2")
    waiting = journal.update_case("c-1", status="waiting", summary={"step": "anhoerung"})
    assert waiting.status is CaseStatus.WAITING and waiting.summary == {"step": "anhoerung"}
    assert waiting.updated_at >= waiting.created_at
    unchanged = journal.update_case("c-1", status=CaseStatus.WAITING)
    assert unchanged == waiting  # no change, no event
    failed = journal.update_case("c-1", status="failed")
    assert failed.closed_at is not None
    reopened = journal.update_case("c-1", status="open")
    assert reopened.closed_at is None
    closed = journal.update_case("c-1", status="closed", actor="flow")
    assert closed.closed_at is not None and journal.get_case("c-1") == closed
    with pytest.raises(InvalidTransitionError, match=r"case c-1: transition closed → open"):
        journal.update_case("c-1", status="open")
    with pytest.raises(JournalValueError, match="'bogus' is not one of"):
        journal.update_case("c-2", status="bogus")

    updates = journal.events(case_id="c-1", kind="case.updated")
    assert [(e.detail.get("from"), e.detail.get("to")) for e in updates] == [
        ("open", "waiting"),
        ("waiting", "failed"),
        ("failed", "open"),
        ("open", "closed"),
    ]
    assert updates[-1].actor == "flow"
    assert [c.case_id for c in journal.list_cases(status=["open", "waiting"])] == ["c-2"]
    assert [c.case_id for c in journal.list_cases(procedure="gewerbeanzeige")] == ["c-1"]
    assert [c.case_id for c in journal.list_cases(flow_run_id="run-2")] == ["c-2"]
    assert len(journal.list_cases()) == 2


def test_open_case_for_message_numbers_cases(journal: Journal) -> None:
    first, _ = journal.record_inbound(b"<1/>", meta())
    second, _ = journal.record_inbound(b"<2/>", meta())
    case, created = journal.open_case_for_message(
        first.nachrichten_uuid,
        procedure="gewerbeanzeige",
        prefix="05774032-2026-",
        flow_run_id="run-1",
        summary={"meldungsart": "Anmeldung"},
        actor="intake",
    )
    assert created and case.case_id == "05774032-2026-000001" and case.flow_run_id == "run-1"
    again, created_again = journal.open_case_for_message(
        first.nachrichten_uuid, procedure="other", prefix="05774032-2026-"
    )
    assert not created_again and again == case  # one case per message, whatever is asked
    message = journal.get_message(first.nachrichten_uuid)
    assert message.case_id == case.case_id
    assert message.correlation_state is CorrelationState.CONSUMED
    assert journal.unmatched_replies() == [journal.get_message(second.nachrichten_uuid)]
    nxt, _ = journal.open_case_for_message(
        second.nachrichten_uuid, procedure="gewerbeanzeige", prefix="05774032-2026-"
    )
    assert nxt.case_id == "05774032-2026-000002"
    # "_" in a prefix is literal, not a LIKE wildcard; other prefixes count on their own
    journal.create_case("hwkX2026-000777", procedure="p")
    third, _ = journal.record_inbound(b"<3/>", meta())
    own, _ = journal.open_case_for_message(
        third.nachrichten_uuid, procedure="p", prefix="hwk_2026-"
    )
    assert own.case_id == "hwk_2026-000001"
    kinds = [e.kind for e in journal.events(nachrichten_uuid=first.nachrichten_uuid)]
    assert kinds[-2:] == ["case.created", "correlation.consumed"]
    with pytest.raises(JournalNotFoundError, match="inbound message"):
        journal.open_case_for_message(str(uuid.uuid4()), procedure="p", prefix="x-")
    with pytest.raises(JournalValueError, match="prefix"):
        journal.open_case_for_message(first.nachrichten_uuid, procedure="p", prefix="a b")


# ----------------------------------------------------------------------------- inbound


def test_record_inbound_is_idempotent(journal: Journal, db_url: str) -> None:
    m = meta()
    payload = b"<nachricht>eins</nachricht>"
    first, created = journal.record_inbound(payload, m, sender_agency=GEWERBEAMT)
    assert created
    assert first.direction is Direction.INBOUND
    assert first.correlation_state is CorrelationState.UNMATCHED
    assert first.size == len(payload) and first.sender_agency == GEWERBEAMT
    again, created_again = journal.record_inbound(payload, m, sender_agency=GEWERBEAMT)
    assert not created_again
    assert again == journal.get_message(m.nachrichten_uuid)
    assert asdict(again) == asdict(first)
    assert count(db_url, "messages") == 1
    assert count(db_url, "deliveries") == 1
    assert [e.kind for e in journal.events(nachrichten_uuid=m.nachrichten_uuid)] == [
        "message.received",
        "delivery.state",
    ]
    assert journal.payload(m.nachrichten_uuid) == payload


def test_same_uuid_with_other_payload_is_a_conflict(journal: Journal) -> None:
    m = meta()
    journal.record_inbound(b"<a/>", m, sender_agency=KAMMER)
    with pytest.raises(MessageConflictError) as err:
        journal.record_inbound(b"<b/>", m, sender_agency=KAMMER)
    assert m.nachrichten_uuid in str(err.value) and "different payload" in str(err.value)
    assert journal.payload(m.nachrichten_uuid) == b"<a/>"  # the first one stays
    conflict = journal.events(kind="message.conflict")
    assert len(conflict) == 1 and conflict[0].nachrichten_uuid == m.nachrichten_uuid
    assert conflict[0].detail["sender_agency"] == KAMMER


def test_a_uuid_is_unique_per_sender(journal: Journal, db_url: str) -> None:
    m = meta()
    squat, created = journal.record_inbound(b"<squat/>", m, sender_agency=KAMMER)
    assert created and squat.nachrichten_uuid == m.nachrichten_uuid
    genuine, created = journal.record_inbound(b"<genuine/>", m, sender_agency=GEWERBEAMT)
    assert created and genuine.sender_agency == GEWERBEAMT
    key = journal.inbound_key(m.nachrichten_uuid, GEWERBEAMT)
    assert genuine.nachrichten_uuid == key != m.nachrichten_uuid
    assert uuid.UUID(key).version == 4
    # repeats find each sender's own message; neither is a conflict of the other
    assert journal.record_inbound(b"<genuine/>", m, sender_agency=GEWERBEAMT) == (genuine, False)
    assert journal.record_inbound(b"<squat/>", m, sender_agency=KAMMER) == (squat, False)
    with pytest.raises(MessageConflictError):
        journal.record_inbound(b"<changed/>", m, sender_agency=GEWERBEAMT)
    assert count(db_url, "messages") == 2
    assert journal.payload(key) == b"<genuine/>"
    assert journal.payload(m.nachrichten_uuid) == b"<squat/>"
    for sender, record in ((GEWERBEAMT, genuine), (KAMMER, squat)):
        found = journal.get_message(m.nachrichten_uuid, direction="inbound", sender_agency=sender)
        assert found.id == record.id
    with pytest.raises(JournalNotFoundError):
        journal.get_message(m.nachrichten_uuid, direction="inbound", sender_agency="hwk:9999")
    [received] = [e for e in journal.events(kind="message.received") if e.nachrichten_uuid == key]
    assert received.detail["sent_as"] == m.nachrichten_uuid
    assert seal_verify(journal.engine).ok  # the re-keyed message is sealed like any other
    # the key comes from this installation's secret: stable, unknown to other installations
    with Journal(db_url) as again:
        assert again.inbound_key(m.nachrichten_uuid, GEWERBEAMT) == key
        assert again.secret("inbound-key") == journal.secret("inbound-key")
    assert len(journal.secret("message-uuid")) == 32
    assert journal.secret("message-uuid") != journal.secret("inbound-key")
    with pytest.raises(JournalValueError, match="purpose"):
        journal.secret("No Name")


def test_inbound_to_unknown_case_writes_nothing(journal: Journal, db_url: str) -> None:
    with pytest.raises(JournalNotFoundError, match="no case nope-1"):
        journal.record_inbound(b"<a/>", meta(), case_id="nope-1")
    assert count(db_url, "messages") == 0 and count(db_url, "events") == 0


def test_inbound_needs_a_recipient_for_the_mailbox(journal: Journal) -> None:
    m = MessageMeta(str(uuid.uuid4()), "XGewerbeanzeige", "2.2", "0500")
    with pytest.raises(JournalValueError, match="recipient"):
        journal.record_inbound(b"<a/>", m)
    record, _ = journal.record_inbound(b"<a/>", m, initial_state=None)
    assert journal.deliveries(nachrichten_uuid=record.nachrichten_uuid) == []


# ----------------------------------------------------------------------------- payload at rest


def test_encrypted_payload_is_not_readable_in_the_database(
    sealed: Journal, db_url: str, key: str, xgwa_samples: Path
) -> None:
    sample = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    assert all(p in sample for p in PERSONAL)
    m = sample_meta(xgwa_samples / "xgwa2.2-valid.xml")
    record, _ = sealed.record_inbound(sample, m, sender_agency=m.author)
    assert record.encrypted and record.stored_size < len(sample)

    [(raw, encoding, digest)] = raw_rows(
        db_url, "SELECT payload, payload_encoding, payload_sha512 FROM messages"
    )
    assert isinstance(raw, (bytes, memoryview))
    raw = bytes(raw)
    assert encoding == "zlib+fernet"
    assert not any(p in raw for p in PERSONAL)
    with pytest.raises(zlib.error):
        zlib.decompress(raw)  # not merely compressed
    import hashlib

    assert digest == hashlib.sha512(sample).hexdigest()
    assert sealed.payload(m.nachrichten_uuid) == sample

    with (
        Journal(db_url, key=generate_key()) as wrong,
        pytest.raises(JournalKeyError, match=rf"{m.nachrichten_uuid}.*wrong key"),
    ):
        wrong.payload(m.nachrichten_uuid)
    with (
        Journal(db_url) as keyless,
        pytest.raises(JournalKeyError, match="no journal key is configured"),
    ):
        keyless.payload(m.nachrichten_uuid)
    # rotation: a new key first, the old one still decrypts
    with Journal(db_url, key=f"{generate_key()},{key}") as rotated:
        assert rotated.payload(m.nachrichten_uuid) == sample


def test_without_key_payload_is_compressed_not_encrypted(
    journal: Journal, db_url: str, xgwa_samples: Path
) -> None:
    sample = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    m = sample_meta(xgwa_samples / "xgwa2.2-valid.xml")
    record, _ = journal.record_inbound(sample, m)
    assert not record.encrypted and not journal.encrypts
    [(raw, encoding)] = raw_rows(db_url, "SELECT payload, payload_encoding FROM messages")
    raw = bytes(raw)  # type: ignore[arg-type]
    assert encoding == "zlib"
    assert not any(p in raw for p in PERSONAL)
    assert len(raw) < len(sample) // 2
    # … but anybody with database access can read it: NOT encrypted
    assert zlib.decompress(raw) == sample


def test_no_personal_data_outside_the_payload(
    sealed: Journal, db_url: str, xgwa_samples: Path
) -> None:
    sample = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    m = sample_meta(xgwa_samples / "xgwa2.2-valid.xml")
    sealed.create_case("05774032-2026-000001", procedure="gewerbeanzeige")
    sealed.record_inbound(sample, m, sender_agency=m.author, case_id="05774032-2026-000001")
    reply = meta("0501", author=AZR, reader=GEWERBEAMT, in_reply_to=m.nachrichten_uuid)
    _, deliveries, _ = sealed.record_outbound(
        sample.replace(b"0500", b"0501"), reply, recipients=[GEWERBEAMT]
    )
    sealed.record_attempt(deliveries[0].id, ok=False, status_code=503, error="unavailable")
    dump = []
    for table in ("cases", "deliveries", "delivery_attempts", "events", "expectations"):
        dump.extend(raw_rows(db_url, f"SELECT * FROM {table}"))
    dump.extend(
        raw_rows(db_url, "SELECT " + ", ".join(_message_columns_but_payload()) + " FROM messages")
    )
    text_dump = repr(dump).encode()
    for marker in PERSONAL:
        assert marker not in text_dump
    assert m.nachrichten_uuid.encode() in text_dump  # the dump did capture the metadata


def _message_columns_but_payload() -> list[str]:
    from connectors.journal.models import Message

    return [c.name for c in Message.__table__.columns if c.name != "payload"]


def test_tampered_payload_fails_integrity(journal: Journal, db_url: str) -> None:
    m = meta()
    journal.record_inbound(b"<original/>", m)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET payload = :p"), {"p": zlib.compress(b"<forged/>")})
    with pytest.raises(PayloadIntegrityError, match=f"{m.nachrichten_uuid}.*SHA-512"):
        journal.payload(m.nachrichten_uuid)
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET payload = :p"), {"p": b"not zlib at all"})
    engine.dispose()
    with pytest.raises(PayloadIntegrityError, match="does not decompress"):
        journal.payload(m.nachrichten_uuid)


def test_tampered_ciphertext_is_detected(sealed: Journal, db_url: str) -> None:
    m = meta()
    sealed.record_inbound(b"<geheim/>", m)
    [(raw,)] = raw_rows(db_url, "SELECT payload FROM messages")
    flipped = bytearray(bytes(raw))  # type: ignore[arg-type]
    flipped[40] ^= 0x01
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET payload = :p"), {"p": bytes(flipped)})
    engine.dispose()
    with pytest.raises(JournalKeyError, match="altered"):
        sealed.payload(m.nachrichten_uuid)


# ----------------------------------------------------------------------------- outbound


def test_record_outbound_creates_deliveries_in_one_go(journal: Journal) -> None:
    journal.create_case("c-out", procedure="gewerbeanzeige")
    m = meta(author=GEWERBEAMT, reader=AZR)
    message, deliveries, created = journal.record_outbound(
        b"<out/>", m, recipients=[AZR, KAMMER, AZR], case_id="c-out"
    )
    assert created and message.direction is Direction.OUTBOUND
    assert message.correlation_state is None and message.sender_agency == GEWERBEAMT
    assert [d.recipient for d in deliveries] == [AZR, KAMMER]
    assert all(d.state is DeliveryState.CREATED and d.case_id == "c-out" for d in deliveries)
    assert journal.deliveries(case_id="c-out") == deliveries
    assert [e.kind for e in journal.events(nachrichten_uuid=m.nachrichten_uuid)] == [
        "message.queued",
        "delivery.state",
        "delivery.state",
    ]
    again = journal.record_outbound(b"<out/>", m, recipients=[KAMMER, AZR], case_id="c-out")
    assert again == (message, deliveries, False)
    with pytest.raises(MessageConflictError, match="other recipients"):
        journal.record_outbound(b"<out/>", m, recipients=[AZR])
    with pytest.raises(MessageConflictError, match="different payload"):
        journal.record_outbound(b"<changed/>", m, recipients=[AZR, KAMMER])
    with pytest.raises(JournalValueError, match="recipients"):
        journal.record_outbound(b"<x/>", meta(), recipients=[])


def test_record_outbound_many_is_one_transaction(journal: Journal) -> None:
    """A route group's messages go into the outbox together: in order, one event seal for all,
    a repeat returns what is stored, and a conflict in one leaves none of the new ones."""
    journal.create_case("c-many", procedure="gewerbeanzeige")
    a, b = meta(reader=AZR), meta(reader=KAMMER)
    recorded = journal.record_outbound_many(
        [
            OutboxEntry(b"<a/>", a, [AZR], actor="rule:azr"),
            OutboxEntry(b"<b/>", b, [KAMMER], actor="rule:hwk"),
        ],
        case_id="c-many",
        sender_agency=GEWERBEAMT,
    )
    assert [(m.nachrichten_uuid, created) for m, _, created in recorded] == [
        (a.nachrichten_uuid, True),
        (b.nachrichten_uuid, True),
    ]
    assert [[d.recipient for d in ds] for _, ds, _ in recorded] == [[AZR], [KAMMER]]
    assert journal.deliveries(case_id="c-many") == [d for _, ds, _ in recorded for d in ds]
    queued = journal.events(case_id="c-many", kind="message.queued")
    assert [(e.actor, e.nachrichten_uuid) for e in queued] == [
        ("rule:azr", a.nachrichten_uuid),
        ("rule:hwk", b.nachrichten_uuid),
    ]
    assert seal_verify(journal.engine).ok

    c = meta(reader=AZR)
    again = journal.record_outbound_many(
        [OutboxEntry(b"<a/>", a, [AZR]), OutboxEntry(b"<c/>", c, [AZR])], case_id="c-many"
    )
    assert again[0] == (recorded[0][0], recorded[0][1], False) and again[1][2] is True

    d = meta(reader=AZR)
    with pytest.raises(MessageConflictError, match="different payload"):
        journal.record_outbound_many(
            [OutboxEntry(b"<d/>", d, [AZR]), OutboxEntry(b"<changed/>", b, [KAMMER])],
            case_id="c-many",
        )
    with pytest.raises(JournalNotFoundError):
        journal.get_message(d.nachrichten_uuid)  # the first of the failed group is not kept
    with pytest.raises(JournalValueError, match="entries"):
        journal.record_outbound_many([b"<x/>"], case_id="c-many")  # type: ignore[list-item]
    assert journal.record_outbound_many([], case_id="c-many") == []
    assert seal_verify(journal.engine).ok


def _fail_inserts_of(db_url: str, kind: str) -> None:
    """Make the database itself refuse events of ``kind`` (fault injection by trigger)."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER inject BEFORE INSERT ON events WHEN NEW.kind = '{kind}' "
                    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION inject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.kind = '{kind}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER inject BEFORE INSERT ON events "
                    "FOR EACH ROW EXECUTE FUNCTION inject()"
                )
            )
    engine.dispose()


def test_nothing_accepted_is_half_written(journal: Journal, db_url: str) -> None:
    """The last insert of record_inbound/record_outbound (the delivery's event) fails in the
    database: the message and its deliveries must not stay behind."""
    _fail_inserts_of(db_url, "delivery.state")
    with pytest.raises(JournalDatabaseError, match="injected failure"):
        journal.record_outbound(b"<x/>", meta(), recipients=[AZR, KAMMER])
    m = meta()
    with pytest.raises(JournalDatabaseError, match="injected failure"):
        journal.record_inbound(b"<y/>", m)
    assert count(db_url, "messages") == 0
    assert count(db_url, "deliveries") == 0
    assert count(db_url, "events") == 0
    # without a mailbox entry there is no delivery event: the same message now goes in whole
    record, created = journal.record_inbound(b"<y/>", m, initial_state=None)
    assert created and journal.payload(record.nachrichten_uuid) == b"<y/>"


def test_a_message_between_two_local_agencies_is_kept_once_per_side(journal: Journal) -> None:
    m = meta(author=GEWERBEAMT, reader=KAMMER)
    journal.create_case("sender-1", procedure="gewerbeanzeige")
    journal.create_case("receiver-1", procedure="kammerpruefung")
    out, deliveries, _ = journal.record_outbound(
        b"<x/>", m, recipients=[KAMMER], case_id="sender-1"
    )
    journal.record_attempt(deliveries[0].id, ok=True, status_code=202, new_state="delivered")
    inbound, created = journal.record_inbound(b"<x/>", m, case_id="receiver-1")
    assert created and inbound.id != out.id
    assert journal.get_message(m.nachrichten_uuid).direction is Direction.INBOUND
    assert journal.get_message(m.nachrichten_uuid, direction="outbound").case_id == "sender-1"
    assert journal.payload(m.nachrichten_uuid, direction="outbound") == b"<x/>"
    assert [x.nachrichten_uuid for x in journal.mailbox(KAMMER)] == [m.nachrichten_uuid]
    report = journal.transport_report(m.nachrichten_uuid)
    assert [(r.direction.value, r.to_state.value) for r in report] == [
        ("outbound", "created"),
        ("outbound", "sent"),
        ("outbound", "delivered"),
        ("inbound", "delivered"),
    ]


# ----------------------------------------------------------------------------- deliveries


def _delivery_in(journal: Journal, state: DeliveryState) -> int:
    """A fresh outbound delivery brought to ``state`` along allowed transitions."""
    _, [d], _ = journal.record_outbound(b"<d/>", meta(), recipients=[AZR])
    path = {
        DeliveryState.CREATED: [],
        DeliveryState.SENT: ["sent"],
        DeliveryState.DELIVERED: ["sent", "delivered"],
        DeliveryState.FETCHED: ["sent", "delivered", "fetched"],
        DeliveryState.FAILED: ["failed"],
        DeliveryState.DEAD: ["failed", "dead"],
    }[state]
    for step in path:
        journal.transition(d.id, step, actor="test")
    assert journal.get_delivery(d.id).state is state
    return d.id


def test_delivery_state_machine_is_the_specified_one() -> None:
    S = DeliveryState
    expected = {
        S.CREATED: {S.SENT, S.FAILED},
        S.SENT: {S.DELIVERED, S.FAILED},
        S.DELIVERED: {S.FETCHED, S.FAILED},
        S.FETCHED: set(),
        S.FAILED: {S.SENT, S.DEAD},
        S.DEAD: {S.CREATED},
    }
    assert expected == DELIVERY_TRANSITIONS


def test_transition_enforces_every_pair(journal: Journal) -> None:
    for current in DeliveryState:
        for target in DeliveryState:
            if target == current:
                continue
            did = _delivery_in(journal, current)
            before = len(journal.events(delivery_id=did))
            if target in DELIVERY_TRANSITIONS[current]:
                moved = journal.transition(did, target, actor="test", detail={"why": "check"})
                assert moved.state is target
                last = journal.events(delivery_id=did)[-1]
                assert last.detail["from"] == current.value and last.detail["to"] == target.value
                assert last.detail["why"] == "check"
            else:
                with pytest.raises(InvalidTransitionError, match=f"{current} → {target}"):
                    journal.transition(did, target, actor="test")
                assert journal.get_delivery(did).state is current
                assert len(journal.events(delivery_id=did)) == before
    did = _delivery_in(journal, DeliveryState.SENT)
    n = len(journal.events(delivery_id=did))
    assert journal.transition(did, "sent", actor="test").state is DeliveryState.SENT
    assert len(journal.events(delivery_id=did)) == n  # same state: no-op, no event
    with pytest.raises(JournalNotFoundError, match="no delivery 999999"):
        journal.transition(999999, "sent", actor="test")


def test_attempts_retries_and_dead_letters(journal: Journal) -> None:
    journal.create_case("c-send", procedure="p")
    m = meta()
    _, [d], _ = journal.record_outbound(b"<s/>", m, recipients=[KAMMER], case_id="c-send")
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    assert [x.id for x in journal.due_deliveries()] == [d.id]

    failed = journal.record_attempt(
        d.id,
        ok=False,
        status_code=503,
        error_class="HTTPStatusError",
        error="Service Unavailable " + "x" * 1000,
        duration_ms=12,
        next_attempt_at=later,
    )
    assert failed.state is DeliveryState.FAILED and failed.attempts == 1
    assert failed.next_attempt_at == later and failed.last_status_code == 503
    assert failed.last_error is not None and len(failed.last_error) == 500
    assert journal.due_deliveries(now=now) == []
    assert [x.id for x in journal.due_deliveries(now=later)] == [d.id]

    again = journal.record_attempt(d.id, ok=False, status_code=503, next_attempt_at=later)
    assert again.state is DeliveryState.FAILED and again.attempts == 2  # no state change

    ok = journal.record_attempt(d.id, ok=True, status_code=202, duration_ms=8)
    assert ok.state is DeliveryState.SENT and ok.attempts == 3 and ok.last_error is None
    assert journal.due_deliveries(now=later) == []
    delivered = journal.transition(d.id, "delivered", actor="xta")
    assert delivered.state is DeliveryState.DELIVERED

    attempts = journal.attempts(d.id)
    assert [(a.ok, a.status_code) for a in attempts] == [(False, 503), (False, 503), (True, 202)]
    assert attempts[0].error_class == "HTTPStatusError" and attempts[0].duration_ms == 12

    report = journal.transport_report(m.nachrichten_uuid)
    assert [(r.from_state, r.to_state) for r in report] == [
        (None, DeliveryState.CREATED),
        (DeliveryState.CREATED, DeliveryState.FAILED),
        (DeliveryState.FAILED, DeliveryState.SENT),
        (DeliveryState.SENT, DeliveryState.DELIVERED),
    ]
    assert report[1].detail["status_code"] == 503 and report[-1].actor == "xta"
    assert all(r.recipient == KAMMER for r in report)
    assert {e.case_id for e in journal.events(delivery_id=d.id)} == {"c-send"}

    # give up, then redeliver
    _, [d2], _ = journal.record_outbound(b"<t/>", meta(), recipients=[KAMMER])
    journal.record_attempt(d2.id, ok=False, status_code=400, new_state="failed")
    dead = journal.transition(d2.id, "dead", actor="sender", error="rejected")
    assert dead.state is DeliveryState.DEAD
    assert d2.id not in [x.id for x in journal.due_deliveries()]
    requeued = journal.transition(d2.id, "created", actor="operator")
    assert requeued.state is DeliveryState.CREATED
    assert d2.id in [x.id for x in journal.due_deliveries()]
    with pytest.raises(InvalidTransitionError, match="fetched"):
        fetched = _delivery_in(journal, DeliveryState.FETCHED)
        journal.record_attempt(fetched, ok=False)


def test_attempt_straight_to_delivered_passes_through_sent(journal: Journal) -> None:
    m = meta()
    _, [d], _ = journal.record_outbound(b"<s/>", m, recipients=[KAMMER])
    record = journal.record_attempt(d.id, ok=True, status_code=200, new_state="delivered")
    assert record.state is DeliveryState.DELIVERED and record.attempts == 1
    assert [r.to_state.value for r in journal.transport_report(m.nachrichten_uuid)] == [
        "created",
        "sent",
        "delivered",
    ]


def test_delivery_queries(journal: Journal) -> None:
    journal.create_case("q-1", procedure="p")
    _, ds, _ = journal.record_outbound(b"<1/>", meta(), recipients=[AZR, KAMMER], case_id="q-1")
    journal.record_inbound(b"<2/>", meta(reader=KAMMER))
    journal.transition(ds[0].id, "sent", actor="t")
    assert [d.id for d in journal.deliveries(state="sent")] == [ds[0].id]
    assert len(journal.deliveries(recipient=KAMMER)) == 2
    assert len(journal.deliveries(recipient=KAMMER, direction="outbound")) == 1
    assert len(journal.deliveries(state=["created", "delivered"])) == 2
    assert journal.deliveries(limit=1) == [journal.get_delivery(ds[0].id)]
    with pytest.raises(JournalValueError, match="limit"):
        journal.deliveries(limit=0)


# ----------------------------------------------------------------------------- mailbox


def test_mailbox_and_fetch(journal: Journal) -> None:
    first, _ = journal.record_inbound(b"<1/>", meta(reader=AZR))
    second, _ = journal.record_inbound(b"<2/>", meta(reader=AZR))
    journal.record_inbound(b"<3/>", meta(reader=KAMMER))
    journal.record_inbound(b"<4/>", meta(reader=AZR), initial_state="created")  # not yet there
    assert [x.nachrichten_uuid for x in journal.mailbox(AZR)] == [
        first.nachrichten_uuid,
        second.nachrichten_uuid,
    ]
    fetched = journal.mark_fetched(first.nachrichten_uuid, AZR)
    assert fetched.state is DeliveryState.FETCHED
    assert journal.mark_fetched(first.nachrichten_uuid, AZR) == fetched  # again: no-op
    assert [x.nachrichten_uuid for x in journal.mailbox(AZR)] == [second.nachrichten_uuid]
    with pytest.raises(JournalNotFoundError, match=f"{second.nachrichten_uuid}.*{KAMMER}"):
        journal.mark_fetched(second.nachrichten_uuid, KAMMER)
    report = journal.transport_report(first.nachrichten_uuid)
    assert [(r.from_state, r.to_state, r.actor) for r in report] == [
        (None, DeliveryState.DELIVERED, "inbox"),
        (DeliveryState.DELIVERED, DeliveryState.FETCHED, AZR),
    ]
    assert report[0].at <= report[1].at


def test_repeat_for_a_new_recipient_adds_a_mailbox_entry(journal: Journal) -> None:
    m = meta(reader=AZR)
    journal.record_inbound(b"<1/>", m)
    _, created = journal.record_inbound(b"<1/>", m, recipient=KAMMER)
    assert not created
    assert [x.nachrichten_uuid for x in journal.mailbox(KAMMER)] == [m.nachrichten_uuid]
    assert len(journal.deliveries(nachrichten_uuid=m.nachrichten_uuid)) == 2


# ----------------------------------------------------------------------------- events


def test_log_event_and_queries(journal: Journal) -> None:
    journal.create_case("e-1", procedure="p")
    u = str(uuid.uuid4())
    event = journal.log_event(
        "inbox.rejected",
        actor="inbox",
        nachrichten_uuid=u.upper(),
        detail={"reason": "schema", "at": datetime(2026, 1, 1, tzinfo=UTC)},
    )
    assert event.nachrichten_uuid == u and event.detail["at"] == "2026-01-01T00:00:00+00:00"
    assert journal.events(nachrichten_uuid=u) == [event]
    after = journal.events(after_id=event.id)
    assert after == []
    journal.log_event("flow.note", actor="flow", case_id="e-1", detail={"n": 1})
    assert [e.kind for e in journal.events(case_id="e-1")] == ["case.created", "flow.note"]
    with pytest.raises(JournalValueError, match="detail: not JSON"):
        journal.log_event("x.y", actor="t", detail={"bad": object()})
    with pytest.raises(JournalValueError, match="kind"):
        journal.log_event("Has Spaces", actor="t")
    assert not any(name.startswith(("update_event", "delete_event")) for name in dir(journal))


# ----------------------------------------------------------------------------- correlation


def _open(journal: Journal, case_id: str) -> str:
    journal.create_case(case_id, procedure="gewerbeanzeige")
    _, _, _ = journal.record_outbound(
        b"<anfrage/>",
        m := meta("0500", author=GEWERBEAMT, reader=KAMMER),
        recipients=[KAMMER],
        case_id=case_id,
    )
    return m.nachrichten_uuid


def test_reply_after_the_flow_waits(journal: Journal) -> None:
    request = _open(journal, "k-1")
    waiting = journal.expect_reply(
        "k-1", message_type="0501", from_agency=KAMMER, in_reply_to=request, flow_run_id="run-1"
    )
    assert waiting.state is ExpectationState.WAITING
    assert (
        journal.expect_reply(
            "k-1", message_type="0501", from_agency=KAMMER, in_reply_to=request, flow_run_id="run-1"
        )
        == waiting
    )  # a retried task does not register twice
    reply, _ = journal.record_inbound(
        b"<antwort/>", meta("0501", author=KAMMER, reader=GEWERBEAMT, in_reply_to=request)
    )
    matched = journal.match_reply(reply.nachrichten_uuid)
    assert matched is not None and matched.id == waiting.id
    assert matched.state is ExpectationState.SATISFIED and matched.flow_run_id == "run-1"
    assert matched.reply_uuid == reply.nachrichten_uuid
    assert journal.match_reply(reply.nachrichten_uuid) == matched  # idempotent
    message = journal.get_message(reply.nachrichten_uuid)
    assert message.correlation_state is CorrelationState.MATCHED and message.case_id == "k-1"
    assert journal.unmatched_replies() == []
    consumed = journal.consume_reply(reply.nachrichten_uuid, case_id="k-1")
    assert consumed.correlation_state is CorrelationState.CONSUMED
    assert journal.consume_reply(reply.nachrichten_uuid) == consumed
    kinds = [e.kind for e in journal.events(case_id="k-1")]
    assert kinds[-3:] == ["correlation.expected", "correlation.matched", "correlation.consumed"]


def test_reply_before_the_flow_waits_is_kept_and_consumed_later(journal: Journal) -> None:
    request = _open(journal, "k-2")
    reply, _ = journal.record_inbound(
        b"<frueh/>", meta("0501", author=KAMMER, reader=GEWERBEAMT, in_reply_to=request)
    )
    assert journal.match_reply(reply.nachrichten_uuid) is None
    assert [m.nachrichten_uuid for m in journal.unmatched_replies()] == [reply.nachrichten_uuid]
    expectation = journal.expect_reply("k-2", in_reply_to=request, flow_run_id="run-2")
    assert expectation.state is ExpectationState.SATISFIED
    assert expectation.reply_uuid == reply.nachrichten_uuid
    assert journal.unmatched_replies() == []
    assert journal.consume_reply(reply.nachrichten_uuid).case_id == "k-2"


def test_reply_for_no_known_case_is_kept_and_listable(journal: Journal) -> None:
    stray, _ = journal.record_inbound(
        b"<x/>", meta("0501", author=KAMMER, in_reply_to=str(uuid.uuid4()))
    )
    request, _ = journal.record_inbound(b"<y/>", meta("0500", author=GEWERBEAMT))
    assert journal.match_reply(stray.nachrichten_uuid) is None
    assert [m.nachrichten_uuid for m in journal.unmatched_replies(message_type="0501")] == [
        stray.nachrichten_uuid
    ]
    assert [m.nachrichten_uuid for m in journal.unmatched_replies(author=GEWERBEAMT)] == [
        request.nachrichten_uuid
    ]
    # a new request is taken up by a procedure that opens a case for it
    journal.create_case("neu-1", procedure="gewerbeanzeige")
    taken = journal.consume_reply(request.nachrichten_uuid, case_id="neu-1")
    assert taken.case_id == "neu-1" and taken.correlation_state is CorrelationState.CONSUMED
    with pytest.raises(InvalidTransitionError, match="neu-2"):
        journal.consume_reply(request.nachrichten_uuid, case_id="neu-2")
    assert [m.nachrichten_uuid for m in journal.unmatched_replies()] == [stray.nachrichten_uuid]


def test_matching_criteria(journal: Journal) -> None:
    request = _open(journal, "k-3")
    journal.create_case("k-4", procedure="gewerbeanzeige")
    by_type = journal.expect_reply("k-3", message_type="0501", from_agency=KAMMER)
    specific = journal.expect_reply("k-3", message_type="0501", in_reply_to=request)
    # another author and no in_reply_to: neither expectation fits
    other, _ = journal.record_inbound(b"<o/>", meta("0501", author=AZR))
    assert journal.match_reply(other.nachrichten_uuid) is None
    # answers the request and comes from the Kammer: both fit, the specific one wins though younger
    reply, _ = journal.record_inbound(b"<r/>", meta("0501", author=KAMMER, in_reply_to=request))
    matched = journal.match_reply(reply.nachrichten_uuid)
    assert matched is not None and matched.id == specific.id
    # a message already assigned to another case does not satisfy this case's expectation
    foreign, _ = journal.record_inbound(b"<f/>", meta("0501", author=KAMMER), case_id="k-4")
    assert journal.match_reply(foreign.nachrichten_uuid) is None
    k4 = journal.expect_reply("k-4", message_type="0501", from_agency=KAMMER)
    assert k4.reply_uuid == foreign.nachrichten_uuid
    # wrong type: no
    wrong, _ = journal.record_inbound(b"<w/>", meta("0502", author=KAMMER))
    assert journal.match_reply(wrong.nachrichten_uuid) is None
    plain, _ = journal.record_inbound(b"<p/>", meta("0501", author=KAMMER))
    matched = journal.match_reply(plain.nachrichten_uuid)
    assert matched is not None and matched.id == by_type.id
    assert {m.nachrichten_uuid for m in journal.unmatched_replies()} == {
        other.nachrichten_uuid,
        wrong.nachrichten_uuid,
    }


def test_expectation_requires_a_criterion_and_a_case(journal: Journal) -> None:
    journal.create_case("k-5", procedure="p")
    with pytest.raises(JournalValueError, match="in_reply_to or message_type"):
        journal.expect_reply("k-5", from_agency=KAMMER)
    with pytest.raises(JournalNotFoundError, match="no case k-404"):
        journal.expect_reply("k-404", message_type="0501")


def test_expiry(journal: Journal) -> None:
    journal.create_case("k-6", procedure="p")
    past = datetime.now(UTC) - timedelta(seconds=1)
    overdue = journal.expect_reply("k-6", message_type="0501", expires_at=past)
    forever = journal.expect_reply("k-6", message_type="0599")
    late, _ = journal.record_inbound(b"<late/>", meta("0501", author=KAMMER))
    assert journal.match_reply(late.nachrichten_uuid) is None  # deadline passed
    [expired] = journal.expire_overdue()
    assert expired.id == overdue.id and expired.state is ExpectationState.EXPIRED
    assert journal.check_expectation(overdue.id).state is ExpectationState.EXPIRED
    gave_up = journal.expire_expectation(forever.id, reason="frist abgelaufen")
    assert gave_up.state is ExpectationState.EXPIRED
    assert journal.expire_expectation(forever.id) == gave_up
    assert [e.state for e in journal.expectations(case_id="k-6")] == [
        ExpectationState.EXPIRED,
        ExpectationState.EXPIRED,
    ]
    waiting = journal.expect_reply("k-6", message_type="0501")
    assert waiting.state is ExpectationState.SATISFIED  # the late reply was kept
    with pytest.raises(InvalidTransitionError, match="satisfied"):
        journal.expire_expectation(waiting.id)


def test_check_expectation_picks_up_a_reply(journal: Journal) -> None:
    journal.create_case("k-7", procedure="p")
    expectation = journal.expect_reply("k-7", message_type="0501", flow_run_id="run-7")
    # the inbox recorded the reply but never called match_reply (e.g. crashed in between)
    reply, _ = journal.record_inbound(b"<r/>", meta("0501", author=KAMMER))
    polled = journal.check_expectation(expectation.id, actor="flow")
    assert polled.state is ExpectationState.SATISFIED
    assert polled.reply_uuid == reply.nachrichten_uuid
    assert journal.get_expectation(expectation.id) == polled
    assert journal.expectations(flow_run_id="run-7") == [polled]
    assert journal.expectations(state="waiting") == []


# ----------------------------------------------------------------------------- concurrency


def _run_threads(n: int, target: object) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)  # type: ignore[operator]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "worker threads hung"
    assert errors == [], errors
    return results


def test_same_inbound_uuid_from_many_threads(journal: Journal, db_url: str) -> None:
    m = meta()
    payload = b"<gleich/>" * 50
    results = _run_threads(16, lambda i: journal.record_inbound(payload, m, sender_agency=KAMMER))
    created = [c for (_, c) in results]  # type: ignore[misc]
    records = {r for (r, _) in results}  # type: ignore[misc]
    assert created.count(True) == 1
    assert len(records) == 1  # every caller got the same record
    assert count(db_url, "messages") == 1
    assert count(db_url, "deliveries") == 1
    assert count(db_url, "events", "WHERE kind = 'message.received'") == 1


def test_same_outbound_uuid_from_many_threads(journal: Journal, db_url: str) -> None:
    m = meta()
    results = _run_threads(
        8, lambda i: journal.record_outbound(b"<o/>", m, recipients=[AZR, KAMMER])
    )
    assert [r[2] for r in results].count(True) == 1  # type: ignore[index]
    assert len({r[0] for r in results}) == 1  # type: ignore[index]
    assert count(db_url, "deliveries") == 2


def test_many_threads_many_messages_exact_counts(journal: Journal, db_url: str) -> None:
    threads, per_thread = 32, 6

    def work(i: int) -> int:
        done = 0
        for _ in range(per_thread):
            _, created = journal.record_inbound(b"<n>%d</n>" % i, meta(reader=AZR))
            done += created
        return done

    assert sum(_run_threads(threads, work)) == threads * per_thread  # type: ignore[arg-type]
    total = threads * per_thread
    assert count(db_url, "messages") == total
    assert count(db_url, "deliveries", "WHERE state = 'delivered'") == total
    assert count(db_url, "events") == 2 * total
    assert len(journal.mailbox(AZR, limit=None)) == total


def test_case_numbers_from_many_threads_are_unique(journal: Journal) -> None:
    uuids = [journal.record_inbound(b"<n/>", meta())[0].nachrichten_uuid for _ in range(12)]
    results = _run_threads(
        12,
        lambda i: journal.open_case_for_message(uuids[i], procedure="p", prefix="hwk-2026-"),
    )
    ids = sorted(r[0].case_id for r in results)  # type: ignore[index]
    assert ids == [f"hwk-2026-{n:06d}" for n in range(1, 13)]
    assert all(r[1] for r in results)  # type: ignore[index]


def test_reply_and_expectation_racing_always_meet(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox (record + match_reply) and the flow (expect_reply) run at the same moment;
    whichever comes second must see the first. The flow's transaction is held open a little
    after it looked for kept replies, so that without the correlation lock the inbox would look
    for expectations before the flow's is committed, and both would miss each other."""
    original = Journal._try_satisfy

    def slow_try_satisfy(self: Journal, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.05)

    monkeypatch.setattr(Journal, "_try_satisfy", slow_try_satisfy)
    for n in range(4):
        case = f"race-{n}"
        journal.create_case(case, procedure="p")
        request = str(uuid.uuid4())

        def side(i: int, case: str = case, request: str = request, n: int = n) -> object:
            if i == 0:
                reply, _ = journal.record_inbound(
                    b"<r/>", meta("0501", author=KAMMER, in_reply_to=request)
                )
                return journal.match_reply(reply.nachrichten_uuid)
            return journal.expect_reply(case, in_reply_to=request, flow_run_id=f"run-{n}")

        inbox_result, _ = _run_threads(2, side)
        final = journal.expectations(case_id=case)
        assert len(final) == 1 and final[0].state is ExpectationState.SATISFIED, (n, final)
        assert journal.unmatched_replies() == []
        assert inbox_result is None or inbox_result == final[0]


# ----------------------------------------------------------------------------- reports


def test_tables_read_with_pandas(journal: Journal) -> None:
    import pandas as pd

    journal.create_case("p-1", procedure="gewerbeanzeige")
    _, [d], _ = journal.record_outbound(b"<x/>", meta(), recipients=[AZR], case_id="p-1")
    journal.record_attempt(d.id, ok=True, status_code=202, new_state="delivered")
    frame = pd.read_sql(
        text(
            "SELECT m.case_id, d.recipient, d.state, d.updated_at FROM deliveries d "
            "JOIN messages m ON m.id = d.message_id"
        ),
        journal.engine,
    )
    assert frame[["case_id", "recipient", "state"]].values.tolist() == [["p-1", AZR, "delivered"]]
    stamp = pd.to_datetime(frame["updated_at"], utc=True).iloc[0]
    assert stamp.to_pydatetime() == journal.get_delivery(d.id).updated_at
