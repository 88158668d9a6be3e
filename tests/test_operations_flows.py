"""The operations flows (``recover``, ``escalate``) as a worker runs them: loaded from the
entrypoint of their deployment (:func:`flows.operations.ensure_operations_deployments`) and run
against the real Prefect server. Prefect extracts a deployment's flow function from its file
(``<ast>``); a relative import inside it fails there although the package imports fine — the
automations then start runs that crash."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime import use_runtime

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AMTSBOTE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AMTSBOTE_DATABASE_URL", raising=False)
    previous = use_runtime(None)  # built from this environment on first use
    try:
        yield
    finally:
        use_runtime(previous)


def _entrypoints() -> dict[str, str]:
    """name → entrypoint, as ensure_operations_deployments writes them."""
    import inspect

    from flows.operations import escalate, pools, recover

    source = inspect.getsource(pools.ensure_operations_deployments)
    template = 'entrypoint=f"flows/operations/recovery.py:{fn.fn.__name__}"'
    assert template in source, "the entrypoint of the operations deployments changed"
    return {f.name: f"flows/operations/recovery.py:{f.fn.__name__}" for f in (recover, escalate)}


def test_the_entrypoints_exist_and_name_the_flows() -> None:
    from prefect.flows import load_flow_from_entrypoint

    for name, entrypoint in _entrypoints().items():
        path = ROOT / entrypoint.split(":", 1)[0]
        assert path.is_file(), entrypoint
        assert load_flow_from_entrypoint(str(path) + ":" + entrypoint.split(":")[1]).name == name


def test_escalate_runs_from_its_entrypoint(
    prefect_server: object, fresh_runtime: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(ROOT)
    escalate = load_flow_from_entrypoint(_entrypoints()["escalate"])
    sent = str(uuid.uuid4())
    result = asyncio.run(escalate(consultation=f"amtsbote.consultation.{sent}"))
    assert result == {"case_id": None, "outcome": "unknown-message", "nachrichten_uuid": sent}
