"""Errors of the procedures layer.

::

    AmtsboteFlowError
    ├── RoutingError            routing.yaml unusable: file, line, field
    ├── CaseError               a case cannot be processed (case id, step)
    │   ├── IntakeRejected      the start message has findings or does not fit the procedure
    │   ├── DeadLetters         the case (or a redeliver) ended with deliveries still dead
    │   └── UnknownCaseError    no such case in the journal
    ├── CorrelationError        a reply cannot be matched or delivered to its flow run
    ├── UnknownFamilyError      (flows.families) no family has that name / procedure / standard
    └── (flows.families.aussonderung)
        ├── ExportError         the DMS's export folder is unusable: file, line, field
        ├── HandOverError       what the DMS handed over cannot be used (source, problem)
        └── CandidateError      the 0503 cannot be built (nothing archivwürdig, file missing)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "AmtsboteFlowError",
    "CaseError",
    "CorrelationError",
    "DeadLetters",
    "IntakeRejected",
    "RoutingError",
    "RoutingProblem",
    "UnknownCaseError",
]


class AmtsboteFlowError(Exception):
    """Base of every error raised by ``flows``."""


class RoutingProblem:
    __slots__ = ("field", "file", "line", "message")

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message

    def __str__(self) -> str:
        line = self.line if self.line is not None else "?"
        return f"{self.file}:{line}: {self.field}: {self.message}"


class RoutingError(AmtsboteFlowError, ValueError):
    """The routing file is unusable; every problem names file, line and field."""

    def __init__(self, problems: Iterable[RoutingProblem]) -> None:
        self.problems: Sequence[RoutingProblem] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class CaseError(AmtsboteFlowError):
    def __init__(self, case_id: str | None, message: str, *, step: str | None = None) -> None:
        self.case_id, self.step, self.message = case_id, step, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"case {self.case_id}" if self.case_id else "case ?"
        if self.step:
            where += f" ({self.step})"
        return f"{where}: {self.message}"


class IntakeRejected(CaseError):
    """The notification cannot start a procedure; ``findings`` says why (no personal data)."""

    def __init__(
        self, nachrichten_uuid: str, message: str, *, findings: Sequence[str] = ()
    ) -> None:
        self.nachrichten_uuid = nachrichten_uuid
        self.findings = tuple(findings)
        super().__init__(None, f"message {nachrichten_uuid}: {message}", step="intake")


class DeadLetters(CaseError):
    """The case ended ``failed``: deliveries remain dead (agency ids only, no personal data).
    ``summaries``: what :func:`flows.blocks.finish_case` returned for each case concerned."""

    def __init__(self, summaries: Sequence[dict[str, object]], *, step: str) -> None:
        self.summaries = tuple(summaries)
        failed = [s for s in self.summaries if s.get("status") == "failed"]
        cases = ", ".join(str(s.get("case_id")) for s in failed)
        counts = [s.get("deliveries") or {} for s in failed]
        dead = sum(int(c.get("dead", 0)) for c in counts if isinstance(c, dict))
        single = str(failed[0].get("case_id")) if len(failed) == 1 else None
        hint = f"amtsbote redeliver --case {single}" if single else "amtsbote redeliver --all-dead"
        super().__init__(
            single,
            f"{dead} delivery(ies) dead{'' if single else ' in cases ' + cases}; once the "
            f"recipient is reachable re-drive with: {hint}",
            step=step,
        )


class UnknownCaseError(CaseError, LookupError):
    def __init__(self, case_id: str) -> None:
        super().__init__(case_id, "no such case in the journal")


class CorrelationError(AmtsboteFlowError):
    def __init__(self, nachrichten_uuid: str, message: str) -> None:
        self.nachrichten_uuid, self.message = nachrichten_uuid, message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"reply {self.nachrichten_uuid}: {self.message}"
