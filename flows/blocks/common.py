"""What flows between the blocks (ids and non-personal facts only) and their shared helpers."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect.context import FlowRunContext
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from connectors.journal import DeliveryState

from ..runtime import get_runtime

if TYPE_CHECKING:
    from ..families.base import Facts, Family
    from ..routing import Route

__all__ = [
    "ACKNOWLEDGED",
    "FLOW_OPTIONS",
    "ApprovalInput",
    "CaseRef",
    "Decision",
    "DeliveryOutcome",
    "Plan",
    "ReplyInput",
    "wait_for_input",
]

ACKNOWLEDGED = frozenset({DeliveryState.DELIVERED, DeliveryState.FETCHED})


@dataclass(frozen=True, slots=True)
class CaseRef:
    """What flows between blocks: ids and non-personal facts only."""

    case_id: str
    procedure: str
    message_uuid: str
    """Journal key of the message that opened the case."""
    facts: Facts
    ref: dict[str, Any] = field(default_factory=dict)
    """Non-personal reference data the family keeps for the case (e.g. an xdomea ProzessID)."""

    @property
    def family(self) -> Family:
        from ..families import family_for_procedure

        return family_for_procedure(self.procedure)


@dataclass(frozen=True, slots=True)
class Plan:
    needs_approval: bool
    consultations: tuple[Route, ...]
    distribution: tuple[Route, ...]

    @property
    def agencies(self) -> list[str]:
        return sorted({r.recipient for r in (*self.consultations, *self.distribution)})


@dataclass(frozen=True, slots=True)
class Decision:
    decision: Literal["approve", "reject"]
    reason: str = "ok"
    via: str = "journal"

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


class ApprovalInput(RunInput):
    """The form a clerk fills in the Prefect UI (no free text: run inputs are stored in Prefect,
    personal data must not be; a comment goes to the journal via ``amtsbote approve --comment``)."""

    decision: Literal["approve", "reject"] = Field(description="approve or reject the case")
    reason: Literal["ok", "permit-missing", "incomplete", "not-permitted", "other"] = Field(
        default="ok", description="reason code"
    )
    via: str = Field(default="prefect-ui", description="where the decision was taken")


class ReplyInput(RunInput):
    """Handed in by the correlation layer when a reply for this run arrives."""

    nachrichten_uuid: str = Field(
        description="journal key (nachrichtenUUID) of the reply (payload in the journal)"
    )


@dataclass(slots=True)
class DeliveryOutcome:
    delivery_id: int
    recipient: str
    nachrichten_uuid: str
    state: str
    attempts: int
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


async def rename_run(name: str, tags: list[str] | None = None) -> None:
    """Name the flow run after its case and tag it (the journal is the record; this is for
    operators in the UI). Uses the run's own API client."""
    ctx = FlowRunContext.get()
    if not ctx or not ctx.flow_run or ctx.client is None:
        return
    merged = sorted(set(ctx.flow_run.tags or []) | set(tags or []))
    await ctx.client.update_flow_run(ctx.flow_run.id, name=name, tags=merged)  # type: ignore[misc]
    ctx.flow_run.tags = merged


async def run_is_active(run_id: str) -> bool:
    """Whether another flow run still works on a case (then a second run for the same
    message must not): scheduled, pending, running, paused or suspended."""
    from prefect.client.orchestration import get_client

    ctx = FlowRunContext.get()
    try:
        if ctx is not None and ctx.client is not None:
            run = await ctx.client.read_flow_run(uuid.UUID(run_id))  # type: ignore[misc]
        else:
            async with get_client() as client:
                run = await client.read_flow_run(uuid.UUID(run_id))
    except Exception:
        return False
    return run.state is not None and not run.state.is_final()


async def wait_for_input(model: type[RunInput], *, key: str, timeout: timedelta) -> Any:
    """Wait for a run input: suspend (the worker is freed; a resume re-runs the flow, whose blocks
    are journal-idempotent) for runs of a deployment, pause in-process otherwise."""
    rt = get_runtime()
    ctx = FlowRunContext.get()
    seconds = max(1, int(timeout.total_seconds()))
    if rt.settings.suspend and ctx and ctx.flow_run and ctx.flow_run.deployment_id:
        return await asuspend_flow_run(wait_for_input=model, key=key, timeout=seconds)
    return await apause_flow_run(
        wait_for_input=model,
        key=key,
        timeout=seconds,
        poll_interval=max(1, int(rt.settings.poll_interval)),
    )


# Results are never persisted (payloads and facts stay in the journal). An explicit result
# storage spares every run the server lookup of a default storage; with persist_result=False
# nothing is ever written there.
_NO_RESULTS = Path(tempfile.gettempdir()) / "amtsbote-no-results"
FLOW_OPTIONS: dict[str, Any] = {
    "persist_result": False,
    "result_storage": _NO_RESULTS,
    "log_prints": False,
    "validate_parameters": True,
}
"""Options every procedure flow takes: ``@flow(name=..., **FLOW_OPTIONS)``."""
