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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import write_agencies

from connectors.directory import Directory
from connectors.journal import DeliveryState, Direction, Journal
from connectors.senders import OutgoingMessage, sender_for
from xoev.code import Code
from xoev.nachrichtenkopf import Nachrichtenkopf
from xoev.rueckmeldung import v1_0 as rueckmeldung
from xoev.xgewerbeanzeige import notifications, v2_2

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Env:
    """One installation: directory, routing, home journal, inboxes, runtime."""

    def __init__(
        self,
        tmp: Path,
        *,
        journal_url: str | None = None,
        auto_reply: bool = True,
        failing: frozenset[str] = frozenset(),
        edit_agencies: Any = None,
        transfer_roots: dict[str, Path] | None = None,
        environ: dict[str, str] | None = None,
        receipt_wait: float = 20.0,
    ) -> None:
        from flows.local import LocalInstallation
        from flows.routing import Routing
        from flows.runtime import FlowSettings, Runtime, use_runtime

        self.tmp = tmp
        agencies = write_agencies(tmp / "agencies.yaml", drop_dir=tmp / "drop")
        if edit_agencies is not None:  # e.g. the archive on a transfer directory or WebDAV
            agencies.write_text(
                edit_agencies(agencies.read_text(encoding="utf-8")), encoding="utf-8"
            )
        self._env = {
            **(environ or {}),
            "AMTSBOTE_AGENCIES": str(agencies),
            "AMTSBOTE_DATA_DIR": str(tmp / "data"),
            "AMTSBOTE_DEV_TOKENS": "1",
        }
        self._old = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        self.directory = Directory.default()
        self.routing = Routing.default(directory=self.directory)
        from connectors.config import Settings
        from connectors.journal.keyfile import journal_key_for

        # the key a flow process of this installation uses too (the data dir's key file): a
        # child process started with this environment reads what this journal wrote, and back
        self.journal = Journal(
            journal_url or f"sqlite:///{tmp / 'data' / 'journal.sqlite'}",
            key=journal_key_for(Settings.from_env()),
            create=True,
        )
        settings = FlowSettings(
            retry_delays=(0.2, 0.2),
            poll_interval=0.5,
            receipt_wait=__import__("datetime").timedelta(seconds=receipt_wait),
            suspend=False,
        )
        self.rt = Runtime(
            journal=self.journal, directory=self.directory, routing=self.routing, settings=settings
        )
        use_runtime(self.rt)
        self.notified: list[tuple[str, str]] = []
        self.installation = LocalInstallation(
            directory=self.directory,
            home="stadt-paderborn",
            home_journal=self.journal,
            failing=failing,
            simulate_partners=auto_reply,
            on_notification=lambda u, p: self.notified.append((u, p)),
            transfer_roots=transfer_roots or {},
        ).start()

    def submit(self, sample_name: str, *, by: str = "wsp-nrw") -> str:
        """The portal (or agency ``by``) posts a notification to the city's inbox; returns its
        nachrichtenUUID."""
        from flows.local import behoerde

        sample = next(s for s in notifications() if s.path.name.startswith(sample_name))
        model = v2_2.parse(sample.path.read_bytes())
        kopf = Nachrichtenkopf.neu(
            nachrichtentyp="0010",
            leser=behoerde(self.directory.get("stadt-paderborn")),
            autor=behoerde(self.directory.get(by)),
        )
        payload = v2_2.build(v2_2.project(model, "gwa.gewerbemeldung.0010", kopf=kopf))
        with sender_for("stadt-paderborn", self.directory) as sender:
            sender.send(
                OutgoingMessage(
                    payload=payload,
                    nachrichten_uuid=kopf.nachrichten_uuid,
                    recipient="stadt-paderborn",
                    sender=by,
                )
            )
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


def _approve_when_waiting(
    env: Env, *, decision: str = "approve", timeout: float = 60
) -> threading.Thread:
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
    return {
        d.recipient
        + ":"
        + env.journal.get_message(d.nachrichten_uuid, direction=Direction.OUTBOUND).message_type: d
        for d in env.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND)
    }


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
        expected = (
            {DeliveryState.FETCHED} if key.startswith("ihk-owl") else {DeliveryState.DELIVERED}
        )
        assert d.state in expected, (key, d.state)
    # each recipient holds exactly its message, data-minimised: no names for the statistics office
    stat = env.installation.journal_of("it-nrw")
    [msg] = stat.messages(direction=Direction.INBOUND)
    assert b"familienname" not in stat.payload(msg.nachrichten_uuid)
    # the reply was consumed by the case; the decision (with its comment) is in the journal
    kinds = [e.kind for e in env.journal.events(case_id=case_id)]
    assert "case.reply" in kinds and "case.decision" in kinds
    decision = env.journal.events(case_id=case_id, kind="case.decision")[-1]
    assert decision.detail["decision"] == "approve" and decision.detail["comment"] is True
    # the comment itself is kept with the case (removed by retention), not in the event log
    assert env.journal.get_case(case_id).summary["comments"] == ["geprüft"]


def test_rerun_sends_nothing_twice(env: Env) -> None:
    from flows.procedures import gewerbeabmeldung

    uuid = env.submit("notification-abmeldung")
    first = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
    counts = {
        a.id: env.installation.received(a.id)
        for a in env.directory
        if a.id in env.installation.servers and a.id != "stadt-paderborn"
    }
    uuids = sorted(
        d.nachrichten_uuid
        for d in env.journal.deliveries(case_id=first["case_id"], direction=Direction.OUTBOUND)
    )
    second = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
    assert second["case_id"] == first["case_id"]
    assert (
        sorted(
            d.nachrichten_uuid
            for d in env.journal.deliveries(case_id=first["case_id"], direction=Direction.OUTBOUND)
        )
        == uuids
    )
    assert {a: env.installation.received(a) for a in counts} == counts


def _reply(env: Env, bezug: str, *, ergebnis: str = "01", overtaking: bool = False) -> str:
    """The Ausländerbehörde's Rückmeldung to the city's inbox. ``overtaking``: put into the
    journal directly, as the inbox does after its checks — a reply that overtook its run (the
    inbox took it between the consultation's send and the run's wait); the inbox itself takes
    only replies to a consultation it finds sent."""
    from flows.local import behoerde

    kopf = Nachrichtenkopf.neu(
        nachrichtentyp="0900",
        leser=behoerde(env.directory.get("stadt-paderborn")),
        autor=behoerde(env.directory.get("kreis-paderborn")),
    )
    payload = rueckmeldung.build(
        rueckmeldung.Rueckmeldung(
            nachrichtenkopf=kopf,
            bezug=bezug,
            ergebnis=Code(ergebnis, list_uri=rueckmeldung.ERGEBNIS_LIST_URI, list_version_id="1.0"),
        )
    )
    if overtaking:
        from connectors.journal import MessageMeta
        from xoev.message import inspect_message

        env.journal.record_inbound(
            payload,
            MessageMeta.from_info(inspect_message(payload)),
            sender_agency="kreis-paderborn",
            recipient="stadt-paderborn",
        )
        return kopf.nachrichten_uuid
    with sender_for("stadt-paderborn", env.directory) as sender:
        sender.send(
            OutgoingMessage(
                payload=payload,
                nachrichten_uuid=kopf.nachrichten_uuid,
                recipient="stadt-paderborn",
                sender="kreis-paderborn",
            )
        )
    return kopf.nachrichten_uuid


def test_reply_to_nothing_the_city_sent_is_refused_and_not_kept(env: Env) -> None:
    """The sender learns that its answer went nowhere (issue 12, point 7): 422, nothing kept."""
    from connectors.senders import PermanentSendError

    with pytest.raises(PermanentSendError) as caught:
        _reply(env, "11111111-2222-3333-4444-555555555555")
    assert "HTTP 422" in str(caught.value)
    assert "names no message stadt-paderborn sent to kreis-paderborn" in str(caught.value)
    assert env.journal.unmatched_replies() == []


# --------------------------------------------------------------------------- correlation


@pytest.fixture
def quiet_env(tmp_path: Path, prefect_server: Any) -> Iterator[Env]:
    """Like ``env`` but the Ausländerbehörde does not answer by itself: the test replies. No
    simulated partner fetches its mailbox either, so close waits only briefly for ``fetched``."""
    e = Env(tmp_path, auto_reply=False, receipt_wait=2.0)
    try:
        yield e
    finally:
        e.close()


def _run_in_thread(coro_fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro_fn(*args))
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _mark_crashed(flow_run_id: str) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(flow_run_id), Crashed(message="process killed"), force=True)


def _flow_state(flow_run_id: str) -> str:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).state.type.value


def _task_runs(flow_run_id: str) -> list[tuple[str, str, int]]:
    """(name, state type, run count) of a flow run's task runs, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )
    runs.sort(key=lambda r: r.created or datetime.min.replace(tzinfo=UTC))
    return [(r.name, r.state.type.value if r.state else "?", r.run_count) for r in runs]


def test_a_recipient_down_at_the_first_attempt_gets_its_message_from_the_retry_task(
    tmp_path: Path, prefect_server: Any
) -> None:
    """A case whose deliveries all succeed at once runs no task (the first attempt is on the
    flow run); when a recipient is down, the retry is a ``send-…`` task an operator can watch,
    and a recipient back in time gets its message at the second attempt under the same
    nachrichtenUUID."""
    import dataclasses

    from flows.procedures import gewerbeummeldung

    env = Env(tmp_path, failing=frozenset({"dguv"}))
    try:
        env.rt.settings = dataclasses.replace(env.rt.settings, retry_delays=(4.0,))
        uuid = env.submit("notification-ummeldung")

        def bring_dguv_up() -> None:  # as soon as its first attempt has failed
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if env.journal.deliveries(recipient="dguv", state=DeliveryState.FAILED):
                    env.installation.start_agency("dguv")
                    return
                time.sleep(0.02)

        helper = threading.Thread(target=bring_dguv_up, daemon=True)
        helper.start()
        summary = asyncio.run(gewerbeummeldung(message_uuid=uuid))
        helper.join(timeout=5)
        case_id = summary["case_id"]
        assert summary["status"] == "closed"
        deliveries = _outbound(env, case_id)
        attempts = {key.split(":")[0]: d.attempts for key, d in deliveries.items()}
        assert attempts.pop("dguv") == 2 and set(attempts.values()) == {1}
        [(name, state, run_count)] = _task_runs(env.journal.get_case(case_id).flow_run_id or "")
        assert (name, state, run_count) == (f"send-{len(deliveries)}-messages", "COMPLETED", 1)
        received = env.installation.journal_of("dguv").messages(direction=Direction.INBOUND)
        assert [m.nachrichten_uuid for m in received] == [
            deliveries[next(k for k in deliveries if k.startswith("dguv:"))].nachrichten_uuid
        ]

        # all up now: the next case runs no task at all
        second = asyncio.run(gewerbeummeldung(message_uuid=env.submit("notification-ummeldung")))
        assert second["status"] == "closed"
        assert _task_runs(env.journal.get_case(second["case_id"]).flow_run_id or "") == []
    finally:
        env.close()


def test_a_run_whose_intake_refuses_is_failed_and_named_after_the_message(env: Env) -> None:
    """An Anmeldung started as an Ummeldung: intake refuses, the run ends Failed and carries
    the message's name (check, which names runs after their case, never ran)."""
    from flows.procedures import gewerbeummeldung

    uuid = env.submit("notification-anmeldung")
    state = asyncio.run(gewerbeummeldung(message_uuid=uuid, return_state=True))
    assert state.is_failed()
    run_id = str(state.state_details.flow_run_id)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.name == f"gewerbeummeldung-{uuid}" and "gewerbeummeldung" in run.tags
    assert env.journal.get_message(uuid).case_id is None


def test_reply_early_is_kept_and_taken_when_the_run_asks(quiet_env: Env) -> None:
    from flows.families.gewerbe.family import message_uuid_for
    from flows.procedures import gewerbeanmeldung

    env = quiet_env
    uuid = env.submit("notification-anmeldung")
    consult_uuid = message_uuid_for(
        uuid, "auslaenderbehoerde", key=env.journal.secret("message-uuid")
    )
    reply = _reply(env, consult_uuid, overtaking=True)  # in the journal before the run asks
    assert reply in [m.nachrichten_uuid for m in env.journal.unmatched_replies()]
    clerk = _approve_when_waiting(env)
    summary = asyncio.run(gewerbeanmeldung(message_uuid=uuid))
    clerk.join(timeout=5)
    assert summary["status"] == "closed"
    assert reply not in [m.nachrichten_uuid for m in env.journal.unmatched_replies()]
    [ev] = env.journal.events(case_id=summary["case_id"], kind="case.reply")
    assert ev.nachrichten_uuid == reply and ev.detail["ergebnis"] == "01"


def test_reply_on_time_resumes_the_paused_run(quiet_env: Env) -> None:
    from flows.families.gewerbe.family import message_uuid_for
    from flows.procedures import gewerbeanmeldung

    env = quiet_env
    uuid = env.submit("notification-anmeldung")
    thread, box = _run_in_thread(gewerbeanmeldung, uuid)

    def paused_for_reply() -> bool:
        case_id = env.journal.get_message(uuid).case_id
        if not case_id:
            return False
        case = env.journal.get_case(case_id)
        return bool(case.flow_run_id) and _flow_state(case.flow_run_id) == "PAUSED"

    _wait(paused_for_reply, what="the run to pause for the Rückmeldung")
    case = env.journal.get_case(env.journal.get_message(uuid).case_id)
    assert case.status.value == "waiting"
    clerk = _approve_when_waiting(env)
    _reply(
        env,
        message_uuid_for(uuid, "auslaenderbehoerde", key=env.journal.secret("message-uuid")),
        ergebnis="01",
    )
    thread.join(timeout=90)
    clerk.join(timeout=5)
    assert "error" not in box, box.get("error")
    assert box["result"]["status"] == "closed"
    assert _flow_state(case.flow_run_id) == "COMPLETED"


def test_reply_late_fails_the_case_and_is_kept(quiet_env: Env, tmp_path: Path) -> None:
    from datetime import timedelta

    from flows.exceptions import CaseError
    from flows.families.gewerbe.family import message_uuid_for
    from flows.procedures import gewerbeanmeldung
    from flows.routing import Routing

    env = quiet_env
    short = [
        r
        if not r.consult
        else type(r)(
            rule=r.rule,
            recipient=r.recipient,
            message_type=r.message_type,
            consult=True,
            reply_within=timedelta(seconds=2),
            when=r.when,
        )
        for r in env.routing.rules
    ]
    env.rt.routing = Routing(
        sender=env.routing.sender, rules=tuple(short), approval=env.routing.approval, source="test"
    )
    uuid = env.submit("notification-anmeldung")
    with pytest.raises(CaseError, match="no reply"):
        asyncio.run(gewerbeanmeldung(message_uuid=uuid))
    case = env.journal.get_case(env.journal.get_message(uuid).case_id)
    assert case.status.value == "failed"
    reply = _reply(
        env, message_uuid_for(uuid, "auslaenderbehoerde", key=env.journal.secret("message-uuid"))
    )
    assert reply in [m.nachrichten_uuid for m in env.journal.unmatched_replies()]


# --------------------------------------------------------------------------- crash and re-run

_CHILD = """
import asyncio, sys
from flows.procedures import gewerbeabmeldung
asyncio.run(gewerbeabmeldung(message_uuid=sys.argv[1]))
"""


def test_process_killed_mid_distribution_rerun_sends_nothing_twice(
    tmp_path: Path, prefect_server: Any
) -> None:
    import signal
    import subprocess
    import sys

    from flows.procedures import gewerbeabmeldung

    env = Env(tmp_path)
    try:
        # the DGUV's inbox answers slowly: the flow process is killed while it waits for it
        slow = env.installation.servers["dguv"]
        inner = slow.app

        async def slow_app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                await asyncio.sleep(3)
            await inner(scope, receive, send)

        slow.app = slow_app
        slow.stop()
        slow.start()
        uuid = env.submit("notification-abmeldung")
        child_env = dict(
            os.environ, AMTSBOTE_SEND_RETRY_DELAYS="0.2", AMTSBOTE_RECEIPT_WAIT="PT10S"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, uuid],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def some_delivered() -> bool:
                msg = env.journal.get_message(uuid)
                if not msg.case_id:
                    return False
                states = [
                    d.state
                    for d in env.journal.deliveries(
                        case_id=msg.case_id, direction=Direction.OUTBOUND
                    )
                ]
                return DeliveryState.DELIVERED in states and len(states) >= 4

            _wait(some_delivered, timeout=90, what="the first deliveries of the child run")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        case_id = env.journal.get_message(uuid).case_id
        before = {
            d.recipient: d.nachrichten_uuid
            for d in env.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND)
        }
        # a second run refuses while the killed one still counts as running …
        from flows.exceptions import IntakeRejected

        with pytest.raises(IntakeRejected, match="being handled"):
            asyncio.run(gewerbeabmeldung(message_uuid=uuid))
        # … until it is marked crashed, as the zombie automation does when heartbeats stop
        _mark_crashed(env.journal.get_case(case_id).flow_run_id)
        summary = asyncio.run(gewerbeabmeldung(message_uuid=uuid))
        assert summary["case_id"] == case_id and summary["status"] == "closed"
        after = {
            d.recipient: d.nachrichten_uuid
            for d in env.journal.deliveries(case_id=case_id, direction=Direction.OUTBOUND)
        }
        assert after == before  # same messages, same UUIDs
        for recipient, msg_uuid in after.items():
            if recipient not in env.installation.servers:
                continue
            inbound = env.installation.journal_of(recipient).messages(direction=Direction.INBOUND)
            assert [m.nachrichten_uuid for m in inbound] == [msg_uuid], recipient
    finally:
        env.close()


# --------------------------------------------------------------------------- PostgreSQL journal


def test_anmeldung_with_the_journal_on_postgresql(
    tmp_path: Path, prefect_server: Any, pg_url: str
) -> None:
    from sqlalchemy import create_engine, text

    from flows.procedures import gewerbeanmeldung

    schema = f"t_{os.urandom(4).hex()}"
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    env = Env(tmp_path, journal_url=url)
    try:
        assert env.journal.dialect == "postgresql"
        uuid = env.submit("notification-anmeldung")
        clerk = _approve_when_waiting(env)
        summary = asyncio.run(gewerbeanmeldung(message_uuid=uuid))
        clerk.join(timeout=5)
        assert summary["status"] == "closed"
        assert env.journal.get_case(summary["case_id"]).status.value == "closed"
        assert all(
            d.state in (DeliveryState.DELIVERED, DeliveryState.FETCHED)
            for d in env.journal.deliveries(case_id=summary["case_id"])
        )
    finally:
        env.close()


def test_dead_letters_fail_the_run_and_redeliver_fails_until_they_are_gone(
    tmp_path: Path, prefect_server: Any
) -> None:
    """A failed case looks failed (issue 12, point 6): dguv down through every retry → the
    case is ``failed`` and its flow run is Failed with the reason (agency ids, no personal
    data); a redeliver while dguv is still down fails too; once it is up, the redeliver run
    completes and the case closes."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterStartTime,
    )

    from flows.exceptions import DeadLetters
    from flows.procedures import gewerbeummeldung, redeliver

    # the Prefect server is the session's: other tests' journals number their cases alike
    started = datetime.now(UTC)
    env = Env(tmp_path, failing=frozenset({"dguv"}))
    try:
        uuid = env.submit("notification-ummeldung")
        with pytest.raises(DeadLetters) as caught:
            asyncio.run(gewerbeummeldung(message_uuid=uuid))
        case_id = caught.value.case_id
        assert case_id is not None and "redeliver --case " + case_id in str(caught.value)
        assert env.journal.get_case(case_id).status.value == "failed"
        case = env.journal.get_case(case_id)
        assert case.flow_run_id and _flow_state(case.flow_run_id) == "FAILED"
        # the first attempt on the flow run, then the retries of FlowSettings (0.2, 0.2)
        [dead] = env.journal.deliveries(case_id=case_id, state=DeliveryState.DEAD)
        assert dead.recipient == "dguv" and dead.attempts == 3
        assert [(name, state) for name, state, _ in _task_runs(case.flow_run_id)] == [
            (f"send-{len(_outbound(env, case_id))}-messages", "FAILED")
        ]

        async def message_of(flow_run_id: str) -> str:
            async with get_client() as client:
                run = await client.read_flow_run(UUID(flow_run_id))
                return str(run.state.message if run.state else "")

        message = asyncio.run(message_of(case.flow_run_id))
        assert "dead" in message and case_id in message
        assert "Musterfrau" not in message and "Mustermann" not in message

        with pytest.raises(DeadLetters):  # dguv still down
            asyncio.run(redeliver(case_id=case_id))
        env.installation.start_agency("dguv")
        [summary] = asyncio.run(redeliver(case_id=case_id))
        assert summary["status"] == "closed"

        async def redeliver_states() -> list[str]:
            async with get_client() as client:
                runs = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        name=FlowRunFilterName(any_=[f"redeliver-{case_id}"]),
                        start_time=FlowRunFilterStartTime(after_=started),
                    )
                )
                return sorted(r.state.type.value for r in runs if r.state)

        assert asyncio.run(redeliver_states()) == ["COMPLETED", "FAILED"]
    finally:
        env.close()
