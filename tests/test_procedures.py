"""The Gewerbe procedures end to end: real inboxes on loopback, a real Prefect server on PostgreSQL.

Each test runs procedures as flow runs against the session's Prefect server; the OWL agencies'
inboxes run in-process (uvicorn threads) on free loopback ports with their own journals.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.directory import Directory
from connectors.journal import DeliveryState, Direction, Journal
from connectors.senders import OutgoingMessage, sender_for
from xoev.code import Code
from xoev.nachrichtenkopf import Nachrichtenkopf
from xoev.rueckmeldung import v1_0 as rueckmeldung
from xoev.xgewerbeanzeige import notifications, v2_2

from conftest import write_agencies

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Env:
    """One installation: directory, routing, home journal, inboxes, runtime."""

    def __init__(self, tmp: Path, *, journal_url: str | None = None, auto_reply: bool = True,
                 failing: frozenset[str] = frozenset()) -> None:
        from flows.local import LocalInstallation
        from flows.routing import Routing
        from flows.runtime import FlowSettings, Runtime, use_runtime

        self.tmp = tmp
        agencies = write_agencies(tmp / "agencies.yaml", drop_dir=tmp / "drop")
        self._env = {
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(tmp / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
        }
        self._old = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        self.directory = Directory.default()
        self.routing = Routing.default(directory=self.directory)
        self.journal = Journal(journal_url or f"sqlite:///{tmp / 'data' / 'journal.sqlite'}",
                               create=True)
        settings = FlowSettings(retry_delays=(0.2, 0.2), poll_interval=0.5,
                                receipt_wait=__import__("datetime").timedelta(seconds=20),
                                suspend=False)
        self.rt = Runtime(journal=self.journal, directory=self.directory, routing=self.routing,
                          settings=settings)
        use_runtime(self.rt)
        self.notified: list[tuple[str, str]] = []
        self.installation = LocalInstallation(
            directory=self.directory, home="stadt-paderborn", home_journal=self.journal,
            failing=failing, simulate_partners=auto_reply,
            on_notification=lambda u, p: self.notified.append((u, p)),
        ).start()

    def submit(self, sample_name: str) -> str:
        """The portal posts a notification to the city's inbox; returns its nachrichtenUUID."""
        from flows.local import behoerde

        sample = next(s for s in notifications() if s.path.name.startswith(sample_name))
        model = v2_2.parse(sample.path.read_bytes())
        kopf = Nachrichtenkopf.neu(nachrichtentyp="0010",
                                   leser=behoerde(self.directory.get("stadt-paderborn")),
                                   autor=behoerde(self.directory.get("wsp-nrw")))
        payload = v2_2.build(v2_2.project(model, "gwa.gewerbemeldung.0010", kopf=kopf))
        with sender_for("stadt-paderborn", self.directory) as sender:
            sender.send(OutgoingMessage(payload=payload, nachrichten_uuid=kopf.nachrichten_uuid,
                                        recipient="stadt-paderborn", sender="wsp-nrw"))
        return kopf.nachrichten_uuid

    def close(self) -> None:
        from flows.runtime import use_runtime

        self.installation.stop()
        self.rt.close()
        self.journal.close()
        use_runtime(None)
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def env(tmp_path: Path, prefect_server: Any) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()


def _approve_when_waiting(env: Env, *, decision: str = "approve", timeout: float = 60) -> threading.Thread:
    """A clerk: waits until a case waits for approval, then `amtsbote approve` (same code path)."""
    from flows.correlation import approve_case

    def clerk() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for case in env.journal.list_cases(status="waiting"):
                events = env.journal.events(case_id=case.case_id, kind="case.updated")
                if any(e.detail.get("waiting_for") == "approval" for e in events):
                    approve_case(env.journal, case.case_id, decision=decision, comment="geprüft")
                    return
            time.sleep(0.2)

    t = threading.Thread(target=clerk, daemon=True)
    t.start()
    return t


def _outbound(env: Env, case_id: str) -> dict[str, Any]:
    return {d.recipient + ":" + env.journal.get_message(d.nachrichten_uuid,
                                                         direction=Direction.OUTBOUND).message_type:
            d for d in env.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND)}


def test_anmeldung_end_to_end_with_consultation_and_approval(env: Env) -> None:
    from flows.procedures import gewerbeanmeldung

    uuid = env.submit("notification-anmeldung")
    assert env.notified == [(uuid, "gewerbeanmeldung")]  # the inbox hook saw the notification
    clerk = _approve_when_waiting(env)
    summary = asyncio.run(gewerbeanmeldung(message_uuid=uuid))
    clerk.join(timeout=5)

    case_id = summary["case_id"]
    case = env.journal.get_case(case_id)
    assert case.status.value == "closed"
    assert case_id.startswith("05774032-")
    out = _outbound(env, case_id)
    # consultation of the Ausländerbehörde + the routed recipients of a restaurant Anmeldung
    assert "kreis-paderborn:abh.gewerbemeldung.0500" in out
    assert "kreis-paderborn:lue.gewerbemeldung.0290" in out
    assert "bezreg-detmold:gaa.gewerbemeldung.0250" in out
    assert "it-nrw:sta.gewerbemeldung.0100" in out
    assert "ihk-owl:ihk.gewerbemeldung.0200" in out  # mailbox agency: fetched by its system
    assert "hwk-owl:hwk.gewerbemeldung.0210" not in out  # no Handwerk
    for key, d in out.items():
        expected = {DeliveryState.FETCHED} if key.startswith("ihk-owl") else {DeliveryState.DELIVERED}
        assert d.state in expected, (key, d.state)
    # each recipient holds exactly its message, data-minimised: no names for the statistics office
    stat = env.installation.journal_of("it-nrw")
    [msg] = stat.messages(direction=Direction.INBOUND)
    assert b"familienname" not in stat.payload(msg.nachrichten_uuid)
    # the reply was consumed by the case; the decision (with its comment) is in the journal
    kinds = [e.kind for e in env.journal.events(case_id=case_id)]
    assert "case.reply" in kinds and "case.decision" in kinds
    decision = env.journal.events(case_id=case_id, kind="case.decision")[-1]
    assert decision.detail["decision"] == "approve" and decision.detail["comment"] == "geprüft"


def test_rerun_sends_nothing_twice(env: Env) -> None:
    from flows.procedures import gewerbeabmeldung

    uuid = env.submit("notification-abmeldung")
    first = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
    counts = {a.id: env.installation.received(a.id) for a in env.directory
              if a.id in env.installation.servers and a.id != "stadt-paderborn"}
    uuids = sorted(d.nachrichten_uuid for d in env.journal.deliveries(case_id=first["case_id"],
                                                                        direction=Direction.OUTBOUND))
    second = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
    assert second["case_id"] == first["case_id"]
    assert sorted(d.nachrichten_uuid for d in env.journal.deliveries(
        case_id=first["case_id"], direction=Direction.OUTBOUND)) == uuids
    assert {a: env.installation.received(a) for a in counts} == counts


def _reply(env: Env, bezug: str, *, ergebnis: str = "01") -> str:
    from flows.local import behoerde

    kopf = Nachrichtenkopf.neu(nachrichtentyp="0900",
                               leser=behoerde(env.directory.get("stadt-paderborn")),
                               autor=behoerde(env.directory.get("kreis-paderborn")))
    payload = rueckmeldung.build(rueckmeldung.Rueckmeldung(
        nachrichtenkopf=kopf, bezug=bezug,
        ergebnis=Code(ergebnis, list_uri=rueckmeldung.ERGEBNIS_LIST_URI, list_version_id="1.0")))
    with sender_for("stadt-paderborn", env.directory) as sender:
        sender.send(OutgoingMessage(payload=payload, nachrichten_uuid=kopf.nachrichten_uuid,
                                    recipient="stadt-paderborn", sender="kreis-paderborn"))
    return kopf.nachrichten_uuid


def test_reply_for_no_known_case_is_kept_and_listed(env: Env) -> None:
    reply = _reply(env, "11111111-2222-3333-4444-555555555555")
    unmatched = [m.nachrichten_uuid for m in env.journal.unmatched_replies()]
    assert reply in unmatched
