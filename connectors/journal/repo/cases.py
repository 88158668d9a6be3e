"""Cases: procedure instances (``cases``), created by id or numbered for the inbound message
that opens them, and their status, reference, flow run and summary."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from ...exceptions import (
    CaseConflictError,
    InvalidTransitionError,
    JournalNotFoundError,
    JournalValueError,
)
from ..records import (
    ENDED_CASE_STATUSES,
    FINAL_CASE_STATUSES,
    CaseRecord,
    CaseStatus,
    CorrelationState,
    Direction,
    _check_text,
    check_case_id,
    normalize_uuid,
)
from .base import (
    T_CASES,
    T_MESSAGES,
    JournalBase,
    as_enum,
    as_enums,
    check_limit,
    insert_ignore,
    json_object,
    lock_key,
    retry_on_disconnect,
    utcnow,
)
from .events import insert_events
from .messages import message_by_uuid
from .rows import case_record, event_row

__all__ = ["CaseRepository"]

_M = T_MESSAGES.c
_CASE_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")


@functools.cache
def insert_case(dialect: str) -> Any:
    """INSERT of a case, ignored when the case id exists."""
    return insert_ignore(dialect, T_CASES, "case_id").returning(T_CASES.c.case_id)


class CaseRepository(JournalBase):
    """Creating, reading and updating cases."""

    @retry_on_disconnect
    def create_case(
        self,
        case_id: str,
        *,
        procedure: str,
        status: CaseStatus | str = CaseStatus.OPEN,
        reference: str | None = None,
        flow_run_id: str | None = None,
        summary: Mapping[str, Any] | None = None,
        actor: str = "journal",
    ) -> tuple[CaseRecord, bool]:
        """Create a case; idempotent on ``case_id``. Returns ``(case, created)``.

        An existing case with the same procedure is returned unchanged (``created=False``);
        another procedure raises :class:`CaseConflictError`. ``reference`` and ``summary`` must
        hold no personal data (pseudonymised facts only)."""
        case_id = check_case_id(case_id)
        procedure = _check_text(procedure, "procedure", 100)
        state = as_enum(CaseStatus, status, "status")
        reference = _check_text(reference, "reference", 200) if reference is not None else None
        flow_run_id = str(flow_run_id) if flow_run_id is not None else None
        if flow_run_id is not None:
            _check_text(flow_run_id, "flow_run_id", 64)
        data = json_object(summary, "summary")
        actor = self._actor(actor)
        now = utcnow()
        row = {
            "case_id": case_id,
            "procedure": procedure,
            "status": state.value,
            "reference": reference,
            "flow_run_id": flow_run_id,
            "summary": data,
            "created_at": now,
            "updated_at": now,
            "closed_at": now if state in ENDED_CASE_STATUSES else None,
        }
        with self._tx("create_case") as conn:
            inserted = conn.execute(insert_case(self._dialect), row).first()
            if inserted is not None:
                insert_events(
                    conn,
                    [
                        event_row(
                            "case.created",
                            actor,
                            now,
                            case_id=case_id,
                            detail={"procedure": procedure, "status": state.value},
                        )
                    ],
                )
                return case_record(row), True
            existing = self._case_row(conn, case_id)
        if existing["procedure"] != procedure:
            raise CaseConflictError(
                case_id, f"procedure {existing['procedure']!r}, not {procedure!r}"
            )
        return case_record(existing), False

    def _case_row(self, conn: Connection, case_id: str, *, lock: bool = False) -> RowMapping:
        stmt = select(T_CASES).where(T_CASES.c.case_id == case_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JournalNotFoundError("case", case_id)
        return row

    @retry_on_disconnect
    def get_case(self, case_id: str) -> CaseRecord:
        """The case ``case_id``; :class:`JournalNotFoundError` if there is none."""
        case_id = check_case_id(case_id)
        with self._tx("get_case", write=False) as conn:
            return case_record(self._case_row(conn, case_id))

    @retry_on_disconnect
    def list_cases(
        self,
        *,
        status: CaseStatus | str | Collection[CaseStatus | str] | None = None,
        procedure: str | None = None,
        flow_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[CaseRecord]:
        """Cases, oldest first, filtered by status (one or several), procedure, flow run."""
        stmt = select(T_CASES).order_by(T_CASES.c.created_at, T_CASES.c.case_id)
        if status is not None:
            stmt = stmt.where(
                T_CASES.c.status.in_([s.value for s in as_enums(CaseStatus, status, "status")])
            )
        if procedure is not None:
            stmt = stmt.where(T_CASES.c.procedure == procedure)
        if flow_run_id is not None:
            stmt = stmt.where(T_CASES.c.flow_run_id == str(flow_run_id))
        stmt = stmt.limit(check_limit(limit))
        with self._tx("list_cases", write=False) as conn:
            return [case_record(r) for r in conn.execute(stmt).mappings()]

    @retry_on_disconnect
    def update_case(
        self,
        case_id: str,
        *,
        status: CaseStatus | str | None = None,
        reference: str | None = None,
        flow_run_id: str | None = None,
        summary: Mapping[str, Any] | None = None,
        actor: str = "journal",
        detail: Mapping[str, Any] | None = None,
    ) -> CaseRecord:
        """Change a case's status, reference, flow run or summary (``None`` = unchanged;
        ``summary`` replaces the whole summary). Writes a ``case.updated`` event unless nothing
        changed. ``closed``/``cancelled`` are final; entering closed/cancelled/failed sets
        ``closed_at``, reopening a failed case clears it."""
        case_id = check_case_id(case_id)
        new_status = as_enum(CaseStatus, status, "status") if status is not None else None
        if reference is not None:
            reference = _check_text(reference, "reference", 200)
        if flow_run_id is not None:
            flow_run_id = _check_text(str(flow_run_id), "flow_run_id", 64)
        data = json_object(summary, "summary") if summary is not None else None
        extra = json_object(detail, "detail")
        actor = self._actor(actor)
        now = utcnow()
        with self._tx("update_case") as conn:
            row = dict(self._case_row(conn, case_id, lock=True))
            old_status = CaseStatus(row["status"])
            changes: dict[str, Any] = {}
            if new_status is not None and new_status != old_status:
                if old_status in FINAL_CASE_STATUSES:
                    raise InvalidTransitionError(
                        "case", case_id, old_status.value, new_status.value, allowed=()
                    )
                changes["status"] = new_status.value
                if new_status in ENDED_CASE_STATUSES:
                    changes["closed_at"] = now
                elif row["closed_at"] is not None:
                    changes["closed_at"] = None
            if reference is not None and reference != row["reference"]:
                changes["reference"] = reference
            if flow_run_id is not None and flow_run_id != row["flow_run_id"]:
                changes["flow_run_id"] = flow_run_id
            if data is not None and data != row["summary"]:
                changes["summary"] = data
            if not changes:
                return case_record(row)
            changes["updated_at"] = now
            conn.execute(update(T_CASES).where(T_CASES.c.case_id == case_id).values(changes))
            event_detail = {
                **extra,
                "changed": sorted(k for k in changes if k not in ("updated_at", "closed_at")),
            }
            if "status" in changes:
                event_detail["from"] = old_status.value
                event_detail["to"] = changes["status"]
            insert_events(
                conn,
                [event_row("case.updated", actor, now, case_id=case_id, detail=event_detail)],
            )
            row.update(changes)
            return case_record(row)

    @retry_on_disconnect
    def open_case_for_message(
        self,
        nachrichten_uuid: str,
        *,
        procedure: str,
        prefix: str,
        flow_run_id: str | None = None,
        reference: str | None = None,
        summary: Mapping[str, Any] | None = None,
        status: CaseStatus | str = CaseStatus.OPEN,
        actor: str = "journal",
        digits: int = 6,
    ) -> tuple[CaseRecord, bool]:
        """Open a new case for an inbound message that starts a procedure; idempotent per
        message. Returns ``(case, created)``.

        The case id is ``prefix`` plus the next free number of that prefix, zero-padded to
        ``digits`` (``05774032-2026-`` → ``05774032-2026-000124``); numbering is serialised, so
        concurrent calls never collide. The message gets the case and becomes ``consumed``
        (claimed by the procedure), with ``case.created`` and ``correlation.consumed`` events in
        the same transaction. If the message has a case already (a previous run, or it was
        matched as a reply), that case is returned with ``created=False`` — whatever its
        procedure; the caller compares."""
        uuid = normalize_uuid(nachrichten_uuid)
        procedure = _check_text(procedure, "procedure", 100)
        prefix = _check_text(prefix, "prefix", 40)
        if not prefix or not _CASE_PREFIX_RE.fullmatch(prefix):
            raise JournalValueError("prefix", f"{prefix!r}: letters, digits and . _ : / - only")
        if not isinstance(digits, int) or not 1 <= digits <= 12:
            raise JournalValueError("digits", "must be between 1 and 12")
        state = as_enum(CaseStatus, status, "status")
        if reference is not None:
            reference = _check_text(reference, "reference", 200)
        run = _check_text(str(flow_run_id), "flow_run_id", 64) if flow_run_id is not None else None
        data = json_object(summary, "summary")
        actor = self._actor(actor)
        now = utcnow()
        with self._tx("open_case_for_message") as conn:
            message = message_by_uuid(conn, uuid, Direction.INBOUND, lock=True)
            if message.case_id is not None:
                return case_record(self._case_row(conn, message.case_id)), False
            if self._dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("case:" + prefix)}
                )
            last = conn.execute(
                select(T_CASES.c.case_id)
                .where(T_CASES.c.case_id.startswith(prefix, autoescape=True))
                .order_by(func.length(T_CASES.c.case_id).desc(), T_CASES.c.case_id.desc())
                .limit(1)
            ).scalar()
            number = 1
            if last is not None and last[len(prefix) :].isdigit():
                number = int(last[len(prefix) :]) + 1
            case_id = check_case_id(f"{prefix}{number:0{digits}d}")
            row = {
                "case_id": case_id,
                "procedure": procedure,
                "status": state.value,
                "reference": reference,
                "flow_run_id": run,
                "summary": data,
                "created_at": now,
                "updated_at": now,
                "closed_at": now if state in ENDED_CASE_STATUSES else None,
            }
            conn.execute(insert(T_CASES), row)
            conn.execute(
                update(T_MESSAGES)
                .where(_M.id == message.id)
                .values(correlation_state=CorrelationState.CONSUMED.value, case_id=case_id)
            )
            insert_events(
                conn,
                [
                    event_row(
                        "case.created",
                        actor,
                        now,
                        case_id=case_id,
                        nachrichten_uuid=uuid,
                        detail={"procedure": procedure, "status": state.value},
                    ),
                    event_row(
                        "correlation.consumed",
                        actor,
                        now,
                        case_id=case_id,
                        nachrichten_uuid=uuid,
                        detail={
                            "from": message.correlation_state.value
                            if message.correlation_state
                            else None
                        },
                    ),
                ],
            )
            return case_record(row), True
