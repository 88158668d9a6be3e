"""The directory's exception tree (drawn in :mod:`connectors.directory`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from ..exceptions import ConnectorError
from ..yamlfile import YamlProblem

# --------------------------------------------------------------------------------------- errors


#: Environment variable switching on deterministic development tokens (``1``/``true``/``on``).
DEV_TOKENS_ENV = "AMTSBOTE_DEV_TOKENS"


class DirectoryError(ConnectorError, ValueError):
    """Base of the directory's errors."""


@dataclass(frozen=True, slots=True)
class DirectoryProblem(YamlProblem):
    """One defect of a directory file: where (file, 1-based line and column), which field, what
    (shown ``file:line:col: field: message``, see :class:`connectors.yamlfile.YamlProblem`)."""

    UNNAMED: ClassVar[str] = "<agencies>"


class InvalidDirectoryError(DirectoryError):
    """The directory file (or agency set) is unusable. ``problems`` lists every defect found;
    ``file``, ``line``, ``column`` and ``field`` are those of the first."""

    def __init__(self, problems: Iterable[DirectoryProblem]) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("InvalidDirectoryError needs at least one problem")
        first = self.problems[0]
        self.file, self.line, self.column, self.field = (
            first.file,
            first.line,
            first.column,
            first.field,
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class UnknownAgencyError(DirectoryError, LookupError):
    def __init__(self, key: str, *, what: str = "id", source: str | None = None) -> None:
        self.key, self.what, self.source = key, what, source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        return f"no agency with {self.what} {self.key!r}{where}"


class UnknownRoleError(DirectoryError, LookupError):
    def __init__(self, role: str, *, known: Iterable[str], source: str | None = None) -> None:
        self.role, self.known, self.source = role, tuple(known), source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        return f"role {self.role!r} is not declared{where} (known: {', '.join(self.known)})"


class TokenError(DirectoryError):
    """A bearer token cannot be determined or is ambiguous."""


class MissingTokenError(TokenError):
    def __init__(self, agency_id: str, env_var: str) -> None:
        self.agency_id, self.env_var = agency_id, env_var
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"no token for agency {self.agency_id!r}: environment variable {self.env_var} is "
            f"unset or empty (set it, or {DEV_TOKENS_ENV}=1 for development tokens)"
        )


class AmbiguousTokenError(TokenError):
    def __init__(self, agency_ids: Iterable[str]) -> None:
        self.agency_ids = tuple(agency_ids)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"one token authenticates several agencies: {', '.join(self.agency_ids)}"
