"""Exceptions of the inbox service (``connectors.inbox``).

::

    ConnectorError                       (connectors.exceptions)
    └── InboxError                       anything the inbox service refuses or cannot do
        ├── InboxConfigError             bad InboxConfig value, an agency that cannot run an
        │                                inbox (unknown, not channel http), or an unusable TLS
        │                                file (setting ``tls``, names the file); also a ValueError
        ├── InboxServerError             the server did not start or stop in time (host, port)
        └── ApiError                     one request refused: HTTP status, error code, detail
                                         and extra JSON fields; rendered as
                                         ``{"error": code, "detail": text, ...}``

:class:`ApiError` never leaves the application: the app turns it into the JSON error answer.
Texts name what and where (header, line/XPath, agency id, nachrichtenUUID) and never contain
personal data from a payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import ConnectorError

__all__ = ["ApiError", "InboxConfigError", "InboxError", "InboxServerError"]


class InboxError(ConnectorError):
    """Base of the inbox service's errors."""


class InboxConfigError(InboxError, ValueError):
    """An inbox setting is unusable; ``setting`` names it (``agency``, ``max_body_bytes``, …)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(setting, problem)
        self.setting = setting
        self.problem = problem

    def __str__(self) -> str:
        return f"inbox {self.setting}: {self.problem}"


class InboxServerError(InboxError):
    """The HTTP server could not be started or stopped."""

    def __init__(self, problem: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.host = host
        self.port = port

    def __str__(self) -> str:
        if self.host is not None:
            return f"inbox server on {self.host}:{self.port}: {self.problem}"
        return f"inbox server: {self.problem}"


class ApiError(InboxError):
    """A request the inbox refuses. ``status``: HTTP status; ``code``: stable machine-readable
    error code (``invalid_message``, ``unauthorized``, …); ``detail``: text for humans naming
    what and where; ``extra``: further JSON fields (``findings``, ``line``, ``nachrichtenUUID``);
    ``headers``: extra response headers (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, code, detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}
