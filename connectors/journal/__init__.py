"""The message journal: the store every other part of amtsbote relies on.

What it keeps (tables, see :mod:`.models`): ``cases`` (procedure instances), ``messages`` (every
XÖV message received or sent, payload compressed and — with a key — encrypted), ``deliveries``
(one per message and recipient agency, with the states of an XTA-like Laufzettel),
``delivery_attempts``, ``events`` (append-only audit log, enforced by database triggers) and
``expectations`` (procedures waiting for replies); ``blobs`` and ``message_blobs`` record the
primary documents kept as content-addressed files beside the database (``journal.blobs``,
:mod:`.blobs`). The event log is sealed by a SHA-256 hash chain that also binds the message rows
(:mod:`.seal`; ``amtsbote journal verify``).

Use it through :class:`Journal`::

    from connectors.journal import Journal, MessageMeta

    journal = Journal.from_env()                  # AMTSBOTE_DATABASE_URL, AMTSBOTE_JOURNAL_KEY
    message, created = journal.record_inbound(xml_bytes, MessageMeta.from_info(info),
                                              sender_agency="psw:01003110")
    journal.payload(message.nachrichten_uuid)     # the original bytes, verified

Databases: SQLite (default ``<data dir>/journal.sqlite``, WAL) for single hosts and tests;
PostgreSQL (``postgresql+psycopg://…``) for production. The schema is created and migrated by
Alembic revisions shipped in this package: ``amtsbote db upgrade`` (or ``Journal(create=True)``).

Encryption at rest: the entry points (``Journal.from_env``, ``Journal()`` without URL, the CLI)
use ``AMTSBOTE_JOURNAL_KEY`` or else the data dir's ``journal.key``, created on first use
(:mod:`.keyfile`; ``AMTSBOTE_JOURNAL_PLAINTEXT=1`` opts out, with a warning). At the library level
``Journal(url)`` without ``key`` stores payloads compressed but NOT encrypted. No other column holds
personal data: metadata comes from the Nachrichtenkopf (agency ids, types, UUIDs), and callers
must keep ``reference``, ``summary``, event ``detail`` and error texts free of personal data.
"""

from __future__ import annotations

from .blobs import BlobRef, BlobStore, MessageFile
from .crypto import PayloadCodec, generate_key
from .engine import JournalOptions
from .migrate import UpgradeResult, head_revision
from .records import (
    DELIVERY_TRANSITIONS,
    AttemptRecord,
    CaseRecord,
    CaseStatus,
    CorrelationState,
    DeliveryRecord,
    DeliveryState,
    Direction,
    EventRecord,
    ExpectationRecord,
    ExpectationState,
    MessageMeta,
    MessageRecord,
    OutboxEntry,
    StatusChange,
    xdomea_message_uuid,
)
from .repo.secrets import keyed_uuid
from .store import Journal

__all__ = [
    "DELIVERY_TRANSITIONS",
    "AttemptRecord",
    "BlobRef",
    "BlobStore",
    "CaseRecord",
    "CaseStatus",
    "CorrelationState",
    "DeliveryRecord",
    "DeliveryState",
    "Direction",
    "EventRecord",
    "ExpectationRecord",
    "ExpectationState",
    "Journal",
    "JournalOptions",
    "MessageFile",
    "MessageMeta",
    "MessageRecord",
    "OutboxEntry",
    "PayloadCodec",
    "StatusChange",
    "UpgradeResult",
    "generate_key",
    "head_revision",
    "keyed_uuid",
    "xdomea_message_uuid",
]
