"""Events: the append-only audit log (``events``; changes and deletions are refused by
database triggers). Every repository writes its events with :func:`insert_events` in the
transaction of the change they record; :class:`EventRepository` appends free events and reads
them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ...exceptions import JournalValueError
from ..records import EventRecord, _check_text, check_case_id, normalize_uuid
from ..seal import append_events
from .base import T_EVENTS, JournalBase, check_limit, json_object, retry_on_disconnect, utcnow
from .rows import event_record, event_row

__all__ = ["EventRepository", "insert_events"]

_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]*")


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (built by :func:`.rows.event_row`) in the caller's transaction, sealed
    into the hash chain (:func:`connectors.journal.seal.append_events`)."""
    if rows:
        append_events(conn, rows)


class EventRepository(JournalBase):
    """Appending and reading events."""

    def log_event(
        self,
        kind: str,
        *,
        actor: str,
        case_id: str | None = None,
        nachrichten_uuid: str | None = None,
        delivery_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> EventRecord:
        """Append an event (``kind`` like ``inbox.rejected``: lower-case, dots). ``detail`` must
        be JSON-serialisable and hold no personal data. There is no way to change or delete an
        event."""
        kind = _check_text(kind, "kind", 64)
        if not _KIND_RE.fullmatch(kind):
            raise JournalValueError("kind", f"{kind!r}: use lower-case letters, digits, . _ -")
        row = event_row(
            kind,
            self._actor(actor),
            utcnow(),
            case_id=check_case_id(case_id) if case_id is not None else None,
            nachrichten_uuid=normalize_uuid(nachrichten_uuid) if nachrichten_uuid else None,
            delivery_id=int(delivery_id) if delivery_id is not None else None,
            detail=json_object(detail, "detail"),
        )
        with self._tx("log_event") as conn:
            [event_id] = append_events(conn, [row], ids=True)
        return event_record({**row, "id": event_id})

    @retry_on_disconnect
    def events(
        self,
        *,
        case_id: str | None = None,
        nachrichten_uuid: str | None = None,
        delivery_id: int | None = None,
        kind: str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events in order, filtered; ``after_id`` pages/tails (events with a greater id)."""
        stmt = select(T_EVENTS).order_by(T_EVENTS.c.id)
        if case_id is not None:
            stmt = stmt.where(T_EVENTS.c.case_id == case_id)
        if nachrichten_uuid is not None:
            stmt = stmt.where(T_EVENTS.c.nachrichten_uuid == normalize_uuid(nachrichten_uuid))
        if delivery_id is not None:
            stmt = stmt.where(T_EVENTS.c.delivery_id == int(delivery_id))
        if kind is not None:
            stmt = stmt.where(T_EVENTS.c.kind == kind)
        if after_id is not None:
            stmt = stmt.where(T_EVENTS.c.id > int(after_id))
        stmt = stmt.limit(check_limit(limit))
        with self._tx("events", write=False) as conn:
            return [event_record(r) for r in conn.execute(stmt).mappings()]
