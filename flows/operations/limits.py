"""Per-agency global concurrency limits (``amtsbote limits sync``) and the slot a send takes
(:mod:`flows.operations`)."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prefect import get_run_logger

from connectors.directory import Directory
from connectors.senders import TransientSendError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

from .common import AGENCY_LIMIT_PREFIX, LEASE_SECONDS, RATE_SUFFIX, _client, log

__all__ = [
    "LimitChange",
    "LimitSettings",
    "LimitSpec",
    "agency_slot",
    "desired_limits",
    "limit_names",
    "sync_limits",
]


def limit_names(agency_id: str) -> tuple[str, str]:
    """``(concurrency limit, rate limit)`` names of an agency."""
    return f"{AGENCY_LIMIT_PREFIX}{agency_id}", f"{AGENCY_LIMIT_PREFIX}{agency_id}{RATE_SUFFIX}"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One global concurrency limit as the directory wants it."""

    name: str
    agency: str
    kind: Literal["concurrency", "rate"]
    limit: int
    slot_decay_per_second: float = 0.0

    def describe(self) -> str:
        if self.kind == "rate":
            return f"{self.slot_decay_per_second:g}/s (burst {self.limit})"
        return f"{self.limit} at a time"


def desired_limits(directory: Directory) -> list[LimitSpec]:
    """The two limits of every agency of the directory (see the module docstring)."""
    specs: list[LimitSpec] = []
    for agency in directory:
        conc, rate = limit_names(agency.id)
        specs.append(LimitSpec(conc, agency.id, "concurrency", int(agency.concurrency)))
        specs.append(
            LimitSpec(
                rate,
                agency.id,
                "rate",
                max(1, math.ceil(agency.rate_limit)),
                float(agency.rate_limit),
            )
        )
    return specs


@dataclass(frozen=True, slots=True)
class LimitChange:
    """What ``sync_limits`` did (or, dry, would do) to one limit."""

    action: Literal["create", "update", "unchanged", "delete"]
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:9}  {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _same_decay(a: float | None, b: float | None) -> bool:
    return math.isclose(float(a or 0.0), float(b or 0.0), rel_tol=1e-9, abs_tol=1e-9)


async def _read_all_limits(client: PrefectClient) -> list[Any]:
    out: list[Any] = []
    offset = 0
    while True:
        page = await client.read_global_concurrency_limits(limit=200, offset=offset)
        out.extend(page)
        if len(page) < 200:
            return out
        offset += 200


async def sync_limits(
    directory: Directory,
    *,
    dry_run: bool = False,
    prune: bool = True,
    client: PrefectClient | None = None,
) -> list[LimitChange]:
    """Make the server's ``agency-*`` limits match the directory: create missing ones, update
    changed ones (limit, decay, re-activate), delete those of agencies no longer in the directory
    (``prune``). Idempotent; ``dry_run`` only plans. Occupied slots are left alone."""
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )

    async with _client(client) as c:
        existing = {lim.name: lim for lim in await _read_all_limits(c)}
        changes: list[LimitChange] = []
        wanted = desired_limits(directory)
        for spec in wanted:
            have = existing.get(spec.name)
            if have is None:
                changes.append(LimitChange("create", spec.name, spec.describe()))
                if not dry_run:
                    await c.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(
                            name=spec.name,
                            limit=spec.limit,
                            active=True,
                            slot_decay_per_second=spec.slot_decay_per_second,
                        )
                    )
                continue
            diffs = []
            if have.limit != spec.limit:
                diffs.append(f"limit {have.limit} → {spec.limit}")
            if not _same_decay(have.slot_decay_per_second, spec.slot_decay_per_second):
                diffs.append(
                    f"decay {have.slot_decay_per_second or 0:g} → {spec.slot_decay_per_second:g}/s"
                )
            if not have.active:
                diffs.append("inactive → active")
            if not diffs:
                changes.append(LimitChange("unchanged", spec.name, spec.describe()))
                continue
            changes.append(LimitChange("update", spec.name, ", ".join(diffs)))
            if not dry_run:
                await c.update_global_concurrency_limit(
                    spec.name,
                    GlobalConcurrencyLimitUpdate(
                        limit=spec.limit,
                        active=True,
                        slot_decay_per_second=spec.slot_decay_per_second,
                    ),
                )
        if prune:
            names = {s.name for s in wanted}
            for name in sorted(existing):
                if name.startswith(AGENCY_LIMIT_PREFIX) and name not in names:
                    changes.append(LimitChange("delete", name, "agency not in the directory"))
                    if not dry_run:
                        await c.delete_global_concurrency_limit_by_name(name)
        return changes


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """How :func:`agency_slot` behaves; from ``AMTSBOTE_AGENCY_LIMITS`` and
    ``AMTSBOTE_LIMIT_WAIT`` by :meth:`from_env`."""

    enabled: bool = True
    wait: float = 600.0
    """Seconds to wait for a slot before the send attempt fails (transiently)."""
    missing_recheck: float = 60.0
    """Seconds a limit found missing is not asked for again (per process)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LimitSettings:
        """The limit settings of ``environ`` (default ``os.environ``) — read once per distinct
        value of their two variables (every send asks)."""
        from connectors.settings import env_name

        env = os.environ if environ is None else environ
        key = tuple(env.get(env_name(f)) for f in ("agency_limits", "limit_wait"))
        with _state_lock:
            cached = _limit_settings.get(key)
        if cached is None:
            cached = _read_limit_settings(env)
            with _state_lock:
                _limit_settings[key] = cached
        return cached


def _read_limit_settings(environ: Mapping[str, str]) -> LimitSettings:
    from connectors.settings import AmtsboteSettings

    read = AmtsboteSettings.from_environ(environ, only=("agency_limits", "limit_wait"))
    return LimitSettings(enabled=read.agency_limits, wait=read.limit_wait)


_limit_settings: dict[tuple[str | None, ...], LimitSettings] = {}


_missing_until: dict[str, float] = {}
_warned: set[str] = set()
_state_lock = threading.Lock()


def _known_missing(name: str) -> bool:
    with _state_lock:
        until = _missing_until.get(name)
        return until is not None and until > time.monotonic()


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except Exception:
        return log


async def _limit_unavailable(
    name: str, agency_id: str, exc: BaseException, settings: LimitSettings
) -> None:
    """Decide what a failed acquisition means: a missing limit → proceed (warn once); anything
    else → a transient send error (the send task's retries apply)."""
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, TimeoutError):
        raise TransientSendError(
            f"no slot of the global limit {name} within {settings.wait:g} s "
            f"(the agency is busy or slots are held)",
            recipient=agency_id,
        ) from exc
    try:
        async with _client(None) as c:
            await c.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with _state_lock:
            _missing_until[name] = time.monotonic() + settings.missing_recheck
            first = name not in _warned
            _warned.add(name)
        if first:
            _run_logger().warning(
                "global concurrency limit %s does not exist on the Prefect server: sending to %s "
                "without the limit across workers (the per-process sender limit still applies) "
                "— run `amtsbote limits sync`",
                name,
                agency_id,
            )
        return
    except Exception as probe:
        raise TransientSendError(
            f"global limit {name}: Prefect API unavailable ({type(probe).__name__})",
            recipient=agency_id,
        ) from exc
    raise TransientSendError(
        f"global limit {name} could not be taken: {exc}", recipient=agency_id
    ) from exc


@asynccontextmanager
async def agency_slot(
    agency_id: str, *, settings: LimitSettings | None = None
) -> AsyncIterator[bool]:
    """Hold a slot of ``agency-<id>`` and take a token of ``agency-<id>-rate`` around one request
    to the agency. Yields whether any global limit was taken (False: limits off or missing)."""
    from prefect.concurrency.asyncio import (
        ConcurrencySlotAcquisitionError,
        concurrency,
        rate_limit,
    )

    settings = settings or LimitSettings.from_env()
    if not settings.enabled:
        yield False
        return
    conc_name, rate_name = limit_names(agency_id)
    took = False
    async with AsyncExitStack() as stack:
        if not _known_missing(conc_name):
            try:
                await stack.enter_async_context(
                    concurrency(
                        conc_name,
                        timeout_seconds=settings.wait,
                        lease_duration=LEASE_SECONDS,
                        strict=True,
                        raise_on_lease_renewal_failure=False,
                    )
                )
                took = True
            except (ConcurrencySlotAcquisitionError, TimeoutError) as exc:
                await _limit_unavailable(conc_name, agency_id, exc, settings)
        if not _known_missing(rate_name):
            try:
                await rate_limit(rate_name, timeout_seconds=settings.wait, strict=True)
                took = True
            except (ConcurrencySlotAcquisitionError, TimeoutError) as exc:
                await _limit_unavailable(rate_name, agency_id, exc, settings)
        yield took
