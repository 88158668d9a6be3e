"""Retention: remove payloads and personal fields from the journal after configurable periods,
keeping the non-personal audit skeleton.

What is removed, per eligible case (ended, and ``closed_at`` older than the period of its
procedure and status, see :class:`RetentionConfig` and ``deployments/owl/retention.yaml``):

* ``messages.payload`` — replaced by :data:`TOMBSTONE` (a fixed, valid zlib stream of
  ``<amtsbote:purged …/>``; encoding ``zlib``). ``payload_sha512``, ``size`` and every metadata
  column stay, so the audit can still prove *which* message was sent — not what it said.
* ``cases.summary`` — reduced to the keys in :attr:`RetentionConfig.keep_summary_keys` (the
  procedures' non-personal ``facts``, ``outcome``, ``deliveries``, ``recipients``); anything
  else (e.g. clerk ``comments``) is dropped.
* ``deliveries.last_error`` and ``delivery_attempts.error`` — free text written from the
  recipients' answers, which amtsbote does not control: set to NULL. ``error_class`` and status
  codes stay.

Messages without a case (unclaimed replies, requests nobody picked up, mailbox traffic of
served agencies) lose their payload ``unassigned`` days after they were recorded, once no
delivery of theirs is pending (outbound created/sent/failed, or inbound not yet fetched).

What stays: ids, UUIDs, hashes, states, timestamps, agency ids, expectations, attempts (without
error text) and the whole event log — ``events`` is append-only (database triggers); retention
only *adds* ``retention.purged`` events (per case, or per unassigned message, with counts and
message ids) and one ``retention.run`` event per run. Event details hold no personal data by
contract; the one free-text field, the comment of ``amtsbote approve --comment`` in
``case.decision`` events, cannot be removed from the immutable log: such events of purged cases
are *reported* (``comment_events``) so the data protection officer can see them — see
``docs/retention.md`` for the rule and the recommended change (comments in the case summary).

Physical removal: on SQLite the purge runs with ``PRAGMA secure_delete=ON`` (freed space is
overwritten with zeros) and checkpoints the WAL afterwards; on PostgreSQL old row versions stay in
the data files until VACUUM reclaims and reuses the space (``VACUUM FULL messages`` removes them
at once) — encrypt payloads at rest (``AMTSBOTE_JOURNAL_KEY``) so that such remnants are
ciphertext.

Every batch of cases is one transaction: payloads, summaries, error texts and the events commit
together or not at all; inside it each case's eligibility is checked again (PostgreSQL locks the
case rows), so a case reopened meanwhile is left alone. A run can be interrupted and repeated;
already purged cases are skipped (their payloads are tombstones and their ``retention.purged``
event exists).
``dry_run=True`` selects and counts exactly the same, and writes nothing.

No Prefect here: the ``retention`` flow (``flows/reporting/flow.py``) and ``amtsbote retention
run`` call :func:`run_retention`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Engine,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from .. import yamlfile
from ..config import mask_url
from ..exceptions import ConfigError, JournalDatabaseError, JournalValueError
from ..settings import data_file
from .engine import WRITE_OPTION
from .models import metadata
from .seal import append_events

__all__ = [
    "DEFAULT_RETENTION_PATH",
    "KEEP_SUMMARY_KEYS",
    "RETENTION_ENV",
    "TOMBSTONE",
    "TOMBSTONE_TEXT",
    "Periods",
    "RetentionConfig",
    "RetentionResult",
    "RuleCount",
    "is_purged",
    "run_retention",
]

RETENTION_ENV = "AMTSBOTE_RETENTION"
#: The shipped retention periods: package data of ``deployments.owl``.
DEFAULT_RETENTION_PATH = data_file("retention.yaml")
#: What a purged payload says when decompressed.
TOMBSTONE_TEXT = b'<amtsbote:purged xmlns:amtsbote="urn:amtsbote:retention"/>'
#: ``zlib.compress(TOMBSTONE_TEXT, 9)``, fixed here so that equality never depends on the zlib
#: version. Stored with ``payload_encoding='zlib'``; :meth:`Journal.payload` recognises it and
#: raises :class:`PayloadPurgedError` instead of returning it.
TOMBSTONE = (
    b"x\xda\xb3I\xcc-)N\xca/I\xb5*(-JOMQ\xa8\xc8\xcd\xc9+\xb6\x82\x89\xda*\x95\x16\xe5\xc1y"
    b"VE\xa9%\xa9y%\x99\xf9yJ\xfav\x00\x9a9\x166"
)
KEEP_SUMMARY_KEYS = ("facts", "outcome", "deliveries", "recipients")
ENDED = ("closed", "cancelled", "failed")

T_CASES = metadata.tables["cases"]
T_MESSAGES = metadata.tables["messages"]
T_DELIVERIES = metadata.tables["deliveries"]
T_ATTEMPTS = metadata.tables["delivery_attempts"]
T_EVENTS = metadata.tables["events"]


def is_purged(stored: bytes) -> bool:
    """Whether a stored payload (as in ``messages.payload``) is the retention tombstone."""
    return bytes(stored) == TOMBSTONE


assert zlib.decompress(TOMBSTONE) == TOMBSTONE_TEXT


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Periods:
    """Days after ``closed_at`` until a case's payloads are removed, per final status;
    ``None`` keeps them (no automatic removal)."""

    closed: int | None = 90
    cancelled: int | None = 30
    failed: int | None = 180

    def days(self, status: str) -> int | None:
        return getattr(self, status) if status in ENDED else None


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Retention periods (see ``deployments/owl/retention.yaml`` for the documented defaults)."""

    defaults: Periods = field(default_factory=Periods)
    """For every procedure not listed in ``procedures``."""
    procedures: Mapping[str, Periods] = field(default_factory=dict)
    """Per procedure; keys missing in the file are taken from ``defaults``."""
    unassigned: int | None = 90
    """Days after recording for messages belonging to no case (``None``: keep)."""
    keep_summary_keys: tuple[str, ...] = KEEP_SUMMARY_KEYS
    """Case summary keys that hold no personal data and stay."""
    clear_error_texts: bool = True
    """Set ``last_error``/``error`` texts of the purged messages' deliveries to NULL."""
    batch_size: int = 500
    """Cases (or unassigned messages) per transaction."""
    source: str | None = None
    """The file the configuration was read from."""

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise JournalValueError("batch_size", "must be a positive integer")

    def periods(self, procedure: str) -> Periods:
        return self.procedures.get(procedure, self.defaults)

    @classmethod
    def load(
        cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> RetentionConfig:
        """Read ``path``, else ``AMTSBOTE_RETENTION``, else the shipped
        ``deployments/owl/retention.yaml``. Errors name file, line and field
        (:class:`~connectors.exceptions.ConfigError`)."""
        if path is not None:
            chosen = Path(path)
        else:
            from ..settings import AmtsboteSettings

            configured = AmtsboteSettings.from_environ(environ, only=("retention",)).retention
            chosen = configured or DEFAULT_RETENTION_PATH
        try:
            text = yamlfile.read_text(chosen)
        except yamlfile.YamlReadError as exc:
            raise ConfigError(str(chosen), exc.problem.message) from exc.cause
        return cls.from_yaml(text, source=str(chosen))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<retention>") -> RetentionConfig:
        try:
            node = yamlfile.compose(text, file=source)
        except yamlfile.YamlSyntaxError as exc:
            mark = getattr(exc.cause, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc.cause, "problem", None) or str(exc.cause)
            raise ConfigError(f"{source}{line}", f"not valid YAML: {problem}") from exc.cause
        return _Loader(source).config(node)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "defaults": asdict(self.defaults),
            "procedures": {k: asdict(v) for k, v in sorted(self.procedures.items())},
            "unassigned": self.unassigned,
            "keep_summary_keys": list(self.keep_summary_keys),
            "clear_error_texts": self.clear_error_texts,
            "batch_size": self.batch_size,
        }


class _Loader:
    """YAML nodes → :class:`RetentionConfig`, with file:line for every problem."""

    TOP = (
        "version",
        "defaults",
        "procedures",
        "unassigned",
        "keep_summary_keys",
        "clear_error_texts",
        "batch_size",
    )

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, field_name: str, problem: str) -> ConfigError:
        line = f":{yamlfile.position(node)[0]}" if node is not None else ""
        return ConfigError(f"{self.source}{line} {field_name}".rstrip(), problem)

    def mapping(
        self, node: yaml.Node, field_name: str, allowed: Sequence[str] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field_name, "expected a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if not isinstance(name, str) or not name:
                raise self.fail(key, field_name, "keys must be names")
            if allowed is not None and name not in allowed:
                raise self.fail(
                    key,
                    f"{field_name}.{name}".lstrip("."),
                    f"unknown key (allowed: {', '.join(allowed)})",
                )
            if name in out:
                raise self.fail(key, f"{field_name}.{name}".lstrip("."), "given twice")
            out[name] = (key, value)
        return out

    def scalar(self, node: yaml.Node, field_name: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, field_name, "expected a single value")
        return yamlfile.value(node)

    def days(self, node: yaml.Node, field_name: str) -> int | None:
        value = self.scalar(node, field_name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(
                node, field_name, f"expected days (an integer >= 0) or null, got {value!r}"
            )
        return value

    def periods(self, node: yaml.Node, field_name: str, base: Periods) -> Periods:
        items = self.mapping(node, field_name, ENDED)
        values = asdict(base)
        for name, (_, value) in items.items():
            values[name] = self.days(value, f"{field_name}.{name}")
        return Periods(**values)

    def config(self, root: yaml.Node | None) -> RetentionConfig:
        if root is None:
            raise self.fail(None, "", "empty file")
        items = self.mapping(root, "", self.TOP)
        if "version" in items:
            version = self.scalar(items["version"][1], "version")
            if version != 1:
                raise self.fail(
                    items["version"][1],
                    "version",
                    f"unsupported {version!r} (this code reads version 1)",
                )
        kw: dict[str, Any] = {"source": self.source}
        defaults = Periods()
        if "defaults" in items:
            defaults = self.periods(items["defaults"][1], "defaults", Periods())
        kw["defaults"] = defaults
        if "procedures" in items:
            procs = self.mapping(items["procedures"][1], "procedures", None)
            kw["procedures"] = {
                name: self.periods(value, f"procedures.{name}", defaults)
                for name, (_, value) in procs.items()
            }
        if "unassigned" in items:
            kw["unassigned"] = self.days(items["unassigned"][1], "unassigned")
        if "keep_summary_keys" in items:
            node = items["keep_summary_keys"][1]
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, "keep_summary_keys", "expected a list of key names")
            keys = [self.scalar(n, "keep_summary_keys") for n in node.value]
            if not all(isinstance(k, str) and k for k in keys):
                raise self.fail(node, "keep_summary_keys", "expected key names")
            kw["keep_summary_keys"] = tuple(keys)
        if "clear_error_texts" in items:
            node = items["clear_error_texts"][1]
            value = self.scalar(node, "clear_error_texts")
            if not isinstance(value, bool):
                raise self.fail(node, "clear_error_texts", "expected true or false")
            kw["clear_error_texts"] = value
        if "batch_size" in items:
            node = items["batch_size"][1]
            value = self.scalar(node, "batch_size")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(node, "batch_size", "expected a positive integer")
            kw["batch_size"] = value
        return RetentionConfig(**kw)


# --------------------------------------------------------------------------- result


@dataclass(slots=True)
class RuleCount:
    """What one rule (procedure/status/period, or ``unassigned``) removed."""

    rule: str
    cases: int = 0
    messages: int = 0
    payload_bytes: int = 0
    summaries: int = 0
    error_texts: int = 0


@dataclass(slots=True)
class RetentionResult:
    dry_run: bool
    at: datetime
    config: dict[str, Any]
    rules: dict[str, RuleCount] = field(default_factory=dict)
    case_ids: list[str] = field(default_factory=list)
    """Cases purged (or, in a dry run, that would be)."""
    unassigned_ids: list[int] = field(default_factory=list)
    """Message ids without a case purged."""
    comment_events: list[int] = field(default_factory=list)
    """Ids of immutable ``case.decision`` events with a comment, in purged cases."""
    kept_pending: int = 0
    """Messages of eligible cases or unassigned messages kept because a delivery is pending."""

    def rule(self, name: str) -> RuleCount:
        found = self.rules.get(name)
        if found is None:
            found = self.rules[name] = RuleCount(name)
        return found

    @property
    def totals(self) -> RuleCount:
        total = RuleCount("total")
        for r in self.rules.values():
            total.cases += r.cases
            total.messages += r.messages
            total.payload_bytes += r.payload_bytes
            total.summaries += r.summaries
            total.error_texts += r.error_texts
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": self.at.isoformat(),
            "totals": asdict(self.totals),
            "rules": [asdict(r) for r in sorted(self.rules.values(), key=lambda r: r.rule)],
            "case_ids": list(self.case_ids),
            "unassigned_message_ids": list(self.unassigned_ids),
            "comment_events": list(self.comment_events),
            "kept_pending": self.kept_pending,
            "config": self.config,
        }


# --------------------------------------------------------------------------- the run


def _not_tombstone(column: Any) -> Any:
    """payload is not the tombstone (length first: cheap on PostgreSQL's TOAST pointers)."""
    return or_(func.length(column) != len(TOMBSTONE), column != TOMBSTONE)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Run:
    def __init__(
        self, engine: Engine, config: RetentionConfig, now: datetime, dry_run: bool, actor: str
    ) -> None:
        self.engine = engine
        self.config = config
        self.now = now
        self.dry_run = dry_run
        self.actor = actor
        self.sqlite = engine.dialect.name == "sqlite"
        self.result = RetentionResult(dry_run=dry_run, at=now, config=config.to_dict())

    # ---------------------------------------------------------------- selection

    def rules(self) -> list[tuple[str, Any]]:
        """(rule name, SQL predicate on cases) for every procedure/status with a period."""
        c = T_CASES.c
        listed = sorted(self.config.procedures)
        out = []
        for status in ENDED:
            for procedure in listed:
                days = self.config.procedures[procedure].days(status)
                if days is not None:
                    out.append(
                        (
                            f"{procedure}/{status}>{days}d",
                            and_(
                                c.procedure == procedure,
                                c.status == status,
                                c.closed_at < self.now - timedelta(days=days),
                            ),
                        )
                    )
            days = self.config.defaults.days(status)
            if days is not None:
                others = c.procedure.not_in(listed) if listed else true()
                out.append(
                    (
                        f"*/{status}>{days}d",
                        and_(
                            others,
                            c.status == status,
                            c.closed_at < self.now - timedelta(days=days),
                        ),
                    )
                )
        return out

    def candidates(self, conn: Connection) -> list[tuple[str, str]]:
        """(case_id, rule) of the eligible cases with something left to remove."""
        c, m, e = T_CASES.c, T_MESSAGES.c, T_EVENTS.c
        unpurged = exists(
            select(literal(1)).where(m.case_id == c.case_id, _not_tombstone(m.payload))
        )
        marked = exists(
            select(literal(1)).where(e.case_id == c.case_id, e.kind == "retention.purged")
        )
        found: list[tuple[str, str]] = []
        for name, predicate in self.rules():
            stmt = (
                select(c.case_id)
                .where(predicate, c.closed_at.is_not(None), or_(unpurged, not_(marked)))
                .order_by(c.closed_at, c.case_id)
            )
            found.extend((row[0], name) for row in conn.execute(stmt))
        return found

    # ---------------------------------------------------------------- cases

    def purge_cases(self) -> None:
        with self.engine.connect() as conn, conn.begin():
            todo = self.candidates(conn)
        for batch in _batches(todo, self.config.batch_size):
            self.transaction(lambda conn, b=batch: self.case_batch(conn, b))

    def still_eligible(self, conn: Connection, batch: Sequence[tuple[str, str]]) -> list[str]:
        """The cases of ``batch`` that still meet their rule inside this transaction (a failed
        case may have been reopened meanwhile); PostgreSQL locks their rows until commit
        (SQLite: the write transaction holds the database lock already)."""
        c = T_CASES.c
        predicates = dict(self.rules())
        found: set[str] = set()
        for name in sorted({rule for _, rule in batch}):
            ids = [case_id for case_id, rule in batch if rule == name]
            stmt = select(c.case_id).where(c.case_id.in_(ids), predicates[name])
            if not self.sqlite and not self.dry_run:
                stmt = stmt.with_for_update()
            found.update(conn.execute(stmt).scalars())
        return [case_id for case_id, _ in batch if case_id in found]

    def case_batch(self, conn: Connection, batch: Sequence[tuple[str, str]]) -> None:
        c, m, d = T_CASES.c, T_MESSAGES.c, T_DELIVERIES.c
        ids = self.still_eligible(conn, batch)
        rule_of = dict(batch)
        pending = exists(
            select(literal(1)).where(
                d.message_id == m.id,
                m.direction == "outbound",
                d.state.in_(("created", "sent", "failed")),
            )
        )
        rows = conn.execute(
            select(m.id, m.case_id, func.length(m.payload), pending.label("pending")).where(
                m.case_id.in_(ids), _not_tombstone(m.payload)
            )
        ).all()
        messages: dict[str, list[tuple[int, int]]] = {}
        waiting: dict[str, int] = {}
        for message_id, case_id, stored, is_pending in rows:
            if is_pending:
                waiting[case_id] = waiting.get(case_id, 0) + 1
            messages.setdefault(case_id, []).append((int(message_id), int(stored or 0)))
        # a case with a delivery still under way is left alone as a whole (next run)
        self.result.kept_pending += sum(waiting.values())
        ids = [case_id for case_id in ids if case_id not in waiting]
        for case_id in waiting:
            messages.pop(case_id, None)
        summaries = {
            row[0]: dict(row[1] or {})
            for row in conn.execute(select(c.case_id, c.summary).where(c.case_id.in_(ids)))
        }
        comments = self.comment_events(conn, ids)
        message_ids = [mid for items in messages.values() for mid, _ in items]
        errors = self.error_texts(conn, message_ids)
        keep = set(self.config.keep_summary_keys)
        events = []
        for case_id in ids:
            rule = self.result.rule(rule_of[case_id])
            own = messages.get(case_id, [])
            summary = summaries.get(case_id, {})
            removed = sorted(k for k in summary if k not in keep)
            if removed and not self.dry_run:
                conn.execute(
                    update(T_CASES)
                    .where(c.case_id == case_id)
                    .values(summary={k: v for k, v in summary.items() if k in keep})
                )
            payload_bytes = sum(size for _, size in own)
            error_count = sum(errors.get(mid, 0) for mid, _ in own)
            rule.cases += 1
            rule.messages += len(own)
            rule.payload_bytes += payload_bytes
            rule.summaries += bool(removed)
            rule.error_texts += error_count
            self.result.case_ids.append(case_id)
            self.result.comment_events.extend(comments.get(case_id, []))
            events.append(
                {
                    "at": self.now,
                    "actor": self.actor,
                    "kind": "retention.purged",
                    "case_id": case_id,
                    "nachrichten_uuid": None,
                    "delivery_id": None,
                    "detail": {
                        "rule": rule.rule,
                        "messages": len(own),
                        "message_ids": [mid for mid, _ in own],
                        "payload_bytes": payload_bytes,
                        "summary_keys_removed": removed,
                        "error_texts": error_count,
                        "comment_events": comments.get(case_id, []),
                    },
                }
            )
        if self.dry_run or not events:
            return
        self.tombstone(conn, message_ids)
        append_events(conn, events)

    def comment_events(self, conn: Connection, case_ids: Sequence[str]) -> dict[str, list[int]]:
        e = T_EVENTS.c
        out: dict[str, list[int]] = {}
        for event_id, case_id, detail in conn.execute(
            select(e.id, e.case_id, e.detail).where(
                e.case_id.in_(list(case_ids)), e.kind == "case.decision"
            )
        ):
            if isinstance(detail, Mapping) and detail.get("comment"):
                out.setdefault(case_id, []).append(int(event_id))
        return out

    def error_texts(self, conn: Connection, message_ids: Sequence[int]) -> dict[int, int]:
        """Per message: error texts on its deliveries and attempts (to be cleared)."""
        if not self.config.clear_error_texts or not message_ids:
            return {}
        d, a = T_DELIVERIES.c, T_ATTEMPTS.c
        out: dict[int, int] = {}
        for chunk in _batches(list(message_ids), 5000):
            for mid, n in conn.execute(
                select(d.message_id, func.count())
                .where(d.message_id.in_(chunk), d.last_error.is_not(None))
                .group_by(d.message_id)
            ):
                out[int(mid)] = out.get(int(mid), 0) + int(n)
            for mid, n in conn.execute(
                select(d.message_id, func.count())
                .select_from(T_ATTEMPTS.join(T_DELIVERIES, a.delivery_id == d.id))
                .where(d.message_id.in_(chunk), a.error.is_not(None))
                .group_by(d.message_id)
            ):
                out[int(mid)] = out.get(int(mid), 0) + int(n)
        return out

    def tombstone(self, conn: Connection, message_ids: Sequence[int]) -> None:
        m, d, a = T_MESSAGES.c, T_DELIVERIES.c, T_ATTEMPTS.c
        for chunk in _batches(list(message_ids), 5000):
            conn.execute(
                update(T_MESSAGES)
                .where(m.id.in_(chunk))
                .values(payload=TOMBSTONE, payload_encoding="zlib")
            )
            if self.config.clear_error_texts:
                conn.execute(
                    update(T_DELIVERIES)
                    .where(d.message_id.in_(chunk), d.last_error.is_not(None))
                    .values(last_error=None)
                )
                conn.execute(
                    update(T_ATTEMPTS)
                    .where(
                        a.error.is_not(None),
                        a.delivery_id.in_(select(d.id).where(d.message_id.in_(chunk))),
                    )
                    .values(error=None)
                )

    # ---------------------------------------------------------------- unassigned

    def purge_unassigned(self) -> None:
        days = self.config.unassigned
        if days is None:
            return
        m = T_MESSAGES.c
        pending = self.unassigned_pending()
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                select(m.id, m.nachrichten_uuid, func.length(m.payload), pending.label("p"))
                .where(
                    m.case_id.is_(None),
                    m.recorded_at < self.now - timedelta(days=days),
                    _not_tombstone(m.payload),
                )
                .order_by(m.id)
            ).all()
        todo = []
        for message_id, uuid, stored, is_pending in rows:
            if is_pending:
                self.result.kept_pending += 1
            else:
                todo.append((int(message_id), str(uuid), int(stored or 0)))
        name = f"unassigned>{days}d"
        for batch in _batches(todo, self.config.batch_size):
            self.transaction(lambda conn, b=batch: self.unassigned_batch(conn, b, name))

    @staticmethod
    def unassigned_pending() -> Any:
        """A delivery of the message is pending: outbound not yet sent/acknowledged, or
        inbound not yet fetched from our mailbox."""
        m, d = T_MESSAGES.c, T_DELIVERIES.c
        return exists(
            select(literal(1)).where(
                d.message_id == m.id,
                or_(
                    and_(m.direction == "outbound", d.state.in_(("created", "sent", "failed"))),
                    and_(m.direction == "inbound", d.state == "delivered"),
                ),
            )
        )

    def unassigned_batch(
        self, conn: Connection, batch: Sequence[tuple[int, str, int]], name: str
    ) -> None:
        # again inside the transaction: still without a case and nothing pending (a kept
        # reply may have been matched meanwhile); PostgreSQL locks the rows until commit
        m = T_MESSAGES.c
        stmt = select(m.id).where(
            m.id.in_([mid for mid, _, _ in batch]), m.case_id.is_(None), ~self.unassigned_pending()
        )
        if not self.sqlite and not self.dry_run:
            stmt = stmt.with_for_update(of=T_MESSAGES)
        still = set(conn.execute(stmt).scalars())
        batch = [item for item in batch if item[0] in still]
        ids = [mid for mid, _, _ in batch]
        errors = self.error_texts(conn, ids)
        rule = self.result.rule(name)
        events = []
        for mid, uuid, size in batch:
            rule.messages += 1
            rule.payload_bytes += size
            rule.error_texts += errors.get(mid, 0)
            self.result.unassigned_ids.append(mid)
            events.append(
                {
                    "at": self.now,
                    "actor": self.actor,
                    "kind": "retention.purged",
                    "case_id": None,
                    "nachrichten_uuid": uuid,
                    "delivery_id": None,
                    "detail": {
                        "rule": name,
                        "messages": 1,
                        "message_ids": [mid],
                        "payload_bytes": size,
                        "error_texts": errors.get(mid, 0),
                    },
                }
            )
        if self.dry_run:
            return
        self.tombstone(conn, ids)
        append_events(conn, events)

    # ---------------------------------------------------------------- plumbing

    def transaction(self, work: Any) -> None:
        """One batch: a write transaction (SQLite: BEGIN IMMEDIATE, secure_delete)."""
        with self.engine.connect() as conn:
            if not self.dry_run:
                conn = conn.execution_options(**{WRITE_OPTION: True})
            if self.sqlite and not self.dry_run:
                # overwrite freed content with zeros (per connection; outside the transaction)
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA secure_delete = ON"
                )
            with conn.begin():
                work(conn)

    def finish(self) -> None:
        if self.dry_run:
            return
        totals = self.result.totals
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                append_events(
                    conn,
                    [
                        {
                            "at": self.now,
                            "actor": self.actor,
                            "kind": "retention.run",
                            "case_id": None,
                            "nachrichten_uuid": None,
                            "delivery_id": None,
                            "detail": {
                                "cases": totals.cases,
                                "messages": totals.messages,
                                "payload_bytes": totals.payload_bytes,
                                "summaries": totals.summaries,
                                "error_texts": totals.error_texts,
                                "kept_pending": self.result.kept_pending,
                                "comment_events": len(self.result.comment_events),
                                "rules": sorted(self.result.rules),
                                "config": self.config.source,
                            },
                        }
                    ],
                )
        if self.sqlite:
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except SQLAlchemyError:  # pragma: no cover - busy readers: the next run does it
                pass


def run_retention(
    engine: Engine,
    config: RetentionConfig | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "retention",
) -> RetentionResult:
    """Apply ``config`` to the journal behind ``engine`` (e.g. ``Journal.engine``) as of ``now``.

    Raises :class:`~connectors.exceptions.JournalDatabaseError` (URL masked) when the database
    fails; batches committed before stay committed and the next run continues."""
    cfg = config or RetentionConfig.load()
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        raise JournalValueError("now", "needs a time zone")
    run = _Run(engine, cfg, at.astimezone(UTC), dry_run, actor)
    try:
        run.purge_cases()
        run.purge_unassigned()
        run.finish()
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
        raise JournalDatabaseError(
            f"{type(orig).__name__}: {first}", url=mask_url(str(engine.url)), operation="retention"
        ) from exc
    return run.result
