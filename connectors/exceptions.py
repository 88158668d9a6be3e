"""Exceptions of the ``connectors`` package.

Every error raised by connectors code derives from :class:`ConnectorError`; third-party errors
(SQLAlchemy, psycopg, cryptography, httpx, …) are translated at the boundary with ``raise … from``.
Messages carry context (message UUID, case id, delivery id, state, setting name) and never personal
data, so they may be logged and shown in Prefect. Database URLs in messages have their password
masked.

::

    ConnectorError
    ├── ConfigError                      bad AMTSBOTE_* setting (also a ValueError)
    ├── JournalError                     anything the message journal refuses or cannot do
    │   ├── JournalDatabaseError         database unreachable / failed (URL shown without password)
    │   │   └── JournalSchemaError       database not migrated, or at an unknown revision
    │   ├── JournalValueError            bad argument: malformed UUID, unknown state (ValueError)
    │   ├── JournalNotFoundError         no such case/message/delivery/expectation (LookupError)
    │   │   └── PayloadPurgedError       the message is kept, its payload was purged (retention)
    │   ├── JournalConflictError         same key, different content
    │   │   ├── MessageConflictError     nachrichtenUUID recorded again with another payload
    │   │   └── CaseConflictError        case_id created again for another procedure
    │   ├── InvalidTransitionError       a state change the state machine does not allow
    │   ├── JournalKeyError              journal key invalid, missing or wrong for a payload
    │   └── PayloadIntegrityError        stored payload corrupt: SHA-512 or decompression failed
    ├── DirectoryError                   (connectors.directory) also a ValueError
    │   ├── InvalidDirectoryError        agencies.yaml unusable (file:line problems)
    │   ├── UnknownAgencyError           no such agency (also a LookupError)
    │   ├── UnknownRoleError             no agency with that role (also a LookupError)
    │   └── TokenError                   bearer tokens
    │       ├── MissingTokenError        an agency's token variable is not set
    │       └── AmbiguousTokenError      one token configured for several agencies
    ├── CertificateError                 (connectors.certificates) malformed fingerprint, unusable
    │                                    certificate/key/CA file (names it; also a ValueError)
    ├── SendError                        (connectors.senders.exceptions) a delivery failed
    │   ├── TransientSendError           timeout, refused/reset, 408/425/429, 5xx: retry
    │   └── PermanentSendError           other 4xx, bad receipt, TLS failure: do not retry
    ├── SenderConfigError                (connectors.senders.exceptions) a sender cannot be built
    │                                    (also a ValueError)
    ├── Refused                          (connectors.transfer.layout) an accept callback refuses a
    │                                    transfer file for good → .rejected/ (also a ValueError)
    ├── TransferError                    (connectors.transfer.layout) a transfer area cannot be
    │                                    listed/read/written; .transient, .status_code (senders
    │                                    translate it into Transient-/PermanentSendError)
    └── InboxError                       (connectors.inbox.exceptions) inbox service errors
        ├── InboxConfigError             unusable InboxConfig / agency (also a ValueError)
        ├── InboxServerError             the server did not start or stop in time
        └── ApiError                     one request refused (status, code, detail)

Nothing in ``connectors`` derives from a built-in exception alone: where a built-in base is
useful to callers (``ValueError``, ``LookupError``) it is a second base beside the tree's
(``tests/test_layers.py`` checks this for every class).

Each subtree lives in its own module and derives from :class:`ConnectorError` defined here.
"""

from __future__ import annotations

__all__ = [
    "CaseConflictError",
    "ConfigError",
    "ConnectorError",
    "InvalidTransitionError",
    "JournalConflictError",
    "JournalDatabaseError",
    "JournalError",
    "JournalKeyError",
    "JournalNotFoundError",
    "JournalSchemaError",
    "JournalValueError",
    "MessageConflictError",
    "PayloadIntegrityError",
    "PayloadPurgedError",
]


class ConnectorError(Exception):
    """Base of every error raised by ``connectors``."""


class ConfigError(ConnectorError, ValueError):
    """An ``AMTSBOTE_*`` setting is unusable. ``setting`` names the variable."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(setting, problem)
        self.setting = setting
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}"


# --------------------------------------------------------------------------- journal


class JournalError(ConnectorError):
    """Base of the message journal's errors (``connectors.journal``)."""


class JournalDatabaseError(JournalError):
    """The journal database failed or cannot be reached. ``url`` has its password masked."""

    def __init__(
        self,
        problem: str,
        *,
        url: str | None = None,
        operation: str | None = None,
        disconnected: bool = False,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.url = url
        self.operation = operation
        self.disconnected = disconnected
        """The connection was lost (server restart, network): retrying may succeed."""

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(self.operation)
        if self.url:
            parts.append(f"journal database {self.url}")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.problem}" if prefix else self.problem


class JournalSchemaError(JournalDatabaseError):
    """The database has no journal schema, or not the revision this code needs.

    Fix: ``amtsbote db upgrade`` (or ``Journal(..., create=True)``)."""


class JournalValueError(JournalError, ValueError):
    """A bad argument; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class JournalNotFoundError(JournalError, LookupError):
    """No such ``kind`` (case, message, delivery, expectation) with key ``key``."""

    def __init__(self, kind: str, key: object, *, detail: str | None = None) -> None:
        super().__init__(kind, key)
        self.kind = kind
        self.key = key
        self.detail = detail

    def __str__(self) -> str:
        text = f"no {self.kind} {self.key} in the journal"
        return f"{text} ({self.detail})" if self.detail else text


class PayloadPurgedError(JournalNotFoundError):
    """The message is in the journal, but retention replaced its payload by a tombstone."""

    def __init__(self, nachrichten_uuid: str) -> None:
        super().__init__("payload", nachrichten_uuid)
        self.nachrichten_uuid = nachrichten_uuid

    def __str__(self) -> str:
        return (
            f"payload of message {self.nachrichten_uuid} was purged by the retention policy; "
            "its metadata, SHA-512 and history are kept (events retention.purged)"
        )


class JournalConflictError(JournalError):
    """The same key was recorded before with different content."""


class MessageConflictError(JournalConflictError):
    """A nachrichtenUUID arrived again with a different payload or metadata. The first one stays."""

    def __init__(self, nachrichten_uuid: str, direction: str, problem: str) -> None:
        super().__init__(nachrichten_uuid, direction, problem)
        self.nachrichten_uuid = nachrichten_uuid
        self.direction = direction
        self.problem = problem

    def __str__(self) -> str:
        return (
            f"message {self.nachrichten_uuid} ({self.direction}) is already in the journal "
            f"with {self.problem}"
        )


class CaseConflictError(JournalConflictError):
    """A case id exists already with a different procedure."""

    def __init__(self, case_id: str, problem: str) -> None:
        super().__init__(case_id, problem)
        self.case_id = case_id
        self.problem = problem

    def __str__(self) -> str:
        return f"case {self.case_id} exists already with {self.problem}"


class InvalidTransitionError(JournalError):
    """A state change not allowed by the state machine of ``kind`` (delivery, case, …)."""

    def __init__(
        self, kind: str, key: object, from_state: str, to_state: str, *, allowed: tuple[str, ...]
    ) -> None:
        super().__init__(kind, key, from_state, to_state)
        self.kind = kind
        self.key = key
        self.from_state = from_state
        self.to_state = to_state
        self.allowed = allowed

    def __str__(self) -> str:
        allowed = ", ".join(self.allowed) if self.allowed else "none (final state)"
        return (
            f"{self.kind} {self.key}: transition {self.from_state} → {self.to_state} not allowed "
            f"(allowed from {self.from_state}: {allowed})"
        )


class JournalKeyError(JournalError):
    """The journal key is invalid, missing for an encrypted payload, or not the one used.

    Never contains key material. ``nachrichten_uuid`` is set when a payload could not be read."""

    def __init__(self, problem: str, *, nachrichten_uuid: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.nachrichten_uuid = nachrichten_uuid

    def __str__(self) -> str:
        if self.nachrichten_uuid:
            return f"payload of message {self.nachrichten_uuid}: {self.problem}"
        return self.problem


class PayloadIntegrityError(JournalError):
    """A stored payload does not decompress or does not match its recorded SHA-512."""

    def __init__(self, nachrichten_uuid: str, problem: str) -> None:
        super().__init__(nachrichten_uuid, problem)
        self.nachrichten_uuid = nachrichten_uuid
        self.problem = problem

    def __str__(self) -> str:
        return (
            f"payload of message {self.nachrichten_uuid} failed its integrity check: {self.problem}"
        )
