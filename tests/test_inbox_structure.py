"""The inbox package's structure: every JSON route answers through a ``response_model`` of
:mod:`connectors.inbox.schemas` (and FastAPI really applies it), the routes live in
:mod:`connectors.inbox.routes`, the service and the mailbox know no HTTP framework, and
:mod:`connectors.inbox.app` is wiring only."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute
from test_inbox_support import auth, make_directory

import connectors.inbox.app
from connectors.inbox import create_app, schemas
from connectors.inbox.xta import PORTS, XTA_PREFIX
from connectors.journal import Journal

INBOX = Path(connectors.inbox.app.__file__).parent
HOME = "stadt-paderborn"
#: Routes without a response_model, and why.
WITHOUT_MODEL = {
    ("GET", "/v1/mailbox/{nachrichten_uuid}"): "answers the XML as delivered, not JSON",
    ("GET", "/docs"): "the HTML viewer of /openapi.json (Swagger UI, served offline)",
}
SCHEMA_MODELS = {
    obj
    for obj in vars(schemas).values()
    if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == schemas.__name__
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    url = f"sqlite:///{tmp_path_factory.mktemp('structure') / 'journal.sqlite'}"
    with Journal(url, create=True) as journal:
        yield create_app(HOME, journal=journal, directory=make_directory())


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI >= 0.13x keeps an included router as one entry (no prefixes used here)
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    """The JSON routes (the XTA 2 SOAP ports are checked apart: :func:`_xta_routes`)."""
    return {
        (method, route.path): route
        for route in _api_routes(app.routes)
        for method in route.methods
        if not route.path.startswith(XTA_PREFIX)
    }


def _xta_routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    return {
        (method, route.path): route
        for route in _api_routes(app.routes)
        for method in route.methods
        if route.path.startswith(XTA_PREFIX)
    }


def test_xta_ports_are_soap_routes_of_their_own_module(app: FastAPI) -> None:
    routes = _xta_routes(app)
    assert set(routes) == {("POST", f"{XTA_PREFIX}/{port}") for port in PORTS}
    for key, route in routes.items():
        assert route.endpoint.__module__ == "connectors.inbox.xta", key
        assert route.response_model is None and not route.include_in_schema, key


def test_every_json_route_declares_a_response_model_from_schemas(app: FastAPI) -> None:
    routes = _routes(app)
    assert len(routes) == 7
    assert set(WITHOUT_MODEL) <= set(routes)
    for key, route in routes.items():
        if key in WITHOUT_MODEL:
            assert route.response_model is None, key
            continue
        assert route.response_model in SCHEMA_MODELS, f"{key}: {route.response_model!r}"
        # refusals answer ErrorModel; /healthz answers its 503 like its 200
        refusal = schemas.HealthModel if key == ("GET", "/healthz") else schemas.ErrorModel
        for status, response in route.responses.items():
            if int(status) >= 400:
                assert response["model"] is refusal, (key, status)


def test_routes_are_defined_in_the_routes_module(app: FastAPI) -> None:
    for key, route in _routes(app).items():
        assert route.endpoint.__module__ == "connectors.inbox.routes", key


def test_response_model_is_applied_to_the_answer(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field the model does not declare never reaches the client; a missing one is a 500."""
    service = app.state.inbox
    health = service.health
    monkeypatch.setattr(service, "health", lambda: (200, {**health()[1], "secret": "x"}))
    answer = _get(app, "/healthz")
    assert answer.status_code == 200
    assert set(answer.json()) == set(schemas.HealthModel.model_fields)
    monkeypatch.setattr(service, "health", lambda: (503, {"status": "unavailable"}))
    assert _get(app, "/healthz").status_code == 500
    monkeypatch.setattr(service.mailboxes, "list_messages", _extra_listing)
    listing = _get(app, "/v1/mailbox", headers=auth(HOME))
    assert listing.status_code == 200
    assert listing.json() == {"agency": HOME, "count": 0, "messages": []}


def _get(app: FastAPI, path: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as client:
            return await client.get(path, headers=headers)

    return anyio.run(call)


def _extra_listing(caller: Any, limit: int | None = None) -> dict[str, Any]:
    return {"agency": caller.id, "count": 0, "messages": [], "internal": True}


def _tree(name: str) -> ast.Module:
    path = INBOX / f"{name}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_app_module_is_wiring_only() -> None:
    text = (INBOX / "app.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    tree = _tree("app")
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    assert defined == ["create_app"]
    nested = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "create_app"
    ]
    assert nested == ["lifespan"]
    assert not any(isinstance(node, ast.ClassDef) for node in ast.walk(tree))


@pytest.mark.parametrize(
    "module", ["service", "mailbox", "xta_operations", "xta_send", "xta_state"]
)
def test_service_and_mailbox_know_no_http_framework(module: str) -> None:
    assert not _imported(_tree(module)) & {"fastapi", "starlette", "uvicorn", "anyio"}


def test_schemas_are_plain_models() -> None:
    assert _imported(_tree("schemas")) <= {"__future__", "typing", "pydantic"}
    assert {m.__name__ for m in SCHEMA_MODELS} >= {
        "ReceiptModel",
        "ErrorModel",
        "MailboxModel",
        "AckModel",
        "StatusModel",
        "HealthModel",
    }
