"""What the inbox refuses beyond the checks of one message (:mod:`.checks`), with the journal's
help: a reply to nothing this agency sent (422 ``unknown_reference``), and callers whose logins
keep failing (logged, recorded, 429 ``too_many_failures`` — counted by :mod:`.throttle`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..directory import Agency
from ..exceptions import JournalError, JournalValueError
from ..journal import Direction, Journal
from .checks import Checked, shown
from .exceptions import ApiError
from .throttle import AuthThrottle

__all__ = ["check_reference", "client_address", "record_refusal", "throttled"]

log = logging.getLogger("connectors.inbox")


def check_reference(journal: Journal, agency_id: str, checked: Checked, sender: Agency) -> None:
    """A reply (a ``bezug``, :attr:`MessageInfo.in_reply_to`) to ``agency_id`` must answer a
    message it sent to the replying agency; otherwise 422 ``unknown_reference`` and nothing is
    stored, so the sender learns that its answer went nowhere. Unknown and another agency's
    UUIDs get the same answer (nothing revealed). Replies for the mailboxes the inbox hosts are
    not checked: their requests were sent by those agencies. Nor are xdomea's process replies
    (their reference is derived from the ProzessID, not written by the sender; the Aussonderung
    procedure checks the process itself). A journal failure is raised as it is."""
    ref = checked.info.in_reply_to
    if ref is None or checked.info.process_id is not None or checked.recipient.id != agency_id:
        return
    try:
        sent = journal.deliveries(nachrichten_uuid=ref, direction=Direction.OUTBOUND)
    except JournalValueError:  # not even a UUID
        sent = []
    if any(d.recipient == sender.id for d in sent):
        return
    log.warning(
        "inbox %s: reply %s from %s refused: bezug %s names no message sent to it",
        agency_id,
        checked.meta.nachrichten_uuid,
        sender.id,
        shown(ref),
    )
    raise ApiError(
        422,
        "unknown_reference",
        f"the reply's bezug {shown(ref)} names no message {agency_id} sent to {sender.id}; it "
        "was not stored. Answer with the nachrichtenUUID of the request you received",
        bezug=ref,
    )


def client_address(source: Mapping[str, Any] | str | None) -> str | None:
    """The client's IP address from an ASGI scope (None for a fingerprint or nothing)."""
    if isinstance(source, Mapping):
        client = source.get("client")
        if client:
            return str(client[0])
    return None


def throttled(throttle: AuthThrottle, address: str) -> ApiError | None:
    """429 ``too_many_failures`` for an address refused too often lately, else None."""
    wait = throttle.retry_after(address)
    if wait is None:
        return None
    return ApiError(
        429,
        "too_many_failures",
        f"too many refused logins from {address}; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def record_refusal(
    journal: Journal, throttle: AuthThrottle, actor: str, address: str | None, exc: ApiError
) -> None:
    """A refused login (401/403): logged (address, code, the agency a token or certificate
    claimed — never the token), counted, and recorded as ``inbox.auth_refused`` (or, the one
    that reaches the limit, ``inbox.auth_throttled``); nothing more is written for an address
    already throttled. A journal failure is logged, the refusal stands."""
    where = address or "unknown address"
    claimed = "".join(f" {k}={v}" for k, v in sorted(exc.extra.items()) if k.endswith("agency"))
    log.warning("%s: %d %s from %s%s", actor, exc.status, exc.code, where, claimed)
    kind = throttle.refused(where)
    if kind is None:
        return
    detail: dict[str, Any] = {"address": where, "status": exc.status, "code": exc.code}
    if kind == "inbox.auth_throttled":
        detail |= {"limit": throttle.limit, "window_seconds": throttle.window}
    try:
        journal.log_event(kind, actor=actor, detail=detail)
    except JournalError as journal_exc:
        log.error("%s: could not record %s: %s", actor, kind, journal_exc)
