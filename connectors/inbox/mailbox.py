"""The pull mailboxes an inbox keeps for partners: list, fetch and acknowledge (without HTTP).

A message for an agency served by the inbox (its own, or one whose mailbox it hosts) waits as an
inbound delivery in state ``delivered``; the agency lists it, fetches the XML and acknowledges
the fetch, which moves the delivery to ``fetched``. An agency sees only its own mailbox: a
message of another agency's answers the same 404 as an unknown one. Answers are dicts of the
fields of :class:`~connectors.inbox.schemas.MailboxModel` /
:class:`~connectors.inbox.schemas.AckModel`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from ..directory import Agency
from ..exceptions import InvalidTransitionError, JournalError, JournalNotFoundError
from ..journal import DeliveryRecord, Direction, Journal
from .config import InboxConfig
from .errors import journal_unavailable
from .exceptions import ApiError

__all__ = ["Mailboxes", "iso"]

log = logging.getLogger("connectors.inbox")


def iso(value: datetime | None) -> str:
    """ISO 8601 text of a journal timestamp (``""`` for none)."""
    return value.isoformat() if value is not None else ""


class Mailboxes:
    """The mailboxes of the agencies in ``served``, kept in ``journal`` by the inbox of
    ``agency_id``. Thread-safe (no per-request state)."""

    def __init__(
        self,
        agency_id: str,
        *,
        journal: Journal,
        served: Collection[str],
        config: InboxConfig,
    ) -> None:
        self.agency_id = agency_id
        self.journal = journal
        self.served = frozenset(served)
        self.config = config

    def _unavailable(self, operation: str, exc: JournalError) -> ApiError:
        return journal_unavailable(
            self.agency_id, operation, exc, retry_after=self.config.retry_after
        )

    def _owner(self, caller: Agency) -> None:
        if caller.id not in self.served:
            raise ApiError(
                403,
                "no_mailbox_here",
                f"agency {caller.id} has no mailbox on the inbox of {self.agency_id}",
            )

    def _delivery(self, caller: Agency, nachrichten_uuid: str) -> DeliveryRecord:
        """The inbound delivery of ``nachrichten_uuid`` to ``caller``; the same 404 when there is
        none and when the message is another mailbox's (nothing tells that the UUID is in use)."""
        try:
            deliveries = self.journal.deliveries(
                nachrichten_uuid=nachrichten_uuid, direction=Direction.INBOUND
            )
        except JournalError as exc:
            raise self._unavailable("deliveries", exc) from exc
        for delivery in deliveries:
            if delivery.recipient == caller.id:
                return delivery
        raise ApiError(
            404, "not_found", f"no message {nachrichten_uuid} in the mailbox of {caller.id}"
        )

    def list_messages(self, caller: Agency, limit: int | None = None) -> dict[str, Any]:
        """The messages waiting for ``caller``, oldest first (at most ``limit``, default the
        configured page size)."""
        self._owner(caller)
        try:
            records = self.journal.mailbox(caller.id, limit=limit or self.config.mailbox_page_size)
        except JournalError as exc:
            raise self._unavailable("mailbox", exc) from exc
        return {
            "agency": caller.id,
            "count": len(records),
            "messages": [
                {
                    "nachrichtenUUID": r.nachrichten_uuid,
                    "standard": r.standard,
                    "version": r.version,
                    "message_type": r.message_type,
                    "author": r.author,
                    "sender": r.sender_agency,
                    "received_at": iso(r.recorded_at),
                    "size": r.size,
                    "sha512": r.payload_sha512,
                }
                for r in records
            ],
        }

    def fetch(self, caller: Agency, nachrichten_uuid: str) -> tuple[bytes, DeliveryRecord]:
        """The XML of a message in ``caller``'s mailbox and its delivery (state unchanged)."""
        delivery = self._delivery(caller, nachrichten_uuid)
        try:
            payload = self.journal.payload(nachrichten_uuid, direction=Direction.INBOUND)
        except JournalError as exc:
            raise self._unavailable("payload", exc) from exc
        log.debug("inbox %s: %s fetched %s", self.agency_id, caller.id, nachrichten_uuid)
        return payload, delivery

    def ack(self, caller: Agency, nachrichten_uuid: str) -> dict[str, Any]:
        """Confirm the fetch: the delivery becomes ``fetched`` (again: no-op)."""
        self._delivery(caller, nachrichten_uuid)
        try:
            delivery = self.journal.mark_fetched(nachrichten_uuid, caller.id, actor=caller.id)
        except InvalidTransitionError as exc:
            raise ApiError(
                409,
                "invalid_state",
                f"message {nachrichten_uuid} cannot be acknowledged: {exc}",
            ) from exc
        except JournalNotFoundError as exc:  # pragma: no cover - checked just before
            raise ApiError(404, "not_found", str(exc)) from exc
        except JournalError as exc:
            raise self._unavailable("mark_fetched", exc) from exc
        return {
            "nachrichtenUUID": delivery.nachrichten_uuid,
            "recipient": delivery.recipient,
            "state": delivery.state.value,
            "fetched_at": iso(delivery.updated_at),
        }
