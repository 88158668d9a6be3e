"""Operating an installation: per-agency limits, automations, recovery, escalation, rollouts.

Per-agency limits (``amtsbote limits sync``)
    Two Prefect *global concurrency limits* per agency of the directory:

    ====================  ===================================  ==================================
    name                  settings                             protects
    ====================  ===================================  ==================================
    ``agency-<id>``       limit = ``concurrency``, no decay    simultaneous requests (all workers)
    ``agency-<id>-rate``  limit = ceil(``rate_limit``), slot   requests per second (all workers);
                          decay = ``rate_limit`` per second    the limit is the burst size
    ====================  ===================================  ==================================

    Why two and not one limit with ``slot_decay_per_second = rate_limit``: Prefect decays the
    *occupied* slots of a limit with slot decay (``active_slots - floor(decay × seconds)``), also
    while their holders are still inside ``concurrency()``. One combined limit would let a third
    request reach a ``concurrency: 2`` agency as soon as two slow requests have been in flight for
    ``2 / rate_limit`` seconds. The concurrency limit has no decay; slots are held with a lease of
    60 s (Prefect's minimum) that the holder renews, so the slots of a killed worker return at
    the latest 60 s after it died (plus the server's repossessor loop).

    :func:`agency_slot` is what :func:`flows.blocks.send_delivery` wraps each request in: first a
    slot of ``agency-<id>`` (held until the answer), then a token of ``agency-<id>-rate``.
    When a limit **does not exist** on the server (an installation that never ran ``amtsbote
    limits sync``: the demo, tests, a fresh server) sending proceeds without it and a warning is
    logged once per process and limit, naming the command to run; the in-process limiter of the
    sender (:class:`connectors.senders.RateLimiter` and its semaphore, per worker process) still
    applies. Decided so because a missing limit is a configuration gap, not a reason to stop the
    city's procedures; ``amtsbote serve`` and the deployment guides always sync. When the Prefect
    API cannot be asked, or no slot is free within ``AMTSBOTE_LIMIT_WAIT`` seconds, a
    :class:`~connectors.senders.TransientSendError` is raised: the send task's retries apply and
    the delivery becomes a dead letter only after them.

    Environment: ``AMTSBOTE_AGENCY_LIMITS`` (``on``/``off``, default on), ``AMTSBOTE_LIMIT_WAIT``
    (seconds, default 600).

Automations (``amtsbote automations sync``), all named ``amtsbote-…`` and scoped to flow runs
tagged ``amtsbote`` (every deployment of ``prefect.yaml`` carries that tag):

    ``amtsbote-zombie-runs``      a flow run showed a sign of life (PENDING, Submitting,
                                  RUNNING, a pull step, a heartbeat) and then nothing at all for
                                  ``zombie_after`` → state CRASHED. This is Prefect's documented
                                  "detect zombie flows" automation, widened where the documented
                                  one misses what a killed worker leaves behind: a run killed
                                  before its first heartbeat reached the server (it stays
                                  RUNNING without any heartbeat) or before it started (PENDING or
                                  Submitting); and every ``prefect.flow-run.*`` event counts as a
                                  sign of life, so a run that suspends (waits days for an
                                  approval without a process) is no zombie.
                                  Needs heartbeats: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (seconds,
                                  >= 30; Prefect's default 180; the older name
                                  ``PREFECT_RUNNER_HEARTBEAT_FREQUENCY`` still works) in the
                                  environment of the workers; ``zombie_after`` defaults to three
                                  heartbeats and must also cover the start of a flow-run process.
    ``amtsbote-recover-crashed``  a run CRASHED (marked by the automation above, or by its
                                  worker) → the ``recover/recover`` deployment: reschedules it
                                  (same flow run, same parameters) unless it crashed more than
                                  ``max_crashes`` times. Re-running is safe: every block asks the
                                  journal first and a message keeps its nachrichtenUUID.
    ``amtsbote-missing-reply-<rule>``  per consultation rule of the routing: an
                                  ``amtsbote.consultation.sent`` event not followed by
                                  ``amtsbote.reply.received`` for the same consultation within the
                                  rule's ``reply_within`` → the ``escalate/escalate`` deployment:
                                  if the journal still waits for that reply, the case gets a
                                  ``case.escalated`` event, a markdown artifact and a warning in
                                  the run's log (ids only).

The two operations deployments (``recover/recover``, ``escalate/escalate``) are created by the
same command in the same work pool, from ``AMTSBOTE_HOME`` (the installation's code directory).

Rolling out a new procedure version: see ``docs/operations.md``; :func:`retire_deployment`
removes the triggers of a deployment whose runs should finish on their old code.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from prefect import flow, get_run_logger

from connectors.directory import Directory
from connectors.senders import TransientSendError

from .exceptions import AmtsboteFlowError
from .routing import Routing

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.events.schemas.automations import AutomationCore

__all__ = [
    "AGENCY_LIMIT_PREFIX",
    "AUTOMATION_PREFIX",
    "ESCALATE_DEPLOYMENT",
    "RECOVER_DEPLOYMENT",
    "WORK_POOL",
    "AutomationChange",
    "AutomationSettings",
    "LimitChange",
    "LimitSettings",
    "LimitSpec",
    "OperationsError",
    "agency_slot",
    "describe_changes",
    "desired_automations",
    "desired_limits",
    "ensure_operations_deployments",
    "ensure_work_pool",
    "escalate",
    "limit_names",
    "project_root",
    "recover",
    "retire_deployment",
    "sync_automations",
    "sync_limits",
    "with_family_routings",
]

log = logging.getLogger("amtsbote.operations")

AGENCY_LIMIT_PREFIX = "agency-"
RATE_SUFFIX = "-rate"
#: Prefect's shortest lease on concurrency slots (seconds): the time a dead holder keeps a slot.
LEASE_SECONDS = 60.0
AUTOMATION_PREFIX = "amtsbote-"
WORK_POOL = "amtsbote-process"
RECOVER_DEPLOYMENT = "recover/recover"
ESCALATE_DEPLOYMENT = "escalate/escalate"
#: Tag of the procedure deployments (prefect.yaml) that the automations watch.
WATCHED_TAG = "amtsbote"
#: Tag of the operations deployments (not watched: a crashed recovery is not recovered).
OPERATIONS_TAG = "amtsbote-operations"


class OperationsError(AmtsboteFlowError):
    """An operations command cannot do its work: names what (work pool, deployment, server)
    and why. (Belongs into the tree of :mod:`flows.exceptions`.)"""

    def __init__(self, what: str, message: str) -> None:
        self.what, self.message = what, message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


def project_root() -> Path:
    """The code directory of this installation: ``AMTSBOTE_HOME``, else the checkout this module
    lives in (the directory holding ``prefect.yaml``)."""
    from connectors.settings import AmtsboteSettings

    home = AmtsboteSettings.from_environ(only=("home",)).home
    return home.resolve() if home else Path(__file__).resolve().parents[1]


# =========================================================================== per-agency limits


def limit_names(agency_id: str) -> tuple[str, str]:
    """``(concurrency limit, rate limit)`` names of an agency."""
    return f"{AGENCY_LIMIT_PREFIX}{agency_id}", f"{AGENCY_LIMIT_PREFIX}{agency_id}{RATE_SUFFIX}"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One global concurrency limit as the directory wants it."""

    name: str
    agency: str
    kind: Literal["concurrency", "rate"]
    limit: int
    slot_decay_per_second: float = 0.0

    def describe(self) -> str:
        if self.kind == "rate":
            return f"{self.slot_decay_per_second:g}/s (burst {self.limit})"
        return f"{self.limit} at a time"


def desired_limits(directory: Directory) -> list[LimitSpec]:
    """The two limits of every agency of the directory (see the module docstring)."""
    specs: list[LimitSpec] = []
    for agency in directory:
        conc, rate = limit_names(agency.id)
        specs.append(LimitSpec(conc, agency.id, "concurrency", int(agency.concurrency)))
        specs.append(
            LimitSpec(
                rate,
                agency.id,
                "rate",
                max(1, math.ceil(agency.rate_limit)),
                float(agency.rate_limit),
            )
        )
    return specs


@dataclass(frozen=True, slots=True)
class LimitChange:
    """What ``sync_limits`` did (or, dry, would do) to one limit."""

    action: Literal["create", "update", "unchanged", "delete"]
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:9}  {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _same_decay(a: float | None, b: float | None) -> bool:
    return math.isclose(float(a or 0.0), float(b or 0.0), rel_tol=1e-9, abs_tol=1e-9)


async def _read_all_limits(client: PrefectClient) -> list[Any]:
    out: list[Any] = []
    offset = 0
    while True:
        page = await client.read_global_concurrency_limits(limit=200, offset=offset)
        out.extend(page)
        if len(page) < 200:
            return out
        offset += 200


async def sync_limits(
    directory: Directory,
    *,
    dry_run: bool = False,
    prune: bool = True,
    client: PrefectClient | None = None,
) -> list[LimitChange]:
    """Make the server's ``agency-*`` limits match the directory: create missing ones, update
    changed ones (limit, decay, re-activate), delete those of agencies no longer in the directory
    (``prune``). Idempotent; ``dry_run`` only plans. Occupied slots are left alone."""
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )

    async with _client(client) as c:
        existing = {lim.name: lim for lim in await _read_all_limits(c)}
        changes: list[LimitChange] = []
        wanted = desired_limits(directory)
        for spec in wanted:
            have = existing.get(spec.name)
            if have is None:
                changes.append(LimitChange("create", spec.name, spec.describe()))
                if not dry_run:
                    await c.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(
                            name=spec.name,
                            limit=spec.limit,
                            active=True,
                            slot_decay_per_second=spec.slot_decay_per_second,
                        )
                    )
                continue
            diffs = []
            if have.limit != spec.limit:
                diffs.append(f"limit {have.limit} → {spec.limit}")
            if not _same_decay(have.slot_decay_per_second, spec.slot_decay_per_second):
                diffs.append(
                    f"decay {have.slot_decay_per_second or 0:g} → {spec.slot_decay_per_second:g}/s"
                )
            if not have.active:
                diffs.append("inactive → active")
            if not diffs:
                changes.append(LimitChange("unchanged", spec.name, spec.describe()))
                continue
            changes.append(LimitChange("update", spec.name, ", ".join(diffs)))
            if not dry_run:
                await c.update_global_concurrency_limit(
                    spec.name,
                    GlobalConcurrencyLimitUpdate(
                        limit=spec.limit,
                        active=True,
                        slot_decay_per_second=spec.slot_decay_per_second,
                    ),
                )
        if prune:
            names = {s.name for s in wanted}
            for name in sorted(existing):
                if name.startswith(AGENCY_LIMIT_PREFIX) and name not in names:
                    changes.append(LimitChange("delete", name, "agency not in the directory"))
                    if not dry_run:
                        await c.delete_global_concurrency_limit_by_name(name)
        return changes


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """How :func:`agency_slot` behaves; from ``AMTSBOTE_AGENCY_LIMITS`` and
    ``AMTSBOTE_LIMIT_WAIT`` by :meth:`from_env`."""

    enabled: bool = True
    wait: float = 600.0
    """Seconds to wait for a slot before the send attempt fails (transiently)."""
    missing_recheck: float = 60.0
    """Seconds a limit found missing is not asked for again (per process)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LimitSettings:
        """The limit settings of ``environ`` (default ``os.environ``) — read once per distinct
        value of their two variables (every send asks)."""
        from connectors.settings import env_name

        env = os.environ if environ is None else environ
        key = tuple(env.get(env_name(f)) for f in ("agency_limits", "limit_wait"))
        with _state_lock:
            cached = _limit_settings.get(key)
        if cached is None:
            cached = _read_limit_settings(env)
            with _state_lock:
                _limit_settings[key] = cached
        return cached


def _read_limit_settings(environ: Mapping[str, str]) -> LimitSettings:
    from connectors.settings import AmtsboteSettings

    read = AmtsboteSettings.from_environ(environ, only=("agency_limits", "limit_wait"))
    return LimitSettings(enabled=read.agency_limits, wait=read.limit_wait)


_limit_settings: dict[tuple[str | None, ...], LimitSettings] = {}


_missing_until: dict[str, float] = {}
_warned: set[str] = set()
_state_lock = threading.Lock()


def _known_missing(name: str) -> bool:
    with _state_lock:
        until = _missing_until.get(name)
        return until is not None and until > time.monotonic()


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except Exception:
        return log


async def _limit_unavailable(
    name: str, agency_id: str, exc: BaseException, settings: LimitSettings
) -> None:
    """Decide what a failed acquisition means: a missing limit → proceed (warn once); anything
    else → a transient send error (the send task's retries apply)."""
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, TimeoutError):
        raise TransientSendError(
            f"no slot of the global limit {name} within {settings.wait:g} s "
            f"(the agency is busy or slots are held)",
            recipient=agency_id,
        ) from exc
    try:
        async with _client(None) as c:
            await c.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with _state_lock:
            _missing_until[name] = time.monotonic() + settings.missing_recheck
            first = name not in _warned
            _warned.add(name)
        if first:
            _run_logger().warning(
                "global concurrency limit %s does not exist on the Prefect server: sending to %s "
                "without the limit across workers (the per-process sender limit still applies) "
                "— run `amtsbote limits sync`",
                name,
                agency_id,
            )
        return
    except Exception as probe:
        raise TransientSendError(
            f"global limit {name}: Prefect API unavailable ({type(probe).__name__})",
            recipient=agency_id,
        ) from exc
    raise TransientSendError(
        f"global limit {name} could not be taken: {exc}", recipient=agency_id
    ) from exc


@asynccontextmanager
async def agency_slot(
    agency_id: str, *, settings: LimitSettings | None = None
) -> AsyncIterator[bool]:
    """Hold a slot of ``agency-<id>`` and take a token of ``agency-<id>-rate`` around one request
    to the agency. Yields whether any global limit was taken (False: limits off or missing)."""
    from prefect.concurrency.asyncio import (
        ConcurrencySlotAcquisitionError,
        concurrency,
        rate_limit,
    )

    settings = settings or LimitSettings.from_env()
    if not settings.enabled:
        yield False
        return
    conc_name, rate_name = limit_names(agency_id)
    took = False
    async with AsyncExitStack() as stack:
        if not _known_missing(conc_name):
            try:
                await stack.enter_async_context(
                    concurrency(
                        conc_name,
                        timeout_seconds=settings.wait,
                        lease_duration=LEASE_SECONDS,
                        strict=True,
                        raise_on_lease_renewal_failure=False,
                    )
                )
                took = True
            except (ConcurrencySlotAcquisitionError, TimeoutError) as exc:
                await _limit_unavailable(conc_name, agency_id, exc, settings)
        if not _known_missing(rate_name):
            try:
                await rate_limit(rate_name, timeout_seconds=settings.wait, strict=True)
                took = True
            except (ConcurrencySlotAcquisitionError, TimeoutError) as exc:
                await _limit_unavailable(rate_name, agency_id, exc, settings)
        yield took


@asynccontextmanager
async def _client(client: PrefectClient | None) -> AsyncIterator[PrefectClient]:
    if client is not None:
        yield client
        return
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        yield c


# =========================================================================== work pool, deployments


def engine_command(python: str | None = None) -> str:
    """The command a process worker of this installation starts a flow run with."""
    import shlex

    return f"{shlex.quote(python or sys.executable)} -m prefect.engine"


def process_pool_template(python: str | None = None) -> dict[str, Any]:
    """The process worker's base job template, with :func:`engine_command` as the default
    ``command``.

    Without a command, Prefect 3.8's process worker starts every flow run through a workspace
    supervisor: a second Python process that imports Prefect (~1 s CPU) only to run the pull
    steps and start ``python -m prefect.engine``, which imports Prefect again. With the command
    set, the worker starts the engine directly and the engine runs the deployment's pull steps
    itself: half the process starts per flow run (``bench/cluster.py``)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = engine_command(python)
    return template


async def ensure_work_pool(
    name: str = WORK_POOL,
    *,
    client: PrefectClient | None = None,
    create: bool = True,
    concurrency_limit: int | None = None,
) -> bool:
    """Make sure the process work pool exists (created with :func:`process_pool_template`).
    Returns whether it was created.

    ``concurrency_limit``: flow runs of the pool executing (Pending/Running) at once, across all
    workers; set on creation and updated on an existing pool when it differs. Every executing
    run is a Python process with its own journal connections, so this bounds memory and
    database connections. Runs that wait (suspended for an approval or a reply) do not count.
    The limit is the server's, not the worker's: ``prefect worker start --limit`` crashes the
    worker in Prefect 3.8 when a suspended run is resumed before the worker has released its
    slot ("this borrower is already holding one of this CapacityLimiter's tokens")."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    if concurrency_limit is not None and concurrency_limit < 1:
        raise OperationsError(
            f"work pool {name}", f"concurrency limit must be >= 1, not {concurrency_limit}"
        )
    async with _client(client) as c:
        try:
            pool = await c.read_work_pool(name)
        except ObjectNotFound:
            if not create:
                raise OperationsError(
                    f"work pool {name}",
                    "does not exist; create it with "
                    f"`prefect work-pool create {name} --type process` or run "
                    "`amtsbote serve`",
                ) from None
        else:
            if concurrency_limit is not None and pool.concurrency_limit != concurrency_limit:
                await c.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency_limit))
            return False
        try:
            await c.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=process_pool_template(),
                    concurrency_limit=concurrency_limit,
                )
            )
        except ObjectAlreadyExists:  # created meanwhile by someone else
            return await ensure_work_pool(
                name, client=c, create=False, concurrency_limit=concurrency_limit
            )
        return True


async def ensure_operations_deployments(
    *,
    work_pool: str = WORK_POOL,
    home: Path | None = None,
    dry_run: bool = False,
    client: PrefectClient | None = None,
) -> dict[str, UUID | None]:
    """Create or update the ``recover`` and ``escalate`` deployments (work pool ``work_pool``,
    code in ``home``). Returns ``{"recover/recover": id, "escalate/escalate": id}`` (``None``
    for one that does not exist yet in a dry run)."""
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.callables import parameter_schema

    home = (home or project_root()).resolve()
    if not (home / "flows" / "operations.py").is_file():
        raise OperationsError(
            f"code directory {home}", "has no flows/operations.py (set AMTSBOTE_HOME)"
        )
    out: dict[str, UUID | None] = {}
    async with _client(client) as c:
        if not dry_run:
            await ensure_work_pool(work_pool, client=c, create=False)
        for full_name, fn, description in (
            (
                RECOVER_DEPLOYMENT,
                recover,
                "Reschedule a crashed amtsbote flow run (automation amtsbote-recover-crashed).",
            ),
            (
                ESCALATE_DEPLOYMENT,
                escalate,
                "A consultation got no reply in time: record and show the escalation "
                "(automation amtsbote-missing-reply-*).",
            ),
        ):
            if dry_run:
                try:
                    out[full_name] = (await c.read_deployment_by_name(full_name)).id
                except ObjectNotFound:
                    out[full_name] = None
                continue
            flow_name, dep_name = full_name.split("/")
            flow_id = await c.create_flow_from_name(flow_name)
            out[full_name] = await c.create_deployment(
                flow_id=flow_id,
                name=dep_name,
                entrypoint=f"flows/operations.py:{fn.fn.__name__}",
                work_pool_name=work_pool,
                tags=[OPERATIONS_TAG],
                description=description,
                pull_steps=[
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(home)}}
                ],
                parameter_openapi_schema=parameter_schema(fn.fn).model_dump_for_openapi(),
                enforce_parameter_schema=True,
            )
    return out


async def retire_deployment(
    name: str, *, dry_run: bool = False, client: PrefectClient | None = None
) -> dict[str, Any]:
    """Remove the triggers (deployment-owned automations) of deployment ``flow/name`` so that it
    starts no new runs, keep the deployment for its waiting runs, and report how many are still
    waiting (suspended, paused, scheduled, pending or running)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    async with _client(client) as c:
        try:
            dep = await c.read_deployment_by_name(name)
        except ObjectNotFound:
            raise OperationsError(f"deployment {name}", "does not exist") from None
        resource = f"prefect.deployment.{dep.id}"
        # owned (its triggers) or naming it in an action; the API does not say which is which
        related = await c.read_resource_related_automations(resource)
        waiting = await c.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(
                        any_=[
                            StateType.PAUSED,
                            StateType.SCHEDULED,
                            StateType.PENDING,
                            StateType.RUNNING,
                        ]
                    )
                )
            ),
        )
        removed = 0
        if not dry_run:
            await c.delete_resource_owned_automations(resource)
            removed = len(related) - len(await c.read_resource_related_automations(resource))
        return {
            "deployment": name,
            "id": str(dep.id),
            "version": dep.version,
            "triggers_removed": removed,
            "related_automations": len(related),
            "waiting_runs": len(waiting),
        }


# =========================================================================== automations


def _heartbeat_from_env(environ: Mapping[str, str]) -> int:
    for var in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        value = environ.get(var, "").strip()
        if value:
            try:
                seconds = int(value)
            except ValueError as exc:
                raise ValueError(f"{var}: expected whole seconds, got {value!r}") from exc
            if seconds < 30:
                raise ValueError(f"{var}: Prefect requires at least 30 seconds, got {seconds}")
            return seconds
    return 180


@dataclass(frozen=True, slots=True)
class AutomationSettings:
    """Windows of the automations. :meth:`from_env` reads the heartbeat frequency the workers
    use (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, default 180 s) — keep the env file shared."""

    heartbeat_seconds: int = 180
    zombie_after: timedelta | None = None
    """No sign of life for this long → crashed (default: 3 heartbeats)."""
    max_crashes: int = 3
    """A run that crashed more often is not rescheduled again (listed for an operator)."""
    work_pool: str = WORK_POOL
    reply_within: Mapping[str, timedelta] = field(default_factory=dict)
    """Override of the routing's ``reply_within`` per consultation rule (tests, drills)."""

    def __post_init__(self) -> None:
        if self.heartbeat_seconds < 30:
            raise ValueError("heartbeat_seconds: Prefect requires at least 30")
        if self.zombie_window <= timedelta(seconds=self.heartbeat_seconds):
            raise ValueError(
                f"zombie_after ({self.zombie_window}) must be longer than one "
                f"heartbeat ({self.heartbeat_seconds} s)"
            )
        if self.max_crashes < 0:
            raise ValueError("max_crashes must be >= 0")

    @property
    def zombie_window(self) -> timedelta:
        return self.zombie_after or timedelta(seconds=3 * self.heartbeat_seconds)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> AutomationSettings:
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {"heartbeat_seconds": _heartbeat_from_env(env)}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


#: Events after which a flow run must show a further sign of life within ``zombie_after``: each
#: starts the window anew; a state the run may rest in (Suspended, Paused, Scheduled, Completed,
#: Failed, Crashed, Cancelled) ends it.
SIGNS_OF_LIFE = (
    "prefect.flow-run.Pending",
    "prefect.flow-run.Submitting",
    "prefect.flow-run.Running",
    "prefect.flow-run.Retrying",
    "prefect.flow-run.pull-step.executed",
    "prefect.flow-run.heartbeat",
)


def _tag_related() -> dict[str, str | list[str]]:
    return {"prefect.resource.id": f"prefect.tag.{WATCHED_TAG}", "prefect.resource.role": "tag"}


def with_family_routings(routing: Routing) -> Routing:
    """``routing`` with the consultation rules of every other registered family's routing
    added (each family's default file or environment variable), so that one
    ``amtsbote-missing-reply-<rule>`` automation exists per consultation rule of every family —
    e.g. the Aussonderung's ``anbietung`` and ``aussonderung`` beside Gewerbe's."""
    import dataclasses

    from .families import all_families
    from .routing import Routing

    rules = list(routing.rules)
    names = {r.rule for r in rules}
    for family in all_families():
        if family.name == routing.family:
            continue
        other = Routing.default(family=family.name)
        for r in other.rules:
            if r.consult and r.rule not in names:
                rules.append(r)
                names.add(r.rule)
    return dataclasses.replace(routing, rules=tuple(rules))


def desired_automations(
    routing: Routing, settings: AutomationSettings, *, recover_id: UUID, escalate_id: UUID
) -> list[AutomationCore]:
    """The automations of an installation (see the module docstring), by name."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState, RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    runs = ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"})
    tagged = ResourceSpecification(_tag_related())
    zombie = settings.zombie_window
    out: list[AutomationCore] = [
        AutomationCore(
            name=f"{AUTOMATION_PREFIX}zombie-runs",
            description=(
                f"A flow run tagged {WATCHED_TAG} showed a sign of life and then none "
                f"for {int(zombie.total_seconds())} s: mark it crashed (heartbeats "
                f"every {settings.heartbeat_seconds} s: "
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY)."
            ),
            trigger=EventTrigger(
                match=runs,
                match_related=tagged,
                after=set(SIGNS_OF_LIFE),
                expect={"prefect.flow-run.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=zombie,
            ),
            actions=[
                ChangeFlowRunState(
                    name=None,
                    force=False,
                    state=StateType.CRASHED,
                    message=f"no sign of life for {int(zombie.total_seconds())} s: worker or "
                    f"machine gone (amtsbote-zombie-runs)",
                )
            ],
        ),
        AutomationCore(
            name=f"{AUTOMATION_PREFIX}recover-crashed",
            description=(
                f"A flow run tagged {WATCHED_TAG} crashed: reschedule it (journal-"
                f"idempotent re-run) unless it crashed more than {settings.max_crashes} "
                "times."
            ),
            trigger=EventTrigger(
                match=runs,
                match_related=tagged,
                expect={"prefect.flow-run.Crashed"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                RunDeployment(
                    source="selected",
                    deployment_id=recover_id,
                    job_variables=None,
                    parameters={
                        "flow_run": "{{ event.resource.id }}",
                        "max_crashes": settings.max_crashes,
                    },
                )
            ],
        ),
    ]
    seen: set[str] = set()
    for route in routing.rules:
        if not route.consult or route.rule in seen:
            continue
        seen.add(route.rule)
        within = settings.reply_within.get(route.rule, route.reply_within)
        out.append(
            AutomationCore(
                name=f"{AUTOMATION_PREFIX}missing-reply-{route.rule}",
                description=(
                    f"Consultation rule {route.rule} ({route.recipient}): no reply within "
                    f"{within} of sending → escalate."
                ),
                trigger=EventTrigger(
                    match=ResourceSpecification(
                        {
                            "prefect.resource.id": "amtsbote.consultation.*",
                            "amtsbote.rule": route.rule,
                        }
                    ),
                    after={"amtsbote.consultation.sent"},
                    expect={"amtsbote.reply.received"},
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=within,
                ),
                actions=[
                    RunDeployment(
                        source="selected",
                        deployment_id=escalate_id,
                        job_variables=None,
                        parameters={
                            "consultation": "{{ event.resource['amtsbote.nachrichten-uuid'] }}"
                        },
                    )
                ],
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class AutomationChange:
    action: Literal["create", "update", "unchanged", "delete", "deploy"]
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:9}  {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _comparable(automation: Any) -> dict[str, Any]:
    data = automation.model_dump(
        mode="json", include={"name", "description", "enabled", "trigger", "actions"}
    )
    data["trigger"].pop("id", None)
    for key in ("match", "match_related"):  # one spec or a list of them: compare as a list
        value = data["trigger"].get(key)
        if isinstance(value, dict):
            data["trigger"][key] = [value] if value else []
    for key in ("after", "expect", "for_each"):
        data["trigger"][key] = sorted(data["trigger"].get(key) or [])
    return data


async def sync_automations(
    routing: Routing,
    settings: AutomationSettings,
    *,
    dry_run: bool = False,
    prune: bool = True,
    home: Path | None = None,
    client: PrefectClient | None = None,
) -> list[AutomationChange]:
    """Create or update, by name, the operations deployments and the ``amtsbote-*``
    automations; delete ``amtsbote-*`` automations no longer wanted (``prune``: e.g. a
    consultation rule that was removed). Idempotent; ``dry_run`` only plans."""
    async with _client(client) as c:
        changes: list[AutomationChange] = []
        ids = await ensure_operations_deployments(
            work_pool=settings.work_pool, home=home, dry_run=dry_run, client=c
        )
        for dep_name, dep_id in ids.items():
            changes.append(
                AutomationChange(
                    "deploy",
                    dep_name,
                    "create" if dep_id is None else f"create or update, pool {settings.work_pool}",
                )
            )
        placeholder = UUID(int=0)
        wanted = desired_automations(
            routing,
            settings,
            recover_id=ids[RECOVER_DEPLOYMENT] or placeholder,
            escalate_id=ids[ESCALATE_DEPLOYMENT] or placeholder,
        )
        existing: dict[str, list[Any]] = {}
        for a in await c.read_automations():
            if a.name.startswith(AUTOMATION_PREFIX) and not getattr(a, "owner_resource", None):
                existing.setdefault(a.name, []).append(a)
        for automation in wanted:
            have = existing.pop(automation.name, [])
            if not have:
                changes.append(AutomationChange("create", automation.name))
                if not dry_run:
                    await c.create_automation(automation)
                continue
            first, extra = have[0], have[1:]
            if _comparable(first) == _comparable(automation):
                changes.append(AutomationChange("unchanged", automation.name))
            else:
                changes.append(AutomationChange("update", automation.name))
                if not dry_run:
                    await c.update_automation(first.id, automation)
            for dup in extra:
                changes.append(AutomationChange("delete", dup.name, "duplicate name"))
                if not dry_run:
                    await c.delete_automation(dup.id)
        if prune:
            for name, stale in sorted(existing.items()):
                for a in stale:
                    changes.append(AutomationChange("delete", name, "no longer wanted"))
                    if not dry_run:
                        await c.delete_automation(a.id)
        return changes


# =========================================================================== operations flows


def _uuid_of(value: str) -> str:
    """The UUID at the end of a resource id (``prefect.flow-run.<uuid>``) or the UUID itself."""
    return value.strip().rsplit(".", 1)[-1]


@flow(name="recover", flow_run_name="recover-{flow_run}", persist_result=False, log_prints=False)
async def recover(flow_run: str, max_crashes: int = 3) -> str:
    """Reschedule a crashed flow run of a deployment (same run, same parameters); its blocks ask
    the journal first, so nothing done before the crash is done twice. Gives up (and says so in
    the journal and the log) after ``max_crashes`` crashes. Returns what was done."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    logger = get_run_logger()
    run_id = UUID(_uuid_of(flow_run))
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        if run.state is None or run.state.type is not StateType.CRASHED:
            logger.info(
                "flow run %s is %s, not crashed: nothing to do",
                run_id,
                run.state.name if run.state else "without state",
            )
            return "not-crashed"
        if run.deployment_id is None:
            logger.warning("flow run %s has no deployment: cannot be rescheduled", run_id)
            return "no-deployment"
        crashes = sum(
            1 for s in await client.read_flow_run_states(run_id) if s.type is StateType.CRASHED
        )
        outcome = "rescheduled"
        if crashes > max_crashes:
            outcome = "gave-up"
            logger.error(
                "flow run %s crashed %d times: not rescheduled again; look at its logs "
                "and re-run it by hand",
                run_id,
                crashes,
            )
        else:
            await client.set_flow_run_state(
                run_id,
                Scheduled(
                    name="Recovering", message=f"rescheduled after crash {crashes} by recover"
                ),
                force=True,
            )
            logger.info("flow run %s rescheduled after crash %d", run_id, crashes)
    _journal_note(
        str(run_id),
        "case.recovery",
        {"flow_run": str(run_id), "crashes": crashes, "outcome": outcome},
    )
    return outcome


def _journal_note(flow_run_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Best effort: an event on the case(s) of a flow run (the journal is the record)."""
    try:
        from .runtime import get_runtime

        rt = get_runtime()
        for case in rt.journal.list_cases(flow_run_id=flow_run_id):
            rt.journal.log_event(kind, actor="operations", case_id=case.case_id, detail=detail)
    except Exception as exc:  # the journal may be another installation's; never fail on it
        log.warning(
            "journal note %s for flow run %s failed: %s", kind, flow_run_id, type(exc).__name__
        )


@flow(
    name="escalate", flow_run_name="escalate-{consultation}", persist_result=False, log_prints=False
)
async def escalate(consultation: str) -> dict[str, Any]:
    """A consultation's reply deadline passed. When the journal still waits for the reply,
    record ``case.escalated`` and publish a markdown artifact; otherwise (the reply came, the
    events crossed) record nothing. Returns ``{"case_id", "outcome", …}`` (ids only)."""
    from prefect.artifacts import acreate_markdown_artifact

    from connectors.exceptions import JournalNotFoundError
    from connectors.journal import Direction

    from .runtime import get_runtime

    logger = get_run_logger()
    sent_uuid = _uuid_of(consultation)
    rt = get_runtime()
    try:
        message = rt.journal.get_message(sent_uuid, direction=Direction.OUTBOUND)
    except JournalNotFoundError:
        logger.warning(
            "message %s is not in this installation's journal: nothing to escalate", sent_uuid
        )
        return {"case_id": None, "outcome": "unknown-message", "nachrichten_uuid": sent_uuid}
    case_id = message.case_id
    if not case_id:
        logger.warning("message %s belongs to no case: nothing to escalate", sent_uuid)
        return {"case_id": None, "outcome": "no-case", "nachrichten_uuid": sent_uuid}
    waiting = [
        x
        for x in rt.journal.expectations(case_id=case_id)
        if x.in_reply_to == sent_uuid and x.state.value == "waiting"
    ]
    if not waiting:
        logger.info(
            "case %s: the reply to %s is there (or no longer expected): no escalation",
            case_id,
            sent_uuid,
        )
        return {"case_id": case_id, "outcome": "answered", "nachrichten_uuid": sent_uuid}
    x = waiting[0]
    detail = {
        "nachrichten_uuid": sent_uuid,
        "from_agency": x.from_agency,
        "waiting_since": x.created_at.isoformat(),
        "expires_at": x.expires_at.isoformat() if x.expires_at else None,
    }
    rt.journal.log_event(
        "case.escalated",
        actor="escalate",
        case_id=case_id,
        nachrichten_uuid=sent_uuid,
        detail=detail,
    )
    logger.warning(
        "case %s: no reply from %s to %s since %s — escalated",
        case_id,
        x.from_agency,
        sent_uuid,
        detail["waiting_since"],
    )
    key = "escalation-" + "".join(ch if ch.isalnum() else "-" for ch in case_id.lower())
    await acreate_markdown_artifact(
        key=key,
        description=f"Escalation of case {case_id}",
        markdown=(
            f"# Case {case_id}: reply overdue\n\n| | |\n|---|---|\n"
            f"| message | {sent_uuid} |\n| expected from | {x.from_agency} |\n"
            f"| waiting since | {detail['waiting_since']} |\n"
        ),
    )
    return {"case_id": case_id, "outcome": "escalated", **detail}


def describe_changes(changes: Sequence[LimitChange | AutomationChange]) -> str:
    """One line per change, for the CLI."""
    return "\n".join(str(c) for c in changes)
