"""In-memory state of the XTA ports: MessageIDs reserved by createMessageId and the status-list
cursors of getStatusList/getNextStatusList (``MsgBoxRequestID``). Both are bounded and lost on a
restart: a reservation is only a guard, a lost cursor answers ``RequestIdInvalid``."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict

__all__ = ["ListCursors", "Reservations"]


class Reservations:
    """MessageIDs handed out by createMessageId: UUID → agency id, bounded, kept for a day."""

    def __init__(self, *, size: int = 100_000, ttl: float = 86_400.0) -> None:
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._size, self._ttl = size, ttl
        self._lock = threading.Lock()

    def reserve(self, agency_id: str) -> str:
        value = str(uuid.uuid4())
        with self._lock:
            self._items[value] = (agency_id, time.monotonic() + self._ttl)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def holder(self, value: str) -> str | None:
        with self._lock:
            item = self._items.get(value)
            if item is None or item[1] < time.monotonic():
                self._items.pop(value, None)
                return None
            return item[0]

    def release(self, value: str) -> None:
        with self._lock:
            self._items.pop(value, None)


class ListCursors:
    """MsgBoxRequestID → (agency, the remaining nachrichtenUUIDs, list form), bounded."""

    def __init__(self, *, size: int = 1000) -> None:
        self._items: OrderedDict[str, tuple[str, list[str], str]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def open(self, agency_id: str, remaining: list[str], form: str) -> str:
        request_id = f"urn:uuid:{uuid.uuid4()}"
        with self._lock:
            self._items[request_id] = (agency_id, remaining, form)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return request_id

    def take(self, request_id: str, agency_id: str, n: int) -> tuple[list[str], int, str] | None:
        with self._lock:
            item = self._items.get(request_id)
            if item is None or item[0] != agency_id:
                return None
            page, rest = item[1][:n], item[1][n:]
            self._items[request_id] = (agency_id, rest, item[2])
            return page, len(rest), item[2]

    def close(self, request_id: str) -> None:
        with self._lock:
            self._items.pop(request_id, None)
