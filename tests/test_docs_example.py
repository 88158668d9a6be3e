"""docs/procedures.md's own example, built exactly as the page shows and run end to end.

The page's code blocks that begin with a ``# <path>`` comment are written to a package of their
own in a temporary directory (nothing of amtsbote is edited), the family is registered, and a
restaurant Anmeldung posted by the portal to the city's inbox starts the new procedure: both
consultations (Ausländerbehörde: answered by the simulated Kreis; Lebensmittelüberwachung:
answered by this test as the Kreis) are waited for before anything is distributed.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_procedures import Env, _approve_when_waiting, _reply

from connectors.journal import Direction

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "procedures.md"
_BLOCK = re.compile(r"```(?:python|yaml)\n# (?P<path>[\w/]+\.(?:py|yaml))\n(?P<body>.*?)```", re.S)


def docs_files() -> dict[str, str]:
    """``path → text`` of every code block of the page that names its file."""
    found = {m["path"]: f"# {m['path']}\n{m['body']}" for m in _BLOCK.finditer(DOCS.read_text())}
    assert set(found) == {
        "gaststaette/family.py",
        "gaststaette/procedures.py",
        "gaststaette/routing.yaml",
    }, sorted(found)
    return found


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Any]:
    from flows.families import register, unregister

    root = tmp_path / "example"
    for rel, text in docs_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "gaststaette" / "__init__.py").write_text("", encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        family = importlib.import_module("gaststaette.family").FAMILY
        register(family)
        yield family
    finally:
        unregister("gaststaette")
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "gaststaette" or m.startswith("gaststaette.")]:
            del sys.modules[name]


def test_the_docs_example_routing_is_checked_against_the_family_facts(
    example: Any, tmp_path: Path
) -> None:
    from connectors.directory import Directory
    from flows.exceptions import RoutingError
    from flows.routing import Routing

    routing = Routing.load(
        example.routing_path(), directory=Directory.default(), family="gaststaette"
    )
    assert [r.rule for r in routing.rules if r.consult] == [
        "auslaenderbehoerde",
        "lebensmittelueberwachung",
    ]
    assert routing.rules[0].reply_workdays == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(example.routing_path())
        .read_text()
        .replace("when: {nationality: non-eu}", "when: {staatsangehoerigkeit: non-eu}")
    )
    with pytest.raises(RoutingError) as err:
        Routing.load(bad, directory=Directory.default(), family="gaststaette")
    assert f"{bad}:" in str(err.value) and "staatsangehoerigkeit" in str(err.value)


def _answer_lue(env: Env, case_uuid: str, stop: threading.Event) -> threading.Thread:
    """The Kreis' Lebensmittelüberwachung (this test plays it): once the 0290 of the case is
    in the city's outbox, a Rückmeldung 01 to it."""
    from flows.families.gewerbe.family import message_uuid_for

    sent = message_uuid_for(
        case_uuid, "lebensmittelueberwachung", key=env.journal.secret("message-uuid")
    )

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            if env.journal.deliveries(nachrichten_uuid=sent, direction=Direction.OUTBOUND):
                _reply(env, sent, ergebnis="01")
                return
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True, name="lue")
    thread.start()
    return thread


def test_the_docs_example_procedure_runs_end_to_end(
    example: Any, tmp_path: Path, prefect_server: Any
) -> None:
    env = Env(tmp_path)
    stop = threading.Event()
    try:
        uuid = env.submit("notification-anmeldung")  # a restaurant, WZ 56
        # the variant family took the notification, not the built-in gewerbeanmeldung
        assert env.notified == [(uuid, "gaststaettenanmeldung")]
        flow = importlib.import_module("gaststaette.procedures").gaststaettenanmeldung
        lue = _answer_lue(env, uuid, stop)
        clerk = _approve_when_waiting(env)
        summary = asyncio.run(flow(message_uuid=uuid))
        lue.join(timeout=5)
        clerk.join(timeout=5)
        case = env.journal.get_case(summary["case_id"])
        assert case.procedure == "gaststaettenanmeldung" and case.status.value == "closed"
        replies = env.journal.events(case_id=case.case_id, kind="case.reply")
        assert sorted(e.detail["rule"] for e in replies) == [
            "auslaenderbehoerde",
            "lebensmittelueberwachung",
        ]
        # both consultations were answered before the first distributed message was recorded
        out = env.journal.messages(case_id=case.case_id, direction=Direction.OUTBOUND)
        types = sorted(m.message_type for m in out)
        assert types == [
            "abh.gewerbemeldung.0500",
            "fa.gewerbemeldung.0240",
            "lue.gewerbemeldung.0290",
            "sta.gewerbemeldung.0100",
        ]
        last_reply = max(e.at for e in replies)
        distributed = [
            m
            for m in out
            if m.message_type in ("fa.gewerbemeldung.0240", "sta.gewerbemeldung.0100")
        ]
        assert all(m.recorded_at >= last_reply for m in distributed)
        # the Gewerbe routing's other recipients (IHK, DGUV, …) are not in this variant's data
        assert env.installation.journal_of("ihk-owl").messages(direction=Direction.INBOUND) == []
    finally:
        stop.set()
        env.close()
