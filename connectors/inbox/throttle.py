"""Failed logins per client address: counted, recorded and throttled (issue 12, point 3).

An address that is refused (401/403 while identifying the caller) :attr:`AuthThrottle.limit`
times within :attr:`AuthThrottle.window` seconds is answered 429 ``too_many_failures`` with
``Retry-After`` until the window has passed — without comparing its tokens any more, so 4,000
guesses cost the inbox 4,000 cheap answers, not 4,000 rounds of constant-time comparisons and
journal events. Memory is bounded: at most :attr:`AuthThrottle.max_addresses` addresses are
remembered (the oldest forgotten first).

:meth:`AuthThrottle.refused` says what to record: every refusal up to the limit is an
``inbox.auth_refused`` journal event, the one that reaches it an ``inbox.auth_throttled`` event;
after that nothing more is written for the address until its window ends.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AuthThrottle"]


@dataclass
class _Window:
    started: float
    failures: int = 0


@dataclass
class AuthThrottle:
    limit: int = 10
    window: float = 60.0
    max_addresses: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _seen: OrderedDict[str, _Window] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _current(self, address: str, now: float) -> _Window | None:
        w = self._seen.get(address)
        if w is not None and now - w.started >= self.window:
            del self._seen[address]
            return None
        return w

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is not throttled."""
        now = self.clock()
        with self._lock:
            w = self._current(address, now)
            if w is None or w.failures < self.limit:
                return None
            return max(1, math.ceil(self.window - (now - w.started)))

    def refused(self, address: str) -> str | None:
        """Count one refusal of ``address``; returns the journal event to record
        (``inbox.auth_refused`` / ``inbox.auth_throttled``) or None (already throttled)."""
        now = self.clock()
        with self._lock:
            w = self._current(address, now)
            if w is None:
                w = self._seen[address] = _Window(started=now)
                while len(self._seen) > self.max_addresses:
                    self._seen.popitem(last=False)
            w.failures += 1
            if w.failures < self.limit:
                return "inbox.auth_refused"
            return "inbox.auth_throttled" if w.failures == self.limit else None
