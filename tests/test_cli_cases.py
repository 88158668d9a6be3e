"""``amtsbote cases --unmatched``: only what no case claimed among the messages to the home agency;
messages waiting in the mailboxes the city hosts for other agencies are not unclaimed replies."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from connectors.journal import Journal, MessageMeta
from flows.cli import main


def _inbound(journal: Journal, *, recipient: str) -> str:
    key = str(uuid.uuid4())
    journal.record_inbound(
        b"<reply/>",
        MessageMeta(
            nachrichten_uuid=key,
            standard="Rueckmeldung",
            version="1.0",
            message_type="amtsbote.rueckmeldung",
            author="kreis:05774",
            reader="stadt:05774032",
        ),
        sender_agency="kreis-paderborn",
        recipient=recipient,
    )
    return key


def test_unmatched_lists_replies_to_the_city_not_its_hosted_mailboxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMTSBOTE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AMTSBOTE_DATABASE_URL", raising=False)
    monkeypatch.delenv("AMTSBOTE_AGENCIES", raising=False)
    journal = Journal.from_env(create=True)
    try:
        to_city = _inbound(journal, recipient="stadt-paderborn")
        in_ihk_mailbox = _inbound(journal, recipient="ihk-owl")  # hosted by the city's inbox
        assert {m.nachrichten_uuid for m in journal.unmatched_replies()} == {
            to_city,
            in_ihk_mailbox,
        }
    finally:
        journal.close()
    assert main(["cases", "--unmatched", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["nachrichtenUUID"] for r in rows] == [to_city]
