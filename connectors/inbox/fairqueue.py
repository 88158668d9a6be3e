"""The accept path's fair queue: bounded per sender and in total, workers handed out round-robin
across senders (issue 12, point 1).

A request is first **admitted** (:meth:`FairQueue.admit`, right after authentication, before
its body is read), then **waits for a worker** (:meth:`Ticket.worker`) for the parsing,
validation and journaling in a thread:

* admitted requests of one sender — reading, waiting or working — are at most
  :attr:`FairQueue.per_sender`; one more is refused 429 ``sender_queue_full``;
* admitted requests of all senders are at most :attr:`FairQueue.total`; one more is refused
  503 ``queue_full``. Both with ``Retry-After`` and ``Connection: close`` (the body is not
  read). Bodies held in memory are thus bounded by ``total × max_body_bytes``, and one flooding
  sender fills its own queue, never the total, as long as ``per_sender < total``;
* a free worker goes to the next sender in a **rotation** of the senders that have requests
  waiting (oldest request of that sender first), and that sender moves to the end of the
  rotation: strict round-robin between senders, FIFO within one;
* one sender runs at most :attr:`FairQueue.sender_workers` requests at once, by default all
  but one of the workers (``max(1, workers - 1)``). Round-robin alone does not help a sender
  that arrives while a flooder holds *every* worker with expensive messages (an element bomb
  just under the parser's budget takes ~0.5 s): it waits for one of them to finish. The held-back
  worker makes it start at once; the price is that a single sender alone uses one worker less
  (measured in ``bench/attack.py`` and ``bench/inbox.py``).

Everything runs on the event loop (no locks); a request cancelled while waiting leaves the
queue, one cancelled after it was given a worker hands the worker on.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from .exceptions import ApiError, InboxConfigError

__all__ = ["FairQueue", "Ticket"]

T = TypeVar("T")


@dataclass(eq=False)
class _Waiter:
    sender: str
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class Ticket:
    """One admitted request of ``sender``; release it with :meth:`release` (or use it as a
    context manager). :meth:`worker` waits for a worker and holds it for the block;
    :meth:`run_sync` runs a function in a thread with it."""

    def __init__(self, queue: FairQueue, sender: str) -> None:
        self._queue = queue
        self.sender = sender
        self._released = False

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[None]:
        await self._queue._acquire(self.sender)
        try:
            yield
        finally:
            self._queue._release_worker(self.sender)

    async def run_sync(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker thread, once this request got a worker."""
        async with self.worker():
            return await anyio.to_thread.run_sync(func, *args)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._queue._leave(self.sender)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FairQueue:
    """``workers`` shared fairly by senders; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        workers: int,
        per_sender: int,
        total: int,
        sender_workers: int | None = None,
        retry_after: int = 1,
    ) -> None:
        if workers < 1:
            raise InboxConfigError("workers", f"must be >= 1, not {workers}")
        if not 1 <= per_sender <= total:
            raise InboxConfigError(
                "queue_per_sender", f"must be between 1 and queue_total ({total}), not {per_sender}"
            )
        cap = max(1, workers - 1) if sender_workers is None else sender_workers
        if not 1 <= cap <= workers:
            raise InboxConfigError(
                "sender_workers", f"must be between 1 and workers ({workers}), not {cap}"
            )
        self.workers = workers
        self.per_sender = per_sender
        self.total = total
        self.sender_workers = cap
        self.retry_after = retry_after
        self._admitted: collections.Counter[str] = collections.Counter()
        self._running: collections.Counter[str] = collections.Counter()
        self._busy = 0
        #: senders with waiting requests, in rotation order → their waiters, oldest first
        self._waiting: dict[str, collections.deque[_Waiter]] = {}

    @property
    def admitted(self) -> int:
        """Requests admitted now (reading, waiting or working)."""
        return self._admitted.total()

    @property
    def busy(self) -> int:
        """Workers in use now."""
        return self._busy

    def admit(self, sender: str) -> Ticket:
        """Admit one request of ``sender``, or raise :class:`ApiError` 429/503 (module
        docstring)."""
        headers = {"Retry-After": str(self.retry_after), "Connection": "close"}
        if self._admitted[sender] >= self.per_sender:
            raise ApiError(
                429,
                "sender_queue_full",
                f"{sender} has {self.per_sender} messages in progress already; retry after "
                f"{self.retry_after} s",
                headers=headers,
                limit=self.per_sender,
            )
        if self._admitted.total() >= self.total:
            raise ApiError(
                503,
                "queue_full",
                f"the inbox has {self.total} messages in progress; retry after "
                f"{self.retry_after} s",
                headers=headers,
                limit=self.total,
            )
        self._admitted[sender] += 1
        return Ticket(self, sender)

    def _leave(self, sender: str) -> None:
        self._admitted[sender] -= 1
        if self._admitted[sender] <= 0:
            del self._admitted[sender]

    async def _acquire(self, sender: str) -> None:
        waiter = _Waiter(sender)
        self._waiting.setdefault(sender, collections.deque()).append(waiter)
        self._dispatch()
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:  # given a worker, cancelled before it could start: hand it on
                self._release_worker(sender)
            else:
                queue = self._waiting.get(sender)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._waiting[sender]
            raise

    def _release_worker(self, sender: str) -> None:
        self._busy -= 1
        self._running[sender] -= 1
        if self._running[sender] <= 0:
            del self._running[sender]
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free workers to waiting requests, round-robin over the senders."""
        while self._busy < self.workers:
            chosen = next(
                (s for s in self._waiting if self._running[s] < self.sender_workers), None
            )
            if chosen is None:
                return
            queue = self._waiting.pop(chosen)  # to the end of the rotation, if more wait
            waiter = queue.popleft()
            if queue:
                self._waiting[chosen] = queue
            waiter.granted = True
            self._busy += 1
            self._running[chosen] += 1
            waiter.event.set()
