"""Learn whether mailbox agencies have fetched what was deposited for them.

A deposit is acknowledged by the mailbox host with a receipt (``delivered``); the agency fetches
later. The sender asks the host's transport report (``GET /v1/messages/{uuid}/status``) and moves
its own delivery to ``fetched``. When the host is this installation and keeps the inbound copy in
the same journal, the journal is read directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from connectors.exceptions import JournalNotFoundError
from connectors.journal import DeliveryRecord, DeliveryState, Direction

from .runtime import Runtime

__all__ = ["refresh_mailbox_states"]


def _fetched_locally(rt: Runtime, d: DeliveryRecord) -> bool | None:
    try:
        copies = rt.journal.deliveries(
            nachrichten_uuid=d.nachrichten_uuid, direction=Direction.INBOUND, recipient=d.recipient
        )
    except JournalNotFoundError:
        return None
    if not copies:
        return None
    return any(c.state is DeliveryState.FETCHED for c in copies)


def _fetched_in_report(report: Any, recipient: str) -> bool:
    changes = (
        report.get("changes", report.get("history", [])) if isinstance(report, dict) else report
    )
    for change in changes or []:
        if not isinstance(change, dict):
            continue
        state = change.get("to_state") or change.get("state")
        if state == "fetched" and change.get("recipient", recipient) == recipient:
            return True
    return isinstance(report, dict) and report.get("state") == "fetched"


async def refresh_mailbox_states(rt: Runtime, deliveries: Iterable[DeliveryRecord]) -> None:
    pending = [
        d
        for d in deliveries
        if d.state is DeliveryState.DELIVERED
        and rt.directory.get(d.recipient).channel.value == "mailbox"
    ]
    if not pending:
        return
    remote: list[DeliveryRecord] = []
    for d in pending:
        local = _fetched_locally(rt, d)
        if local is None:
            remote.append(d)
        elif local:
            rt.journal.transition(d.id, DeliveryState.FETCHED, actor="mailbox-status")
    if not remote:
        return
    token = rt.directory.token_for(rt.home.id)
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        for d in remote:
            endpoint = rt.directory.delivery_endpoint(d.recipient)
            url = f"{str(endpoint).rstrip('/')}/v1/messages/{d.nachrichten_uuid}/status"
            try:
                resp = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError:
                continue  # the host is unreachable now; asked again on the next round
            if resp.status_code == 200 and _fetched_in_report(resp.json(), d.recipient):
                rt.journal.transition(d.id, DeliveryState.FETCHED, actor="mailbox-status")
