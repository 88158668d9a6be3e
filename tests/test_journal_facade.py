"""The :class:`Journal` facade over the repositories of :mod:`connectors.journal.repo`: every
repository is part of it, every repository method is reachable through it (no repository
shadows another's), the public API is exactly the documented one, and one journal serves all
aggregates in one database."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator

import pytest

import connectors.journal
import connectors.journal.store
from connectors.journal import (
    CorrelationState,
    DeliveryState,
    ExpectationState,
    Journal,
    MessageMeta,
)
from connectors.journal.repo import (
    REPOSITORIES,
    CaseRepository,
    DeliveryRepository,
    EventRepository,
    ExpectationRepository,
    JournalBase,
    MessageRepository,
    SecretRepository,
)

#: The public API of Journal, by where it lives. Changing it is a decision: update this table.
API: dict[type, set[str]] = {
    JournalBase: {"url", "encrypts", "engine", "dialect", "close"},
    Journal: {"from_env", "upgrade", "schema_revision", "check_schema", "blobs"},
    CaseRepository: {
        "create_case",
        "get_case",
        "list_cases",
        "update_case",
        "open_case_for_message",
    },
    MessageRepository: {
        "record_inbound",
        "record_outbound",
        "record_outbound_many",
        "get_message",
        "payload",
        "messages",
        "inbound_key",
    },
    DeliveryRepository: {
        "get_delivery",
        "deliveries",
        "due_deliveries",
        "attempts",
        "record_attempt",
        "transition",
        "mailbox",
        "mark_fetched",
        "transport_report",
    },
    EventRepository: {"log_event", "events"},
    ExpectationRepository: {
        "expect_reply",
        "check_expectation",
        "get_expectation",
        "expectations",
        "match_reply",
        "consume_reply",
        "unmatched_replies",
        "expire_expectation",
        "expire_overdue",
    },
    SecretRepository: {"secret"},
}
GEWERBEAMT = "psw:05774032"
KAMMER = "hwk:0004"


def _public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def test_every_repository_is_part_of_the_journal() -> None:
    assert set(REPOSITORIES) == set(API) - {JournalBase, Journal}
    for repository in REPOSITORIES:
        assert issubclass(Journal, repository), repository.__name__
        # each stands on the shared base alone: no repository builds on another
        assert repository.__bases__ == (JournalBase,), repository.__name__
    assert Journal.__mro__[-2:] == (JournalBase, object)


def test_every_repository_method_is_reachable_through_the_journal() -> None:
    owners: dict[str, str] = {}
    for repository in REPOSITORIES:
        for name, member in vars(repository).items():
            if name.startswith("__"):
                continue
            assert name not in owners, f"{name} in {owners.get(name)} and {repository.__name__}"
            owners[name] = repository.__name__
            assert inspect.getattr_static(Journal, name) is member, (
                f"Journal.{name} is not {repository.__name__}.{name}"
            )


@pytest.mark.parametrize("owner", list(API), ids=lambda cls: cls.__name__)
def test_facade_methods_exist_where_documented(owner: type) -> None:
    assert _public(owner) == API[owner]
    for name in API[owner]:
        member = getattr(Journal, name)
        assert callable(member) or isinstance(inspect.getattr_static(Journal, name), property)
        assert inspect.getdoc(member), f"Journal.{name} has no docstring"


def test_public_names_importable_as_before() -> None:
    assert connectors.journal.Journal is Journal is connectors.journal.store.Journal
    for name in connectors.journal.__all__:
        assert getattr(connectors.journal, name) is not None
    for name in ("T_CASES", "T_MESSAGES", "T_DELIVERIES", "T_EVENTS", "T_EXPECTATIONS"):
        assert getattr(connectors.journal.store, name).name == name[2:].lower()


@pytest.fixture
def journal(db_url: str) -> Iterator[Journal]:
    with Journal(db_url, create=True) as j:
        yield j


def _meta(
    message_type: str, *, author: str, reader: str, in_reply_to: str | None = None
) -> MessageMeta:
    return MessageMeta(
        nachrichten_uuid=str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type=message_type,
        author=author,
        reader=reader,
        in_reply_to=in_reply_to,
    )


def test_one_journal_serves_every_aggregate(journal: Journal) -> None:
    """A case, a message to it, its delivery, the events and a reply matched to an
    expectation, each through the facade and each seen by the other repositories."""
    request, _ = journal.record_inbound(
        b"<anzeige/>", _meta("0100", author=KAMMER, reader=GEWERBEAMT)
    )
    case, created = journal.open_case_for_message(
        request.nachrichten_uuid, procedure="gewerbeanmeldung", prefix="05774032-2026-"
    )
    assert created and case.case_id == "05774032-2026-000001"
    assert journal.get_message(request.nachrichten_uuid).case_id == case.case_id
    outbound, [delivery], _ = journal.record_outbound(
        b"<weitergabe/>",
        _meta("0500", author=GEWERBEAMT, reader=KAMMER),
        recipients=["hwk-owl"],
        case_id=case.case_id,
    )
    journal.record_attempt(delivery.id, ok=True, status_code=202, new_state="delivered")
    assert journal.get_delivery(delivery.id).state is DeliveryState.DELIVERED
    waiting = journal.expect_reply(
        case.case_id, in_reply_to=outbound.nachrichten_uuid, flow_run_id="run-1"
    )
    assert waiting.state is ExpectationState.WAITING
    reply, _ = journal.record_inbound(
        b"<rueckmeldung/>",
        _meta("0900", author=KAMMER, reader=GEWERBEAMT, in_reply_to=outbound.nachrichten_uuid),
    )
    matched = journal.match_reply(reply.nachrichten_uuid)
    assert matched is not None and matched.id == waiting.id
    assert journal.get_message(reply.nachrichten_uuid).correlation_state is (
        CorrelationState.MATCHED
    )
    kinds = [e.kind for e in journal.events(case_id=case.case_id)]
    assert kinds[:2] == ["case.created", "correlation.consumed"]
    assert {"message.queued", "delivery.state", "correlation.expected"} <= set(kinds)
    assert kinds[-1] == "correlation.matched"
    assert [c.to_state for c in journal.transport_report(outbound.nachrichten_uuid)] == [
        DeliveryState.CREATED,
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
    ]
