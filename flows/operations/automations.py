"""The ``amtsbote-*`` automations (``amtsbote automations sync``, :mod:`flows.operations`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from ..routing import Routing

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.events.schemas.automations import AutomationCore

from .common import (
    AUTOMATION_PREFIX,
    ESCALATE_DEPLOYMENT,
    RECOVER_DEPLOYMENT,
    WATCHED_TAG,
    WORK_POOL,
    _client,
)
from .pools import ensure_operations_deployments

__all__ = [
    "AutomationChange",
    "AutomationSettings",
    "desired_automations",
    "sync_automations",
    "with_family_routings",
]


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

    from ..families import all_families
    from ..routing import Routing

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
