"""The :class:`Journal`: the one API through which messages, cases, deliveries, events and
correlation are stored and read.

Design rules
    * Every public method is one short transaction on a pooled connection; the class holds no
      per-call state and may be shared by FastAPI worker threads and Prefect task threads.
    * Every state change writes its event in the same transaction; a message, its deliveries and
      its events commit together or not at all.
    * Methods return frozen records (:mod:`connectors.journal.records`), never ORM objects.
    * Database errors are translated into :mod:`connectors.exceptions` (URL password masked).
    * Idempotent where callers retry: recording a message or creating a case twice returns the
      first record; a repeated state change to the current state is a no-op.

Structure
    The methods live in repositories by aggregate (:mod:`connectors.journal.repo`: cases,
    messages, deliveries, events, expectations), mixins on one shared
    :class:`~connectors.journal.repo.base.JournalBase`; :class:`Journal` combines them and adds
    construction and the schema check.

Correlation (replies to procedures)
    Inbound messages start ``unmatched`` and are kept until a procedure claims them. A flow that
    waits registers an expectation (:meth:`Journal.expect_reply`), which is matched at once against
    kept messages (reply arrived early). The inbox calls :meth:`Journal.match_reply` after
    recording a message; it returns the satisfied expectation (with the flow run id to resume) or
    ``None`` (the message stays listed in :meth:`Journal.unmatched_replies`). Both sides take a
    lock so that a reply and an expectation arriving at the same moment always meet. The flow then
    reads the payload and calls :meth:`Journal.consume_reply`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..exceptions import JournalError, JournalSchemaError
from . import migrate
from .blobs import BlobStore
from .engine import JournalOptions
from .keyfile import journal_key_for
from .repo import (
    CaseRepository,
    DeliveryRepository,
    EventRepository,
    ExpectationRepository,
    MessageRepository,
    SecretRepository,
)
from .repo.base import (
    T_ATTEMPTS,
    T_CASES,
    T_DELIVERIES,
    T_EVENTS,
    T_EXPECTATIONS,
    T_MESSAGES,
    retry_on_disconnect,
)

__all__ = [
    "T_ATTEMPTS",
    "T_CASES",
    "T_DELIVERIES",
    "T_EVENTS",
    "T_EXPECTATIONS",
    "T_MESSAGES",
    "Journal",
]


class Journal(
    CaseRepository,
    MessageRepository,
    DeliveryRepository,
    EventRepository,
    ExpectationRepository,
    SecretRepository,
):
    """The message journal. See the module docstring for the rules.

    ``url`` is a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``). Without
    ``url`` the settings come from the environment (:class:`connectors.config.Settings`),
    including ``AMTSBOTE_JOURNAL_KEY`` unless ``key`` is given. ``key``: Fernet key(s) to
    encrypt payloads (comma-separated to rotate). ``create=True`` creates the data directory and
    migrates the database to the current schema; otherwise the schema must be current
    (``amtsbote db upgrade``) or :class:`JournalSchemaError` is raised.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key: str | bytes | Sequence[str | bytes] | None = None,
        create: bool = False,
        options: JournalOptions | None = None,
    ) -> None:
        super().__init__(url, key=key, create=create, options=options)
        try:
            if create:
                self.upgrade()
            else:
                self.check_schema()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_env(
        cls,
        *,
        create: bool = False,
        options: JournalOptions | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Journal:
        """A journal configured by ``AMTSBOTE_DATABASE_URL``/``AMTSBOTE_DATA_DIR``/
        ``AMTSBOTE_JOURNAL_KEY``; without a key the data dir's key file (created on first use,
        :func:`connectors.journal.keyfile.journal_key_for`)."""
        settings = Settings.from_env(environ)
        if create:
            settings.ensure_data_dir()
        key = journal_key_for(settings)
        return cls(settings.database_url, key=key, create=create, options=options)

    def __repr__(self) -> str:
        return f"Journal({self._url!r}, encrypted={self._codec.encrypts})"

    @property
    def blobs(self) -> BlobStore:
        """Primary documents as content-addressed files (:mod:`connectors.journal.blobs`), made
        on first use."""
        store: BlobStore | None = self.__dict__.get("_blob_store")
        if store is None:
            store = self.__dict__["_blob_store"] = BlobStore.for_journal(self)
        return store

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def upgrade(self) -> migrate.UpgradeResult:
        """Migrate the database to the newest schema (Alembic ``upgrade head``). Idempotent."""
        try:
            return migrate.upgrade(self._engine)
        except JournalError:
            raise
        except SQLAlchemyError as exc:
            raise self._translate(exc, "upgrade") from exc

    @retry_on_disconnect
    def schema_revision(self) -> str | None:
        """The schema revision of the database (``None``: not initialised)."""
        with self._tx("schema_revision", write=False) as conn:
            return migrate.current_revision(conn)

    def check_schema(self) -> None:
        """Raise :class:`JournalSchemaError` unless the database is at the current revision."""
        current = self.schema_revision()
        head = migrate.head_revision()
        if current == head:
            return
        if current is None:
            problem = "has no journal schema; run `amtsbote db upgrade`"
        else:
            problem = (
                f"is at schema revision {current}, this code needs {head}; "
                "run `amtsbote db upgrade` (or update amtsbote if the database is newer)"
            )
        raise JournalSchemaError(problem, url=self._url)
