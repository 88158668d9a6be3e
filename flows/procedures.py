"""The procedures of every registered family by name, and the standard-neutral ``redeliver``.

A family's flows live in its package (``flows/families/<family>/procedures.py``); this module
finds them through the registry (:func:`procedure_flow`) and keeps the flows that belong to no
family: ``redeliver`` re-drives dead letters of any case.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from prefect import flow

from connectors.journal import DeliveryState, Direction
from flows.blocks import FLOW_OPTIONS, finish_case, publish_case_artifacts, send_all
from flows.exceptions import DeadLetters
from flows.families import all_families, family_for_procedure
from flows.runtime import get_runtime

__all__ = ["all_procedures", "procedure_flow", "redeliver"]


def procedure_flow(name: str) -> Any:
    """The flow object of procedure ``name`` (imported from its family's entrypoint)."""
    entry = family_for_procedure(name).procedure(name)
    assert entry is not None
    module, _, attr = entry.entrypoint.partition(":")
    return getattr(importlib.import_module(module), attr)


def all_procedures() -> Mapping[str, Any]:
    """Procedure name → flow, over every registered family."""
    return {p.name: procedure_flow(p.name) for f in all_families() for p in f.procedures}


def __getattr__(name: str) -> Any:
    # ``from flows.procedures import gewerbeanmeldung`` / ``PROCEDURES`` keep working
    if name == "PROCEDURES":
        return dict(all_procedures())
    try:
        return procedure_flow(name)
    except LookupError:
        raise AttributeError(name) from None


@flow(name="redeliver", flow_run_name="redeliver-{case_id}", **FLOW_OPTIONS)
async def redeliver(case_id: str | None = None, all_dead: bool = False) -> list[dict[str, Any]]:
    """Re-drive dead letters (same nachrichtenUUID; the receiver deduplicates) of one case or of
    all cases, then close every case whose deliveries are now all acknowledged."""
    if not case_id and not all_dead:
        raise ValueError("give a case_id or all_dead=True")
    rt = get_runtime()
    dead = rt.journal.deliveries(
        case_id=case_id, state=DeliveryState.DEAD, direction=Direction.OUTBOUND
    )
    requeued = [rt.journal.transition(d.id, DeliveryState.CREATED, actor="redeliver") for d in dead]
    await send_all(requeued)
    summaries = []
    for cid in sorted({d.case_id for d in dead if d.case_id}):
        summary = finish_case(rt, cid, actor="redeliver")
        await publish_case_artifacts(rt, cid)
        summaries.append(summary)
    if any(s["status"] == "failed" for s in summaries):
        raise DeadLetters(summaries, step="redeliver")  # letters left dead: the run fails
    return summaries
