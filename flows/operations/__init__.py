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

from .automations import (
    AutomationChange,
    AutomationSettings,
    desired_automations,
    sync_automations,
    with_family_routings,
)
from .common import (
    AGENCY_LIMIT_PREFIX,
    AUTOMATION_PREFIX,
    ESCALATE_DEPLOYMENT,
    RECOVER_DEPLOYMENT,
    WORK_POOL,
    OperationsError,
    describe_changes,
    project_root,
)
from .limits import (
    LimitChange,
    LimitSettings,
    LimitSpec,
    agency_slot,
    desired_limits,
    limit_names,
    sync_limits,
)
from .pools import (
    engine_command,
    ensure_operations_deployments,
    ensure_work_pool,
    process_pool_template,
    retire_deployment,
)
from .recovery import escalate, recover

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
    "engine_command",
    "ensure_operations_deployments",
    "ensure_work_pool",
    "escalate",
    "limit_names",
    "process_pool_template",
    "project_root",
    "recover",
    "retire_deployment",
    "sync_automations",
    "sync_limits",
    "with_family_routings",
]
