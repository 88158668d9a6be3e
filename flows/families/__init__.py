"""The registry of procedure families: name → :class:`~flows.families.base.Family`.

Built in: ``gewerbe`` (:mod:`flows.families.gewerbe`) and, where installed,
``aussonderung`` (:mod:`flows.families.aussonderung`). Further families register through the
entry point group ``amtsbote.families`` (``name = "package.module:FAMILY"``) or, in a process of
their own (tests), with :func:`register`. Registering a family touches no block, no correlation
code and no CLI code: they all ask this registry.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points

from ..exceptions import AmtsboteFlowError
from .base import (
    BuiltMessage,
    Facts,
    Family,
    Procedure,
    ReplyOutcome,
    Started,
    StartRule,
)

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "BuiltMessage",
    "Facts",
    "Family",
    "Procedure",
    "ReplyOutcome",
    "StartRule",
    "Started",
    "UnknownFamilyError",
    "all_families",
    "family_for_procedure",
    "family_for_standard",
    "get_family",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "amtsbote.families"
BUILTIN = {
    "gewerbe": "flows.families.gewerbe.family:FAMILY",
    "aussonderung": "flows.families.aussonderung.family:FAMILY",
}

_lock = threading.Lock()
_families: dict[str, Family] | None = None


class UnknownFamilyError(AmtsboteFlowError, LookupError):
    """No family of that name, or none serving that procedure or standard."""

    def __init__(self, what: str, key: str, known: list[str]) -> None:
        self.what, self.key, self.known = what, key, known
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"unknown {self.what} {self.key!r} (known: {', '.join(self.known) or 'none'})"


def _load(spec: str) -> Family:
    module, _, attr = spec.partition(":")
    family = getattr(importlib.import_module(module), attr)
    # duck-typed: Prefect may load a flow file a second time under another module name, and
    # with it a second copy of flows.families.base (isinstance would then fail)
    missing = [
        m
        for m in ("name", "procedures", "standards", "start_for", "build")
        if not hasattr(family, m)
    ]
    if missing:
        raise TypeError(f"{spec} is not a flows.families.Family (lacks {', '.join(missing)})")
    return family


def _discover() -> dict[str, Family]:
    found: dict[str, Family] = {}
    for name, spec in BUILTIN.items():
        try:
            found[name] = _load(spec)
        except ModuleNotFoundError as exc:  # an optional family that is not installed
            if not (exc.name or "").startswith(spec.split(":")[0].rsplit(".", 1)[0]):
                raise
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, _load(ep.value))
    return found


def _registry() -> dict[str, Family]:
    global _families
    with _lock:
        if _families is None:
            _families = _discover()
        return _families


def register(family: Family) -> Family:
    """Add (or replace) a family in this process."""
    _registry()[family.name] = family
    return family


def unregister(name: str) -> None:
    _registry().pop(name, None)


def all_families() -> Iterator[Family]:
    yield from list(_registry().values())


def get_family(name: str) -> Family:
    try:
        return _registry()[name]
    except KeyError:
        raise UnknownFamilyError("family", name, sorted(_registry())) from None


def family_for_procedure(procedure: str) -> Family:
    for family in all_families():
        if family.procedure(procedure) is not None:
            return family
    known = sorted(p.name for f in all_families() for p in f.procedures)
    raise UnknownFamilyError("procedure", procedure, known)


def family_for_standard(standard: str | None, version: str | None) -> Family | None:
    """The family that speaks this standard version (first registered wins), or None."""
    return next((f for f in all_families() if f.speaks(standard, version)), None)
