"""Property-based API tests of the inbox with schemathesis, generated from its own OpenAPI
description and run against the ASGI app (real journal on SQLite, real directory). Whatever
schemathesis sends — random bodies, headers, UUIDs, limits — the inbox must never answer 5xx and
its answers must match what the description promises (status codes, content types, schemas).

Bounded: a few dozen examples per operation, no deadline (the journal writes to disk)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from test_inbox_support import Messages, auth, make_directory, table_counts

from connectors.inbox import InboxConfig, create_app
from connectors.journal import Journal

HOME = "stadt-paderborn"
EXAMPLES = 40


@dataclass
class Api:
    schema: Any
    url: str


@pytest.fixture(scope="module")
def inbox_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'journal.sqlite'}"
    directory = make_directory()
    with Journal(url, create=True) as journal:
        app = create_app(
            HOME,
            journal=journal,
            directory=directory,
            config=InboxConfig(
                max_body_bytes=65536,
                # every generated call without a valid token must read 401, not be throttled
                auth_failure_limit=1_000_000,
            ),
        )
        # one real message in ihk-owl's mailbox, so that not every lookup is a miss
        factory = Messages(directory.get(HOME), directory.get("ihk-owl"))
        app.state.inbox.accept(factory.new()[1], directory.get(HOME))
        yield Api(schemathesis.openapi.from_asgi("/openapi.json", app), url)


#: Every operation of the description (a test checks that this list is complete).
OPERATIONS = [
    ("GET", "/healthz"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages/{nachrichten_uuid}/status"),
    ("GET", "/v1/mailbox"),
    ("GET", "/v1/mailbox/{nachrichten_uuid}"),
    ("POST", "/v1/mailbox/{nachrichten_uuid}/ack"),
]


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


def _ids(operation: tuple[str, str]) -> str:
    return f"{operation[0]} {operation[1]}"


def test_operations_listed(inbox_api: Api) -> None:
    operations = [result.ok() for result in inbox_api.schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == set(OPERATIONS)


# (The pytest plugin's ``schemathesis.pytest.from_fixture`` does not run under pytest 9.2 —
# it reads ``request.node._nodeid`` — so the hypothesis strategies are driven directly.)


@pytest.mark.parametrize("operation", OPERATIONS, ids=_ids)
def test_api_conforms_and_never_fails_with_authentication(
    inbox_api: Api, operation: tuple[str, str]
) -> None:
    """As an authenticated agency (the mailbox agency ihk-owl, so that its mailbox is hit):
    every default check of schemathesis (no 5xx, documented status codes, content types and
    response schemas)."""
    method, path = operation
    # An OpenAPI schema cannot say which strings are valid XÖV messages: random bodies that
    # match "a string" are rightly refused (400/422), which "positive data acceptance" would
    # count as a failure. Every other check applies.
    excluded = [positive_data_acceptance] if path == "/v1/messages" else []

    @given(case=inbox_api.schema[path][method].as_strategy())
    @_settings(EXAMPLES)
    def run(case: Any) -> None:
        case.call_and_validate(headers=auth("ihk-owl"), excluded_checks=excluded)

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=_ids)
def test_api_without_a_valid_token_is_401(inbox_api: Api, operation: tuple[str, str]) -> None:
    method, path = operation

    @given(case=inbox_api.schema[path][method].as_strategy())
    @_settings(10)
    def run(case: Any) -> None:
        response = case.call()
        if path == "/healthz":
            assert response.status_code == 200
        else:
            assert response.status_code == 401, response.text
            # no token, or one schemathesis made up
            assert response.json()["error"] in ("unauthorized", "invalid_token")

    run()


def test_random_input_stored_nothing(inbox_api: Api) -> None:
    """Schemathesis' random bodies cannot be valid messages from ihk-owl: only the seeded one
    is in the journal (this module's tests run in file order)."""
    assert table_counts(inbox_api.url)["messages"] == 1
