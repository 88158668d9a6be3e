"""The seam between the standard-neutral core and a procedure family.

A *family* is one package under ``flows/families/<name>/`` (or any importable package registered
through the ``amtsbote.families`` entry point group) whose ``family.py`` defines one
:class:`Family` instance. It declares, in one place:

* which standards and versions it speaks (:attr:`Family.standards`);
* its procedures: name → flow entrypoint and description (:attr:`Family.procedures`);
* who may start which procedure with which message type (:attr:`Family.starts`) — everything else
  is refused at the home inbox's hook and recorded as a ``case.refused`` event, never started;
* the non-personal facts its routing sees (:attr:`Family.facts_model`, a :class:`Facts` subclass
  whose ``CONDITIONS`` name the condition keys the routing loader accepts for this family);
* how the message for a route is built — data-minimised and validated before it leaves
  (:meth:`Family.build`);
* how a reply is read (:meth:`Family.read_reply`: its outcome code and whether it is positive).

Correlation is by key: a case is opened by its start message's journal key (XÖV nachrichtenUUID;
xdomea: UUIDv5 of ProzessID and message type, see :func:`xoev.message.inspect_message`), and a
reply names the key of the message it answers (``MessageInfo.in_reply_to``: a Rückmeldung's
``bezug``, an xdomea 0504's 0501). The blocks in :mod:`flows.blocks` ask the family; none of them
knows a standard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from connectors.directory import Agency
    from connectors.journal import MessageMeta, MessageRecord

    from ..routing import ConditionSpec, Route
    from ..runtime import Runtime

__all__ = [
    "BuiltMessage",
    "Facts",
    "Family",
    "Procedure",
    "ReplyOutcome",
    "StartRule",
    "Started",
]


class Facts:
    """Base of a family's routing facts: non-personal keys and flags only (they are shown in
    Prefect: parameters, logs, artifacts). Subclasses are frozen dataclasses and declare
    ``CONDITIONS``: routing condition key → :class:`flows.routing.ConditionSpec`."""

    CONDITIONS: ClassVar[Mapping[str, ConditionSpec]] = {}

    def summary(self) -> dict[str, Any]:
        """Pseudonymised summary fit for Prefect and the case summary."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Procedure:
    """One procedure of a family: a Prefect flow run per case."""

    name: str
    entrypoint: str
    """``module.path:flow_function`` (imported lazily), e.g.
    ``flows.families.gewerbe.procedures:gewerbeanmeldung``; prefect.yaml uses the file form."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class StartRule:
    """Which senders (by directory role) may start ``procedure`` with which message types
    (root element names). ``accepts`` (optional) looks at the payload for what the header does
    not say (e.g. the Meldungsart of a Gewerbemeldung) and returns a refusal reason or None."""

    procedure: str
    roles: frozenset[str]
    message_types: frozenset[str]
    accepts: Callable[[bytes], str | None] | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """What :meth:`Family.start_for` decided: a procedure to start, or a refusal reason."""

    procedure: str | None
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.procedure is None


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """A reply as the core needs it: an outcome code (kept in the journal event and shown to
    operators) and whether it is positive (``False`` makes a clerk's approval necessary)."""

    code: str
    positive: bool
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """An outgoing message, built and validated, ready for the outbox. ``files`` are primary
    documents on disk that travel with it (a container is built from payload and files)."""

    payload: bytes
    meta: MessageMeta
    files: Mapping[str, Any] = field(default_factory=dict)


class Family:
    """Base class of a procedure family; see the module docstring. Subclasses set the class
    attributes and implement the methods below "to implement"."""

    name: ClassVar[str]
    standards: ClassVar[tuple[tuple[str, str], ...]]
    """(standard, version) pairs this family speaks, e.g. ``("XGewerbeanzeige", "2.2")``."""
    procedures: ClassVar[tuple[Procedure, ...]]
    starts: ClassVar[tuple[StartRule, ...]] = ()
    facts_model: ClassVar[type[Facts]]
    routing_file: ClassVar[str]
    """File name of the default routing data in the package ``deployments.owl`` — or an absolute
    path (a family outside this repository keeps its routing beside its code)."""
    routing_env: ClassVar[str]
    """Environment variable that points at another routing file."""

    # ------------------------------------------------------------------ declared behaviour

    def speaks(self, standard: str | None, version: str | None) -> bool:
        return any(s == standard and (v == version or v == "*") for s, v in self.standards)

    def routing_path(self) -> str:
        """Where the family's routing is read from: its environment variable, else its file."""
        import os

        from ..routing import data_file

        return os.environ.get(self.routing_env) or str(data_file(self.routing_file))

    def procedure(self, name: str) -> Procedure | None:
        return next((p for p in self.procedures if p.name == name), None)

    def start_for(self, record: MessageRecord, sender: Agency | None, payload: bytes) -> Started:
        """Which procedure an inbound message starts, or why it starts none."""
        by_type = [r for r in self.starts if record.message_type in r.message_types]
        if not by_type:
            return Started(
                None, f"message type {record.message_type} starts no {self.name} procedure"
            )
        roles = set(sender.roles) if sender is not None else set()
        allowed = [r for r in by_type if r.roles & roles]
        if not allowed:
            who = sender.id if sender is not None else "an unknown sender"
            need = sorted({role for r in by_type for role in r.roles})
            return Started(
                None,
                f"{who} (roles {sorted(roles) or '-'}) may not start a "
                f"{self.name} procedure (needs role {' or '.join(need)})",
            )
        reasons = []
        for rule in allowed:
            reason = rule.accepts(payload) if rule.accepts is not None else None
            if reason is None:
                return Started(rule.procedure)
            reasons.append(reason)
        return Started(None, "; ".join(reasons))

    # ------------------------------------------------------------------ to implement

    def open_check(self, payload: bytes, procedure: str) -> tuple[Facts, dict[str, Any]]:
        """Check the validated start message fits ``procedure``; return its facts and the
        non-personal case reference data kept in the case summary (beside the facts). Raise
        ``ValueError`` with the reason when it does not fit (intake turns it into
        :class:`flows.exceptions.IntakeRejected`)."""
        raise NotImplementedError

    def message_type_root(self, key: str) -> str:
        """The root element name of a message type as routing files name it (e.g.
        ``gwa.gewerbemeldung.0500`` or ``0500``); raise ``LookupError`` for an unknown one."""
        raise NotImplementedError

    def reply_types(self, route: Route) -> tuple[str, ...]:
        """The message types (root names) a consultation by ``route`` waits for, in order."""
        raise NotImplementedError

    def message_uuid(self, case: Any, route: Route) -> str:
        """The journal key of the message of ``route`` for ``case`` (a
        :class:`flows.blocks.CaseRef`): stable across retries, resumes and re-runs."""
        raise NotImplementedError

    def build(self, rt: Runtime, case: Any, route: Route, *, message_uuid: str) -> BuiltMessage:
        """The message for ``route`` (data-minimised, validated)."""
        raise NotImplementedError

    def read_reply(self, payload: bytes) -> ReplyOutcome:
        """Outcome of a reply this family's procedures wait for."""
        raise NotImplementedError
