"""The journal's repositories, one per aggregate, combined by :class:`connectors.journal.Journal`.

=========================  ====================================================================
:mod:`.base`               engine, transactions, codec, error translation, input checks
:mod:`.rows`               rows to insert and selected rows to records
:mod:`.cases`              :class:`CaseRepository`: ``cases``
:mod:`.messages`           :class:`MessageRepository`: ``messages`` (payloads)
:mod:`.deliveries`         :class:`DeliveryRepository`: ``deliveries``, attempts, mailboxes
:mod:`.events`             :class:`EventRepository`: the append-only ``events``
:mod:`.expectations`       :class:`ExpectationRepository`: ``expectations``, correlation
:mod:`.secrets`            :class:`SecretRepository`: ``journal_secrets``, keyed derivations
=========================  ====================================================================

The repositories are mixins on :class:`JournalBase` (one engine, one codec, shared by all), so
that a facade method is the repository's method itself: no delegation layer, no second object.
Across aggregates they use each other's connection-level functions only (``message_by_uuid``,
``add_delivery``, ``insert_events``), so each mixin stands on :class:`JournalBase` alone.
"""

from __future__ import annotations

from .base import JournalBase
from .cases import CaseRepository
from .deliveries import DeliveryRepository
from .events import EventRepository
from .expectations import ExpectationRepository
from .messages import MessageRepository
from .secrets import SecretRepository

__all__ = [
    "REPOSITORIES",
    "CaseRepository",
    "DeliveryRepository",
    "EventRepository",
    "ExpectationRepository",
    "JournalBase",
    "MessageRepository",
    "SecretRepository",
]

#: Every repository, in the order :class:`connectors.journal.Journal` combines them.
REPOSITORIES: tuple[type[JournalBase], ...] = (
    CaseRepository,
    MessageRepository,
    DeliveryRepository,
    EventRepository,
    ExpectationRepository,
    SecretRepository,
)
