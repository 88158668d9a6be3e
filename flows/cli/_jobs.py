"""Checking many files on several cores, results in the order given (``validate --jobs``).

:func:`in_order` applies a check to every name and yields the results in the order of the names.
With ``jobs`` > 1 and enough names it forks ``jobs`` worker processes that inherit the check
(its registry is loaded once, in the parent, before the fork) and hands them chunks of
:data:`CHUNK` names; only the results travel back (pickled). Below :data:`MIN_PARALLEL` names,
with ``jobs`` 1, or where ``fork`` is not available, the check runs here, one name after another.

Ctrl-C: the workers ignore SIGINT (forked with it blocked, so that none slips in before they
ignore it); the parent's KeyboardInterrupt cancels the chunks not yet
started and waits for the running ones (at most one chunk each, well under a second) before it
propagates — no worker tracebacks, no orphans.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["CHUNK", "MIN_PARALLEL", "default_jobs", "in_order"]

T = TypeVar("T")

CHUNK = 100
"""Names per task handed to a worker: large enough that pickling and scheduling stay small
against the work, small enough that Ctrl-C and the last chunk do not wait long."""
MIN_PARALLEL = 4 * CHUNK
"""Fewer names are checked in this process: forking would cost more than it saves."""
MAX_JOBS = 8

_inherited: dict[str, Callable[[str], Any]] = {}


def default_jobs() -> int:
    """The cores this process may use (at most :data:`MAX_JOBS`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, cores))


def _ignore_interrupt() -> None:
    # the worker was forked with SIGINT blocked (see in_order): ignore it, which also drops one
    # that arrived in between, then unblock
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _chunk(names: Sequence[str]) -> list[Any]:
    check = _inherited["check"]
    return [check(name) for name in names]


def in_order(names: Sequence[str], check: Callable[[str], T], *, jobs: int) -> Iterator[T]:
    """``check(name)`` for every name, in order; on ``jobs`` processes when that pays."""
    if (
        jobs <= 1
        or len(names) < MIN_PARALLEL
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        for name in names:
            yield check(name)
        return
    _inherited["check"] = check  # the forked workers find it here
    chunks = [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)]
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(chunks)), mp_context=context, initializer=_ignore_interrupt
    )
    try:
        # the workers are forked while the chunks are submitted: with SIGINT blocked, so that a
        # Ctrl-C in that moment reaches only this process (delivered when it is unblocked)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            results = pool.map(_chunk, chunks)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for chunk in results:
            yield from chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _inherited.clear()
