"""Errors of the reporting package (``flows.reporting``).

::

    AmtsboteFlowError                    (flows.exceptions)
    └── ReportError                      a report cannot be made
        ├── ReportInputError             an option is unusable: field, value, problem (ValueError)
        ├── ReportOutputError            the output cannot be written: path, problem
        └── ReportDataError              the journal cannot be read: database (password masked)

None of them carries personal data: they name options, paths, database URLs and SQL operations.
"""

from __future__ import annotations

from ..exceptions import AmtsboteFlowError

__all__ = ["ReportDataError", "ReportError", "ReportInputError", "ReportOutputError"]


class ReportError(AmtsboteFlowError):
    """Base of the reporting errors."""


class ReportInputError(ReportError, ValueError):
    """An option is unusable (``--since 2026-13-01``, an unknown format)."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(field, value, problem)
        self.field, self.value, self.problem = field, value, problem

    def __str__(self) -> str:
        return f"{self.field} {self.value!r}: {self.problem}"


class ReportOutputError(ReportError):
    """A report file or directory cannot be written."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.problem}"


class ReportDataError(ReportError):
    """The journal cannot be read (unreachable, not migrated, a query failed)."""

    def __init__(self, database: str, problem: str, *, operation: str | None = None) -> None:
        super().__init__(database, problem)
        self.database, self.problem, self.operation = database, problem, operation

    def __str__(self) -> str:
        where = f"journal database {self.database}"
        if self.operation:
            where = f"{self.operation}: {where}"
        return f"{where}: {self.problem}"
