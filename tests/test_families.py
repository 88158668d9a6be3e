"""The family plug-in seam: registry, prefect.yaml agreement, start rules at the inbox hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_procedures import env  # noqa: F401  (the installation of test_procedures)

ROOT = Path(__file__).resolve().parents[1]


def _deployments() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return {d["name"]: d for d in data["deployments"]}


def _file_entrypoint(entrypoint: str) -> str:
    module, _, attr = entrypoint.partition(":")
    return f"{module.replace('.', '/')}.py:{attr}"


def test_prefect_yaml_has_a_deployment_and_trigger_per_procedure() -> None:
    from flows.families import BUILTIN, all_families

    deployments = _deployments()
    builtin = [f for f in all_families() if f.name in BUILTIN]
    assert {f.name for f in builtin} >= {"gewerbe"}
    for family in builtin:
        for proc in family.procedures:
            assert proc.name in deployments, f"prefect.yaml lacks a deployment {proc.name}"
            d = deployments[proc.name]
            assert d["entrypoint"] == _file_entrypoint(proc.entrypoint), proc.name
            assert (ROOT / d["entrypoint"].partition(":")[0]).is_file()
            matches = [t["match"].get("amtsbote.procedure") for t in d.get("triggers", [])]
            assert matches == [proc.name], f"{proc.name}: trigger matches {matches}"
            assert d.get("description"), proc.name


def test_prefect_yaml_has_no_family_deployment_the_registry_does_not_know() -> None:
    from flows.families import all_families

    known = {p.name for f in all_families() for p in f.procedures}
    for name, d in _deployments().items():
        if d["entrypoint"].startswith("flows/families/"):
            assert name in known, f"prefect.yaml deploys {name}, which no family declares"


def test_a_prefect_yaml_out_of_step_with_the_registry_is_caught(monkeypatch: Any) -> None:
    from flows.families import Procedure, get_family

    family = get_family("gewerbe")
    extra = Procedure("gewerbeneuanmeldung", "flows.families.gewerbe.procedures:x")
    monkeypatch.setattr(type(family), "procedures", (*family.procedures, extra))
    with pytest.raises(AssertionError, match="gewerbeneuanmeldung"):
        test_prefect_yaml_has_a_deployment_and_trigger_per_procedure()


def test_unknown_procedure_and_family_name_what_is_known() -> None:
    from flows.families import UnknownFamilyError, family_for_procedure, get_family

    with pytest.raises(UnknownFamilyError, match="gewerbeanmeldung"):
        family_for_procedure("gaststaette")
    with pytest.raises(UnknownFamilyError, match="unknown family 'nope'"):
        get_family("nope")


def test_routing_conditions_are_the_family_facts(tmp_path: Path) -> None:
    from connectors.directory import Directory
    from flows.exceptions import RoutingError
    from flows.routing import Routing

    bad = tmp_path / "routing.yaml"
    bad.write_text(
        "version: 1\nfamily: gewerbe\nsender: stadt-paderborn\nrules:\n"
        "  - id: a\n    recipient: it-nrw\n    message_type: sta.gewerbemeldung.0100\n"
        "    when: {aktenplan: '1.2'}\n"
        "  - id: b\n    recipient: it-nrw\n    message_type: sta.gewerbemeldung.0100\n"
        "    when: {wz: ['5x']}\n",
        encoding="utf-8",
    )
    with pytest.raises(RoutingError) as err:
        Routing.load(bad, directory=Directory.default())
    text = str(err.value)
    assert f"{bad}:8" in text and "aktenplan" in text and "meldungsart" in text
    assert f"{bad}:12" in text and "WZ prefix must be digits" in text


# --------------------------------------------------------------------------- start rules


@pytest.mark.integration
@pytest.mark.parametrize("sender", ["hwk-owl", "dguv"])
def test_a_sender_without_the_role_starts_nothing_and_is_recorded(env: Any, sender: str) -> None:  # noqa: F811
    uuid = env.submit("notification-anmeldung", by=sender)
    assert env.notified == []
    [refused] = env.journal.events(kind="case.refused")
    assert refused.nachrichten_uuid == uuid
    assert refused.detail["sender"] == sender
    assert "may not start" in refused.detail["reason"] and "Portal" in refused.detail["reason"]
    assert env.journal.list_cases() == []
    # the message itself is kept
    assert env.journal.get_message(uuid).message_type == "gwa.gewerbemeldung.0010"


@pytest.mark.integration
def test_the_portal_starts_the_procedure_of_the_meldungsart(env: Any) -> None:  # noqa: F811
    uuid = env.submit("notification-ummeldung")
    assert env.notified == [(uuid, "gewerbeummeldung")]
    assert env.journal.events(kind="case.refused") == []


def test_escalation_automations_cover_every_family_s_consultations() -> None:
    """One missing-reply automation per consultation rule of every family: the Aussonderung's
    offer (0501 → 0504, 0502) and handover (0503 → 0507, 0506) escalate like Gewerbe's."""
    from uuid import uuid4

    from flows.operations import AutomationSettings, desired_automations, with_family_routings
    from flows.routing import Routing

    routing = with_family_routings(Routing.default())
    names = {
        a.name
        for a in desired_automations(
            routing, AutomationSettings(), recover_id=uuid4(), escalate_id=uuid4()
        )
    }
    assert {
        "amtsbote-missing-reply-auslaenderbehoerde",
        "amtsbote-missing-reply-anbietung",
        "amtsbote-missing-reply-aussonderung",
    } <= names


def test_outgoing_uuids_are_keyed_stable_and_not_derivable_from_public_data() -> None:
    import uuid as _uuid

    from flows.families.gewerbe.family import message_uuid_for

    notification = str(_uuid.uuid4())
    key, other = b"k" * 32, b"o" * 32
    first = message_uuid_for(notification, "auslaenderbehoerde", key=key)
    assert first == message_uuid_for(notification.upper(), "auslaenderbehoerde", key=key)
    assert _uuid.UUID(first).version == 4
    assert first != message_uuid_for(notification, "auslaenderbehoerde", key=other)
    assert first != message_uuid_for(notification, "ihk", key=key)
    # the former derivation (UUID v5 of the notification and the rule) no longer predicts it
    old = _uuid.UUID("5b0f3b8e-2f0a-4d8e-9a55-0a7c1e0b7a11")
    assert first != str(_uuid.uuid5(old, f"{notification}/auslaenderbehoerde"))
