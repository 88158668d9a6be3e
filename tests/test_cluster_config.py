"""The shipped production configuration (deployments/systemd, deployments/kubernetes) is
consistent with the code: every ``amtsbote`` command line parses, every environment variable is
one the code or Prefect reads, the Kubernetes manifests load and reference what they define, the
work pool's base job template is valid JSON with the variables it uses."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

SYSTEMD = ROOT / "deployments" / "systemd"
K8S = ROOT / "deployments" / "kubernetes"
CODE_DIRS = ("flows", "connectors", "xoev")


def _code_text() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")
    )


def _prefect_settings() -> set[str]:
    from prefect.settings.legacy import _get_settings_fields
    from prefect.settings.models.root import Settings

    return set(_get_settings_fields(Settings))


def _env_files() -> dict[str, dict[str, str]]:
    out = {}
    for path in SYSTEMD.glob("*.env.example"):
        pairs = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                pairs[key.strip()] = value.strip()
        out[path.name] = pairs
    return out


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def _amtsbote_command_lines() -> list[list[str]]:
    """Every ``amtsbote …`` invocation in the units and manifests, as argv after the program."""
    lines: list[list[str]] = []
    for unit in SYSTEMD.glob("*.service"):
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = shlex.split(line.split("=", 1)[1])
                if argv[0].endswith("/amtsbote"):
                    lines.append([a.replace("%i", "stadt-paderborn") for a in argv[1:]])
    for doc in _k8s_docs():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            cmd = c.get("command", [])
            if cmd and cmd[0] == "amtsbote":
                lines.append(cmd[1:])
            elif cmd[:2] == ["sh", "-ec"]:
                lines += [
                    ln.split()[1:]
                    for ln in cmd[2].splitlines()
                    if ln.strip().startswith("amtsbote ")
                ]
    return lines


def test_amtsbote_command_lines_parse() -> None:
    from flows.cli import build_parser

    lines = _amtsbote_command_lines()
    commands = {argv[0] for argv in lines}
    assert {"inbox", "db", "limits", "automations"} <= commands
    parser = build_parser()
    for argv in lines:
        args = parser.parse_args(argv)  # SystemExit (a failure) when a line does not parse
        assert callable(args.handler), argv


def test_environment_variables_are_read_by_someone() -> None:
    code = _code_text()
    prefect = _prefect_settings()
    k8s_env = [
        doc["data"]
        for doc in _k8s_docs()
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "amtsbote-config"
    ]
    k8s_env += [doc["stringData"] for doc in _k8s_docs() if doc["kind"] == "Secret"]
    names = {k for env in _env_files().values() for k in env} | {k for env in k8s_env for k in env}
    assert names
    for name in sorted(names):
        if name.startswith("PREFECT_"):
            assert name in prefect, f"{name} is no Prefect 3.8 setting"
        elif name.startswith("AMTSBOTE_TOKEN_"):
            directory = (ROOT / "deployments" / "owl" / "agencies.yaml").read_text()
            assert f"token_env: {name}" in directory, name
        elif name.startswith("AMTSBOTE_"):
            # read through the settings model (a field), or named as a literal by the code
            from connectors.settings import AmtsboteSettings

            assert name in AmtsboteSettings.variables() or re.search(rf"[\"']{name}[\"']", code), (
                f"no code reads {name}"
            )
        else:
            assert name == "DO_NOT_TRACK", name


def test_kubernetes_manifests_reference_what_they_define() -> None:
    docs = _k8s_docs()
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Namespace", "amtsbote"),
        ("ConfigMap", "amtsbote-config"),
        ("ConfigMap", "amtsbote-directory"),
        ("Secret", "amtsbote-secrets"),
        ("Deployment", "prefect-server"),
        ("Service", "prefect-server"),
        ("Deployment", "amtsbote-worker"),
        ("Job", "amtsbote-deploy"),
    } <= defined
    refs: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, kind in (
                ("configMapRef", "ConfigMap"),
                ("secretRef", "Secret"),
                ("configMap", "ConfigMap"),
                ("secretKeyRef", "Secret"),
                ("persistentVolumeClaim", "PersistentVolumeClaim"),
            ):
                if key in node and isinstance(node[key], dict):
                    refs.append((kind, node[key].get("name") or node[key].get("claimName")))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(docs)
    template = json.loads((K8S / "work-pool-kubernetes.json").read_text(encoding="utf-8"))
    walk(template)
    assert refs
    for ref in refs:
        assert ref in defined, f"{ref} is referenced but not defined"
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            assert d["metadata"]["namespace"] == "amtsbote"
    server = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "prefect-server"
    )
    assert server["spec"]["replicas"] == 1 and server["spec"]["strategy"]["type"] == "Recreate"
    config = next(d for d in docs if d["metadata"]["name"] == "amtsbote-config")["data"]
    assert "prefect-server" in config["PREFECT_API_URL"]


def test_work_pool_template_uses_only_declared_variables() -> None:
    template = json.loads((K8S / "work-pool-kubernetes.json").read_text(encoding="utf-8"))
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"])))
    declared = set(template["variables"]["properties"])
    assert used <= declared, used - declared
    assert {"image", "namespace", "command", "env"} <= declared


@pytest.mark.parametrize("unit", sorted(p.name for p in SYSTEMD.glob("*.service")))
def test_systemd_units_are_complete(unit: str) -> None:
    text = (SYSTEMD / unit).read_text(encoding="utf-8")
    sections = re.findall(r"^\[(\w+)\]$", text, flags=re.M)
    assert sections[:2] == ["Unit", "Service"], sections
    assert re.search(r"^ExecStart=/", text, flags=re.M)
    assert "EnvironmentFile=/etc/amtsbote/" in text
    assert "User=amtsbote" in text
    if unit != "amtsbote-deploy.service":
        assert re.search(r"^Restart=", text, flags=re.M)
        assert "[Install]" in text
    if unit.startswith("amtsbote-worker"):
        assert "--pool amtsbote-process" in text


def test_docs_name_the_files_and_commands() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for path in [*SYSTEMD.iterdir(), *K8S.iterdir()]:
        assert path.name in doc, f"docs/operations.md does not mention {path.name}"
    for command in (
        "amtsbote db upgrade",
        "amtsbote limits sync",
        "amtsbote automations sync",
        "amtsbote serve",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY",
        "retention.md",
    ):
        assert command in doc, command
    assert Path(ROOT / "docs" / "operations.md").is_file()


@pytest.mark.parametrize(
    "path", [SYSTEMD / "amtsbote-deploy.service", K8S / "deploy-job.yaml"], ids=lambda p: p.name
)
def test_deploy_steps_make_the_work_pool_before_deploying(path: Path) -> None:
    """The pool must come from `amtsbote limits sync --pool-concurrency` (engine command,
    concurrency limit) before `prefect deploy` would create a plain one; never a worker --limit."""
    text = path.read_text(encoding="utf-8")
    pool = text.find("amtsbote limits sync --pool-concurrency")
    deploy = text.find("deploy --all")
    assert 0 <= pool < deploy, path.name
    assert "work-pool create" not in text
    for worker in (SYSTEMD / "amtsbote-worker@.service", K8S / "workers.yaml"):
        assert "--limit" not in worker.read_text(encoding="utf-8"), worker.name
