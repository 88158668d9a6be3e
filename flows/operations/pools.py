"""The process work pool and the operations deployments; retiring a deployment
(:mod:`flows.operations`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

from .common import (
    ESCALATE_DEPLOYMENT,
    OPERATIONS_TAG,
    RECOVER_DEPLOYMENT,
    WORK_POOL,
    OperationsError,
    _client,
    project_root,
)
from .recovery import escalate, recover

__all__ = [
    "engine_command",
    "ensure_operations_deployments",
    "ensure_work_pool",
    "process_pool_template",
    "retire_deployment",
]


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
    if not (home / "flows" / "operations" / "recovery.py").is_file():
        raise OperationsError(
            f"code directory {home}", "has no flows/operations/recovery.py (set AMTSBOTE_HOME)"
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
                entrypoint=f"flows/operations/recovery.py:{fn.fn.__name__}",
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
