"""Production topology, for real on this machine: the session's Prefect server on PostgreSQL, two
``prefect worker start --pool amtsbote-process`` subprocesses, the procedures' deployments of
``prefect.yaml`` (``prefect deploy --name …``, triggers included; ``--all`` is exercised by
``test_cluster_serve.py``), ``amtsbote limits sync``, ``amtsbote automations sync`` and the OWL
inboxes on loopback (:class:`bench.cluster.Cluster`). Notifications enter through
the city's inbox as the portal posts them; the inbox hook's ``amtsbote.message.accepted`` events
start the flow runs; a simulated clerk approves through ``amtsbote approve``'s code path; the
Ausländerbehörde answers consultations.

* many cases across two workers, one worker killed with ``kill -9`` (with the flow runs it
  executes) while runs are in flight: every case is closed exactly once, every message reaches its
  recipient once under one nachrichtenUUID, the runs of the dead worker are marked crashed by the
  ``amtsbote-zombie-runs`` automation and rescheduled by ``recover``; the highest number of
  requests in flight at two agencies (measured by a middleware of this test in their inboxes)
  never exceeds their concurrency;
* the consultation of the Ausländerbehörde on a worker: the run suspends, the reply resumes it,
  the re-executed run takes the reply it already has, a clerk approves, the case closes;
* the missing-reply escalation: a consultation without reply is escalated after its deadline,
  one whose reply came is not;
* rolling out a new procedure version while a run waits for approval: where the resumed run's
  code comes from (in-place update vs. runs pinned to their release directory).

The issue asks for 200 cases here. On this 2-core machine one case costs a process worker about
2.5 s of CPU (a Python process per flow run that imports Prefect, plus the Prefect server's
share), so 200 cases take about ten minutes and ``make test`` would pass its 15-minute budget.
This test runs 20 cases, about as many as the worker's zombie detection (heartbeat 30 s, Prefect's
minimum; a run is a zombie 50 s after its last heartbeat) lets overlap;
``bench/cluster.py`` runs 200 through the same harness with the same audit
(:meth:`bench.cluster.Cluster.audit`) for 1, 2 and 4 workers.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid as uuid_module
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import ROOT, _missing, _pg_available

from bench.cluster import Cluster, ClusterOptions, create_database, mix_kinds

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.timeout(900),
]

CASES = 20
# Abmeldung : Ummeldung : Anmeldung (consultation + approval) : Anmeldung by a German national
# (approval, no consultation); the consultation on workers is test_consultation_on_a_worker
MIX = (3, 3, 0, 2)
TRACKED = {"it-nrw": 0.6, "bezreg-detmold": 0.3}  # seconds added per request at these inboxes
CONCURRENCY = {"it-nrw": 1}  # this cluster's directory: one request at a time to IT.NRW


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _flow_run(run_id: str | UUID) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        return await c.read_flow_run(UUID(str(run_id)))


async def _states(run_id: str | UUID) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        return list(await c.read_flow_run_states(UUID(str(run_id))))


async def _cleanup_server() -> None:
    """Leave the shared session server as found: deployments of the pool (and their triggers),
    the amtsbote-* automations, the agency-* limits, the pool."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    async with get_client() as c:
        deps = await c.read_deployments(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=["amtsbote-process"]))
        )
        for d in deps:
            await c.delete_resource_owned_automations(f"prefect.deployment.{d.id}")
            await c.delete_deployment(d.id)
        for a in await c.read_automations():
            if a.name.startswith("amtsbote-"):
                await c.delete_automation(a.id)
        for lim in await c.read_global_concurrency_limits(limit=200):
            if lim.name.startswith("agency-"):
                await c.delete_global_concurrency_limit_by_name(lim.name)
        with __import__("contextlib").suppress(Exception):
            await c.delete_work_pool("amtsbote-process")


@pytest.fixture(scope="module")
def cluster(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not _pg_available():
        _missing("PostgreSQL at 127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("cluster")
    journal_url, drop = create_database("amtsbote_cluster_journal")
    options = ClusterOptions(
        workers=2,
        heartbeat=30,
        zombie_after=50,
        max_crashes=3,
        tracked=TRACKED,
        concurrency=CONCURRENCY,
        reply_within={"auslaenderbehoerde": "PT20S"},
        log_dir=tmp / "logs",
    )
    c = Cluster(tmp, journal_url=journal_url, options=options)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        _run(_cleanup_server())
        drop()


# --------------------------------------------------------------------------- sync commands


def test_sync_commands_are_idempotent_and_dry_runs_change_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows.cli import main

    automation_args = [
        "automations",
        "sync",
        "--zombie-after",
        "50",
        "--reply-within",
        "auslaenderbehoerde=PT20S",
    ]
    assert main(["limits", "sync", "--dry-run"]) == 0
    assert main([*automation_args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    limit_lines = [ln for ln in out.splitlines() if "agency-" in ln]
    assert len(limit_lines) == 2 * len(list(cluster.directory))
    assert all(ln.startswith("unchanged") for ln in limit_lines), out
    auto_lines = [
        ln
        for ln in out.splitlines()
        if len(ln.split()) > 1 and ln.split()[1].startswith("amtsbote-")
    ]
    assert {ln.split()[1] for ln in auto_lines} == {
        "amtsbote-zombie-runs",
        "amtsbote-recover-crashed",
        "amtsbote-missing-reply-auslaenderbehoerde",
        # the Aussonderung family's consultations (0501, 0503) escalate too
        "amtsbote-missing-reply-anbietung",
        "amtsbote-missing-reply-aussonderung",
    }
    assert all(ln.startswith("unchanged") for ln in auto_lines), out

    async def drift() -> None:  # an operator changed one limit and deleted another by hand
        async with get_client() as c:
            await c.update_global_concurrency_limit(
                "agency-dguv", GlobalConcurrencyLimitUpdate(limit=99)
            )
            await c.delete_global_concurrency_limit_by_name("agency-hwk-owl-rate")

    async def limits() -> dict[str, Any]:
        async with get_client() as c:
            return {lim.name: lim for lim in await c.read_global_concurrency_limits(limit=200)}

    _run(drift())
    assert main(["limits", "sync", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "update     agency-dguv  (limit 99 → 4)" in plan
    assert "create     agency-hwk-owl-rate" in plan
    assert _run(limits())["agency-dguv"].limit == 99  # the dry run changed nothing
    assert main(["limits", "sync"]) == 0
    after = _run(limits())
    assert after["agency-dguv"].limit == 4
    assert after["agency-hwk-owl-rate"].slot_decay_per_second == 10.0
    assert after["agency-it-nrw"].limit == 1  # this cluster's directory says 1
    assert after["agency-it-nrw-rate"].slot_decay_per_second == 50.0
    capsys.readouterr()
    assert main(["limits", "sync"]) == 0
    assert "0 changed" in capsys.readouterr().out

    # the work pool's concurrency limit (flow runs executing at once across the workers)
    async def pool_limit() -> int | None:
        async with get_client() as c:
            return (await c.read_work_pool("amtsbote-process")).concurrency_limit

    assert _run(pool_limit()) == 2 * cluster.opts.runs_per_worker
    assert main(["limits", "sync", "--pool-concurrency", "9"]) == 0
    assert "work pool amtsbote-process: exists, concurrency limit 9" in capsys.readouterr().out
    assert _run(pool_limit()) == 9
    assert main(["limits", "sync", "--pool-concurrency", "0"]) == 2
    usual = 2 * cluster.opts.runs_per_worker
    assert main(["limits", "sync", "--pool-concurrency", str(usual)]) == 0
    assert _run(pool_limit()) == usual


# --------------------------------------------------------------------------- the main run


def _wait_for_victim(cluster: Cluster, worker: int, timeout: float = 180) -> None:
    """Until worker ``worker`` executes a flow run that is RUNNING (sends heartbeats)."""
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id in cluster.flow_run_processes(worker).values():
            run = _run(_flow_run(run_id))
            if run.state and run.state.type is StateType.RUNNING:
                return
        time.sleep(0.3)
    raise AssertionError(f"worker {worker} never executed a running flow run")


def test_cases_across_workers_survive_a_killed_worker(cluster: Cluster) -> None:
    from prefect.client.schemas.objects import StateType

    kinds = mix_kinds(CASES, MIX)
    started = time.monotonic()
    uuids = [cluster.submit(k) for k in kinds]

    _wait_for_victim(cluster, 0)
    killed = cluster.kill_worker(0)  # kill -9: the worker and the flow runs it executes
    assert killed, "the killed worker executed no flow run"
    cluster.start_worker(0)  # what systemd's Restart=always does
    cases = cluster.wait_closed(uuids, timeout=600)
    elapsed = time.monotonic() - started

    # every case closed exactly once, every message delivered once, limits kept
    assert cluster.audit(cases) == []
    assert len(cases) == CASES

    # the flow runs of the killed worker: crashed (amtsbote-zombie-runs), then
    # rescheduled by `recover`, then completed
    for run_id in killed:
        states = _run(_states(run_id))
        names = [s.name for s in states]
        assert "Crashed" in names, (run_id, names)
        assert "Recovering" in names[names.index("Crashed") :], (run_id, names)
        final = _run(_flow_run(run_id)).state
        assert final.type is StateType.COMPLETED, (run_id, names)
    for case in cases.values():
        assert _run(_flow_run(case.flow_run_id)).state.type is StateType.COMPLETED

    # per-agency protection across both workers: never more in flight than the concurrency
    peaks = {a: t.max for a, t in cluster.trackers.items()}
    print(
        f"\n{CASES} cases in {elapsed:.0f} s with 2 process workers (one killed: "
        f"{len(killed)} run(s) recovered); peak requests in flight: {peaks} "
        f"(concurrency: it-nrw {cluster.directory.get('it-nrw').concurrency}, bezreg-detmold "
        f"{cluster.directory.get('bezreg-detmold').concurrency})"
    )
    for agency_id, tracker in cluster.trackers.items():
        assert tracker.requests > 0, agency_id
        assert 1 <= tracker.max <= cluster.directory.get(agency_id).concurrency, (agency_id, peaks)


def test_consultation_on_a_worker_resumes_with_the_reply(cluster: Cluster) -> None:
    """The restaurant's Anmeldung by a non-EU national on a worker: the run suspends for the
    Ausländerbehörde's reply, the reply resumes it, a clerk approves, the case closes."""
    uuid = cluster.submit("anmeldung")
    [case] = cluster.wait_closed([uuid], timeout=120).values()
    assert case.status.value == "closed"
    kinds = [e.kind for e in cluster.journal.events(case_id=case.case_id)]
    assert "case.reply" in kinds and "case.decision" in kinds


# --------------------------------------------------------------------------- escalation


def _consultation(cluster: Cluster, case_id: str) -> str:
    """A case waiting for the Ausländerbehörde's reply to a consultation (journal only)."""
    from connectors.journal import MessageMeta
    from xoev.rueckmeldung import v1_0 as rueckmeldung

    j = cluster.journal
    j.create_case(case_id, procedure="gewerbeanmeldung", actor="test")
    sent = str(uuid_module.uuid4())
    kreis = cluster.directory.get("kreis-paderborn").behoerdenkennung
    j.record_outbound(
        b"<consultation/>",
        MessageMeta(
            nachrichten_uuid=sent,
            standard="XGewerbeanzeige",
            version="2.2",
            message_type="abh.gewerbemeldung.0500",
            author="MELDID:05774032",
            reader=kreis,
        ),
        recipients=["kreis-paderborn"],
        case_id=case_id,
        sender_agency="stadt-paderborn",
    )
    j.expect_reply(
        case_id,
        message_type=rueckmeldung.ROOT,
        from_agency=kreis,
        in_reply_to=sent,
        expires_at=datetime.now(UTC) + timedelta(seconds=20),
        actor="test",
    )
    return sent


async def _escalate_runs() -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with get_client() as c:
        runs = await c.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["escalate"]))
        )
        return {str(r.parameters.get("consultation")): r for r in runs}


def test_missing_reply_is_escalated_after_the_deadline(cluster: Cluster) -> None:
    from flows.correlation import (
        emit_consultation_sent,
        emit_reply_received,
        rule_of_consultation,
    )

    suffix = uuid_module.uuid4().hex[:6]
    silent, answered = f"ESC-{suffix}-1", f"ESC-{suffix}-2"
    silent_uuid = _consultation(cluster, silent)
    answered_uuid = _consultation(cluster, answered)
    for case_id, sent in ((silent, silent_uuid), (answered, answered_uuid)):
        emit_consultation_sent(
            case_id, rule="auslaenderbehoerde", recipient="kreis-paderborn", nachrichten_uuid=sent
        )
    time.sleep(3)  # the reply comes after the consultation (events are not ordered within ms)
    rule = rule_of_consultation(
        cluster.journal, answered_uuid, routing=cluster.routing, directory=cluster.directory
    )
    assert rule == "auslaenderbehoerde"
    emit_reply_received(
        answered_uuid, reply_uuid=str(uuid_module.uuid4()), rule=rule, case_id=answered
    )

    deadline = time.monotonic() + 150  # 20 s deadline + proactive evaluation + a flow run
    escalated: list[Any] = []
    while time.monotonic() < deadline and not escalated:
        escalated = cluster.journal.events(case_id=silent, kind="case.escalated")
        time.sleep(1)
    assert escalated, "the silent consultation was not escalated"
    assert escalated[0].nachrichten_uuid == silent_uuid
    assert (
        escalated[0].detail["from_agency"]
        == cluster.directory.get("kreis-paderborn").behoerdenkennung
    )
    time.sleep(10)  # both buckets ended at the same time; the answered one must stay quiet
    runs = _run(_escalate_runs())
    assert silent_uuid in runs
    assert answered_uuid not in runs, sorted(runs)
    assert cluster.journal.events(case_id=answered, kind="case.escalated") == []


# --------------------------------------------------------------------------- rollout


GEWERBE_FLOWS = "flows/families/gewerbe/procedures.py"


def _release(tmp: Path, name: str, *, marker: str | None = None) -> Path:
    """A release directory: a copy of the procedures' code and deployment data (the other
    packages come from the installation); ``marker`` appended to the Gewerbe procedures file
    makes its code differ."""
    target = tmp / name
    for part in ("flows", "deployments"):  # the code and the data files it reads by default
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    if marker:
        with open(target / GEWERBE_FLOWS, "a", encoding="utf-8") as f:
            f.write(f"\n# {marker}\n")
    return target


def _flow_version(release: Path) -> str:
    """The flow version Prefect gives a flow defined in ``release``: the hash of its file."""
    from prefect.utilities.hashing import file_hash

    return file_hash(str(release / GEWERBE_FLOWS))


def _pinned_trigger(release: Path) -> Any:
    """The trigger of prefect.yaml, plus the release directory handed to every run it creates."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    return DeploymentEventTrigger(
        enabled=True,
        match={
            "prefect.resource.id": "amtsbote.message.*",
            "amtsbote.procedure": "gewerbeanmeldung",
        },
        expect={"amtsbote.message.accepted"},
        for_each={"prefect.resource.id"},
        parameters={"message_uuid": "{{ event.resource['amtsbote.nachrichten-uuid'] }}"},
        job_variables={"working_dir": str(release)},
    )


async def _create_rollout_deployments(a: Path) -> tuple[UUID, UUID]:
    """Two deployments of gewerbeanmeldung on release A: ``rollout-in-place`` (pull step
    set_working_directory A, as prefect.yaml does now) and ``rollout-pinned`` (pull step ".",
    working_dir A as job variable, a trigger that passes working_dir A into every run it
    creates)."""
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        flow_id = await c.create_flow_from_name("gewerbeanmeldung")
        common: dict[str, Any] = {
            "flow_id": flow_id,
            "version": "A",
            "entrypoint": f"{GEWERBE_FLOWS}:gewerbeanmeldung",
            "work_pool_name": "amtsbote-process",
            "tags": ["amtsbote", "gewerbe", "rollout-test"],
        }
        in_place = await c.create_deployment(
            name="rollout-in-place",
            **common,
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(a)}}],
        )
        pinned = await c.create_deployment(
            name="rollout-pinned",
            **common,
            job_variables={"working_dir": str(a)},
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": "."}}],
        )
        trigger = _pinned_trigger(a)
        trigger.set_deployment_id(pinned)
        await c.create_automation(trigger.as_automation())
        return in_place, pinned


async def _roll_out(in_place: UUID, pinned: UUID, b: Path) -> None:
    """Release B goes live as `prefect deploy` would do it: both deployments now point to B, the
    pinned deployment's trigger hands B to the runs it creates from now on."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    async with get_client() as c:
        await c.update_deployment(
            in_place,
            DeploymentUpdate(
                version="B",
                pull_steps=[
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(b)}}
                ],
            ),
        )
        await c.update_deployment(
            pinned, DeploymentUpdate(version="B", job_variables={"working_dir": str(b)})
        )
        await c.delete_resource_owned_automations(f"prefect.deployment.{pinned}")
        trigger = _pinned_trigger(b)
        trigger.set_deployment_id(pinned)
        await c.create_automation(trigger.as_automation())


async def _runs_of(deployment_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as c:
        return list(
            await c.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        )


def _wait(predicate: Any, what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_rollout_waiting_runs_and_their_code(cluster: Cluster, tmp_path: Path) -> None:
    from prefect.client.schemas.objects import StateType

    from flows.correlation import approve_case
    from flows.operations import retire_deployment

    a = _release(tmp_path, "release-a")
    b = _release(tmp_path, "release-b", marker="release B of the rollout test")
    version_a, version_b = _flow_version(a), _flow_version(b)
    assert version_a != version_b

    # the prefect.yaml deployment stops starting runs (its waiting runs stay): `automations retire`
    retired = _run(retire_deployment("gewerbeanmeldung/gewerbeanmeldung"))
    assert retired["triggers_removed"] == 1

    cluster.approving.clear()  # the clerk waits: the release changes while the runs wait
    try:
        in_place_uuid = cluster.submit("anmeldung-de")  # no trigger left: started by hand
        time.sleep(3)  # its accepted event is processed before the next trigger exists
        in_place, pinned = _run(_create_rollout_deployments(a))
        in_place_run = _run(_start(in_place, in_place_uuid))
        pinned_uuid = cluster.submit("anmeldung-de")  # started by the pinned deployment's trigger
        pinned_run = _wait(lambda: _run(_runs_of(pinned)), "the trigger's flow run")[0]
        assert pinned_run.job_variables == {"working_dir": str(a)}
        assert pinned_run.parameters == {"message_uuid": pinned_uuid}

        def waiting_for_approval(uuid: str) -> Any:
            case = cluster.case_of(uuid)
            if case is None or case.flow_run_id is None:
                return None
            run = _run(_flow_run(case.flow_run_id))
            return case if run.state and run.state.name == "Suspended" else None

        cases = {
            u: _wait(lambda u=u: waiting_for_approval(u), f"approval wait of {u}")
            for u in (pinned_uuid, in_place_uuid)
        }
        assert cases[in_place_uuid].flow_run_id == str(in_place_run.id)
        assert cases[pinned_uuid].flow_run_id == str(pinned_run.id)
        for run in (pinned_run, in_place_run):
            before = _run(_flow_run(run.id))
            assert before.flow_version == version_a  # both started on release A
            assert before.deployment_version == "A"

        _run(_roll_out(in_place, pinned, b))
        for case in cases.values():
            assert approve_case(
                cluster.journal, case.case_id, decision="approve", comment="geprüft", via="clerk"
            )
    finally:
        cluster.approving.set()

    def resumed(run_id: UUID) -> Any:
        """The run once it was executed again after the approval (and is off the CPU again)."""
        names = [st.name for st in _run(_states(run_id))]
        again = "Resuming" in names and "Running" in names[names.index("Resuming") :]
        run = _run(_flow_run(run_id))
        busy = run.state is None or run.state.type in (
            StateType.RUNNING,
            StateType.PENDING,
            StateType.SCHEDULED,
        )
        return run if again and not busy else None

    after_pinned = _wait(lambda: resumed(pinned_run.id), "the pinned run after approval")
    after_in_place = _wait(lambda: resumed(in_place_run.id), "the in-place run after approval")
    # in place: the resumed run re-executes the deployment's CURRENT code (release B) although
    # it was created on A and says so in deployment_version
    assert after_in_place.flow_version == version_b
    assert after_in_place.deployment_version == "A"
    # pinned: the run keeps the working_dir its trigger gave it and finishes on release A
    assert after_pinned.flow_version == version_a
    assert after_pinned.job_variables == {"working_dir": str(a)}
    # a run the trigger creates after the rollout gets release B
    new_uuid = cluster.submit("anmeldung-de")
    new_run = _wait(
        lambda: [
            r
            for r in _run(_runs_of(pinned))
            if r.parameters.get("message_uuid") == new_uuid and r.flow_version
        ],
        "the run created after the rollout",
    )[0]
    assert new_run.job_variables == {"working_dir": str(b)}
    assert new_run.flow_version == version_b


async def _start(deployment_id: UUID, message_uuid: str) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        return await c.create_flow_run_from_deployment(
            deployment_id, parameters={"message_uuid": message_uuid}
        )
