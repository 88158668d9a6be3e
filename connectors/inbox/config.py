"""Settings of the inbox service, and which journal an inbox writes to.

:class:`InboxConfig` holds the limits and policies of one inbox (size limit, author check,
mailbox page size, schema path). The agency, the journal and the directory are arguments of
:func:`connectors.inbox.create_app`, not settings.

Which journal an inbox uses (:func:`journal_url_for`)
    1. an explicit URL (``amtsbote inbox serve --database-url URL``) always wins;
    2. the **home agency** — the agency this installation runs its procedures for, named by
       ``AMTSBOTE_HOME_AGENCY`` (default ``stadt-paderborn``) — uses the main journal:
       ``AMTSBOTE_DATABASE_URL``, else ``sqlite:///<data dir>/journal.sqlite``. Its inbox, its
       outbox and its Prefect flows then share one journal, so replies meet the expectations of
       the flows and the transport report of a message covers both directions;
    3. every other agency gets its own SQLite file ``<data dir>/inbox/<agency id>.sqlite``. This
       is the sane default for local multi-agency runs (``make demo`` starts one inbox per
       agency on loopback): the partner agencies' inboxes must not write into the home agency's
       journal, and one file per agency keeps their data apart and easy to inspect or delete.

    ``<data dir>`` is ``AMTSBOTE_DATA_DIR`` (default ``./var``, see :mod:`connectors.config`).
    Payloads are encrypted with ``AMTSBOTE_JOURNAL_KEY`` in every journal when it is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xoev.container import ContainerLimits
from xoev.parsing import LIBXML2_MAX_DEPTH, ParserConfig

from ..config import Settings
from ..exceptions import ConfigError
from ..settings import AmtsboteSettings
from .exceptions import InboxConfigError
from .fairqueue import FairQueue

__all__ = [
    "DEFAULT_HOME_AGENCY",
    "HOME_AGENCY_ENV",
    "INBOX_DIR_NAME",
    "MAX_CONTAINER_BYTES_ENV",
    "QUEUE_PER_SENDER_ENV",
    "QUEUE_TOTAL_ENV",
    "InboxConfig",
    "home_agency",
    "journal_url_for",
]

HOME_AGENCY_ENV = "AMTSBOTE_HOME_AGENCY"
#: Overrides :attr:`InboxConfig.max_container_bytes` (bytes) in :meth:`InboxConfig.from_env`.
MAX_CONTAINER_BYTES_ENV = "AMTSBOTE_INBOX_MAX_CONTAINER_BYTES"
#: Override :attr:`InboxConfig.queue_per_sender` / :attr:`InboxConfig.queue_total`.
QUEUE_PER_SENDER_ENV = "AMTSBOTE_INBOX_QUEUE_PER_SENDER"
QUEUE_TOTAL_ENV = "AMTSBOTE_INBOX_QUEUE_TOTAL"
#: InboxConfig field → the settings field it is read from in :meth:`InboxConfig.from_env`.
_FROM_ENV = {
    "max_container_bytes": "inbox_max_container_bytes",
    "queue_per_sender": "inbox_queue_per_sender",
    "queue_total": "inbox_queue_total",
}
DEFAULT_HOME_AGENCY: str = AmtsboteSettings.model_fields["home_agency"].default
#: Directory below the data directory holding the journals of non-home inboxes.
INBOX_DIR_NAME = "inbox"
_MiB = 1024 * 1024
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class InboxConfig:
    """Limits and policies of one inbox service."""

    max_body_bytes: int = 10 * _MiB
    """Largest accepted message body in bytes (413 beyond). Checked against ``Content-Length``
    before reading and while streaming the body, so no more than this is ever read."""
    max_depth: int = LIBXML2_MAX_DEPTH
    """Deepest accepted element nesting (400 beyond); at most libxml2's 256."""
    require_author_match: bool = True
    """Refuse (403 ``author_mismatch``) a message whose Nachrichtenkopf names an author other
    than the authenticated sending agency: an agency may only send in its own name. Switch off
    only for relays that forward messages of others."""
    workers: int = 2
    """Messages parsed, validated and stored at the same time (threads). More does not help:
    the work is mostly CPU under one GIL, and threads that wait for the database must win the
    GIL back from busy ones (`bench/inbox.py` on 2 cores, PostgreSQL, 32 clients: 2 threads
    ≈ 630 msg/s, 8 threads ≈ 500 msg/s). Raise it when the database is far away (network
    round trips to overlap). Further requests wait their turn on the event loop (their bodies
    are read already), handed a worker round-robin by sender (:mod:`.fairqueue`)."""
    sender_workers: int | None = None
    """Workers one sender may hold at once; default all but one (``max(1, workers - 1)``), so
    that another sender's message starts at once even while one floods the inbox with
    expensive messages (:mod:`.fairqueue`)."""
    queue_per_sender: int = 32
    """Messages of one sender in progress at once — its body being read, waiting for a worker
    or worked on — before further ones are answered 429 ``sender_queue_full`` with
    ``Retry-After`` (:attr:`queue_retry_after`). Environment: ``AMTSBOTE_INBOX_QUEUE_PER_SENDER``.
    The default leaves room for the directory's ``concurrency`` (at most 8 there)."""
    queue_total: int = 64
    """Messages of all senders in progress at once before further ones are answered 503
    ``queue_full`` with ``Retry-After``; bounds the bodies held in memory (at most
    ``queue_total × max_body_bytes``). At least :attr:`queue_per_sender`. Environment:
    ``AMTSBOTE_INBOX_QUEUE_TOTAL``."""
    queue_retry_after: int = 1
    """Seconds sent as ``Retry-After`` with the queue's 429 and 503 answers."""
    mailbox_page_size: int = 100
    """Entries listed by ``GET /v1/mailbox`` without ``limit``."""
    mailbox_page_max: int = 1000
    """Largest ``limit`` accepted by ``GET /v1/mailbox``."""
    schema_path: tuple[Path, ...] = ()
    """Extra directories with XSD bundles and codelists (like ``--schema-path``); empty: the
    process-wide registry (built-ins plus ``AMTSBOTE_SCHEMA_PATH``)."""
    retry_after: int = 5
    """Seconds sent as ``Retry-After`` with 503 answers (journal unavailable)."""
    auth_failure_limit: int = 10
    """Refused logins (401/403) from one client address within :attr:`auth_failure_window`
    after which it is answered 429 until the window has passed (:mod:`.throttle`)."""
    auth_failure_window: float = 60.0
    """Seconds of the refused-login window per address."""
    docs: bool = True
    """Serve the OpenAPI description at ``/openapi.json`` and its viewer at ``/docs``."""
    max_container_bytes: int = 2 << 30
    """Largest accepted xdomea container body (``application/zip``) in bytes (413 beyond),
    checked like :attr:`max_body_bytes`; the body is spooled to a file, never held in memory.
    Environment: ``AMTSBOTE_INBOX_MAX_CONTAINER_BYTES`` (:meth:`from_env`)."""
    container_limits: ContainerLimits = field(default_factory=ContainerLimits)
    """What a container may hold (zip-bomb sizes and ratio, member count, XML size), see
    :class:`xoev.container.ContainerLimits`."""
    spool_dir: Path | None = None
    """Where container bodies are spooled while checked, and fetched containers rebuilt
    (temporary files, always removed); default ``<blob store root>/incoming`` — beside the
    journal's blobs, below the data directory."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1:
            raise InboxConfigError(
                "max_body_bytes", f"must be a positive integer, not {self.max_body_bytes!r}"
            )
        if not 1 <= self.max_depth <= LIBXML2_MAX_DEPTH:
            raise InboxConfigError(
                "max_depth", f"must be between 1 and {LIBXML2_MAX_DEPTH}, not {self.max_depth}"
            )
        if not 1 <= self.workers <= 256:
            raise InboxConfigError("workers", f"must be between 1 and 256, not {self.workers}")
        if self.sender_workers is not None and not 1 <= self.sender_workers <= self.workers:
            raise InboxConfigError(
                "sender_workers",
                f"must be between 1 and workers ({self.workers}), not {self.sender_workers}",
            )
        if not isinstance(self.queue_total, int) or self.queue_total < 1:
            raise InboxConfigError("queue_total", f"must be >= 1, not {self.queue_total!r}")
        if not isinstance(self.queue_per_sender, int) or not (
            1 <= self.queue_per_sender <= self.queue_total
        ):
            raise InboxConfigError(
                "queue_per_sender",
                f"must be between 1 and queue_total ({self.queue_total}), "
                f"not {self.queue_per_sender!r}",
            )
        if self.queue_retry_after < 0:
            raise InboxConfigError(
                "queue_retry_after", f"must be >= 0, not {self.queue_retry_after}"
            )
        if not 1 <= self.mailbox_page_size <= self.mailbox_page_max:
            raise InboxConfigError(
                "mailbox_page_size",
                f"must be between 1 and mailbox_page_max ({self.mailbox_page_max}), "
                f"not {self.mailbox_page_size}",
            )
        if self.auth_failure_limit < 1:
            raise InboxConfigError(
                "auth_failure_limit", f"must be >= 1, not {self.auth_failure_limit}"
            )
        if self.auth_failure_window <= 0:
            raise InboxConfigError(
                "auth_failure_window", f"must be > 0, not {self.auth_failure_window}"
            )
        if self.retry_after < 0:
            raise InboxConfigError("retry_after", f"must be >= 0, not {self.retry_after}")
        if not isinstance(self.max_container_bytes, int) or self.max_container_bytes < 1:
            raise InboxConfigError(
                "max_container_bytes",
                f"must be a positive integer, not {self.max_container_bytes!r}",
            )
        if not isinstance(self.container_limits, ContainerLimits):
            raise InboxConfigError("container_limits", "must be a xoev ContainerLimits")
        object.__setattr__(self, "schema_path", tuple(Path(p) for p in self.schema_path))
        if self.spool_dir is not None:
            object.__setattr__(self, "spool_dir", Path(self.spool_dir))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: object) -> InboxConfig:
        """``InboxConfig(**options)``, with ``max_container_bytes``, ``queue_per_sender`` and
        ``queue_total`` from ``AMTSBOTE_INBOX_MAX_CONTAINER_BYTES``,
        ``AMTSBOTE_INBOX_QUEUE_PER_SENDER`` and ``AMTSBOTE_INBOX_QUEUE_TOTAL`` when set and not
        given in ``options``."""
        for option, name in _FROM_ENV.items():
            if option in options:
                continue
            try:
                read = AmtsboteSettings.from_environ(environ, only=(name,))
            except ConfigError as exc:
                raise InboxConfigError(option, f"{exc.setting}={exc.problem}") from None
            value = getattr(read, name)
            if value is not None:
                options[option] = value
        return cls(**options)  # type: ignore[arg-type]

    def fair_queue(self) -> FairQueue:
        """A new :class:`~.fairqueue.FairQueue` with this inbox's workers and bounds."""
        return FairQueue(
            workers=self.workers,
            sender_workers=self.sender_workers,
            per_sender=self.queue_per_sender,
            total=self.queue_total,
            retry_after=self.queue_retry_after,
        )

    def parser_config(self) -> ParserConfig:
        """The hardened parser's limits for this inbox (strict: every DOCTYPE is refused)."""
        return ParserConfig(max_bytes=self.max_body_bytes, max_depth=self.max_depth, strict=True)


def home_agency(environ: Mapping[str, str] | None = None) -> str:
    """The home agency's id: ``AMTSBOTE_HOME_AGENCY``, default ``stadt-paderborn``."""
    return AmtsboteSettings.from_environ(environ, only=("home_agency",)).home_agency


def journal_url_for(
    agency_id: str,
    *,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The journal URL of ``agency_id``'s inbox (rules in the module docstring). Creates no
    file or directory."""
    if database_url:
        return database_url
    if not _SLUG.fullmatch(agency_id):
        raise InboxConfigError("agency", f"{agency_id!r} is not an agency id (slug)")
    settings = Settings.from_env(environ)
    if agency_id == home_agency(environ):
        return settings.database_url
    from sqlalchemy.engine import URL

    path = settings.data_dir / INBOX_DIR_NAME / f"{agency_id}.sqlite"
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)
