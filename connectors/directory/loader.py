"""Reading ``agencies.yaml`` through YAML nodes, so that every problem has its file:line:column."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .. import yamlfile
from .checks import (
    _FIELDS,
    _INT,
    _NUMBER,
    _PATH_FIELDS,
    _STR,
    _STR_LIST,
    _role_problems,
    _value_problems,
    _Where,
)
from .errors import DirectoryProblem
from .model import DEFAULT_CONCURRENCY, DEFAULT_RATE_LIMIT, SCHEMA_VERSION, Agency, Channel

# --------------------------------------------------------------------------------------- loader

#: field values (those of the right type), where they were written, the agency if all is well
_Entry = tuple[dict[str, Any], _Where, Agency | None]


class _Loader:
    """Turns the composed YAML node tree into agencies, recording problems with positions."""

    def __init__(
        self, text: str, file: str, base_dir: Path, rebase: tuple[Path, Path] | None = None
    ) -> None:
        self.text, self.file, self.base_dir, self.rebase = text, file, base_dir, rebase
        self.problems: list[DirectoryProblem] = []

    def close(self) -> None:
        """Nothing to release (kept for callers of the former PyYAML-loader-based version)."""

    def add(self, node: yaml.Node | None, field_name: str, message: str) -> None:
        line, column = yamlfile.position(node)
        self.problems.append(DirectoryProblem(self.file, line, column, field_name, message))

    def scalar(self, node: yaml.Node) -> Any:
        return yamlfile.value(node)

    def mapping(self, node: yaml.Node, label: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.add(node, label, f"must be a mapping, got {_node_kind(node)}")
            return None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.add(key_node, label, "keys must be strings")
                continue
            if key in result:
                where = f"{label}.{key}" if label else key
                first = result[key][0].start_mark.line + 1
                self.add(key_node, where, f"duplicate key (first at line {first})")
                continue
            result[key] = (key_node, value_node)
        return result

    def typed(self, node: yaml.Node, kind: str, label: str) -> Any:
        """The value of ``node`` if it has type ``kind``; else record a problem, return None."""
        if kind == _STR_LIST:
            if not isinstance(node, yaml.SequenceNode):
                self.add(
                    node, label, f"wrong type: expected a list of strings, got {_node_kind(node)}"
                )
                return None
            items = [self.typed(item, _STR, f"{label}[{i}]") for i, item in enumerate(node.value)]
            return None if any(i is None for i in items) else items
        if not isinstance(node, yaml.ScalarNode):
            self.add(node, label, f"wrong type: expected {_a(kind)}, got {_node_kind(node)}")
            return None
        value = self.scalar(node)
        ok = (
            (kind == _STR and isinstance(value, str))
            or (kind == _INT and isinstance(value, int) and not isinstance(value, bool))
            or (
                kind == _NUMBER
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and value == value  # not NaN
                and value not in (float("inf"), float("-inf"))
            )
        )
        if not ok:
            self.add(
                node,
                label,
                f"wrong type: expected {_a(kind)}, got {_value_kind(value)} {_short(value)}",
            )
            return None
        return value

    def load(self) -> tuple[tuple[str, ...] | None, list[_Entry]]:
        try:
            root = yamlfile.compose(self.text, file=self.file)
        except yamlfile.YamlSyntaxError as exc:
            self.problems.append(
                DirectoryProblem(self.file, exc.line, exc.column, "", exc.problem.message)
            )
            return None, []
        if root is None:
            self.problems.append(DirectoryProblem(self.file, 1, 1, "", "the file is empty"))
            return None, []
        top = self.mapping(root, "")
        if top is None:
            return None, []
        for key, (key_node, _) in top.items():
            if key not in ("version", "roles", "agencies"):
                self.add(key_node, key, "unknown field (expected version, roles, agencies)")
        for key in ("version", "roles", "agencies"):
            if key not in top:
                self.add(root, key, "missing required field")
        if "version" in top:
            node = top["version"][1]
            version = self.typed(node, _INT, "version")
            if version is not None and version != SCHEMA_VERSION:
                self.add(
                    node,
                    "version",
                    f"unsupported version {version} (this amtsbote reads {SCHEMA_VERSION})",
                )
        roles: tuple[str, ...] | None = None
        if "roles" in top:
            node = top["roles"][1]
            declared = self.typed(node, _STR_LIST, "roles")
            if declared is not None:
                seen: set[str] = set()
                for item, value in zip(node.value, declared, strict=True):
                    if not value.strip():
                        self.add(item, "roles", "a role must not be empty")
                    elif value in seen:
                        self.add(item, "roles", f"duplicate role {value!r}")
                    seen.add(value)
                roles = tuple(dict.fromkeys(declared))
        entries: list[_Entry] = []
        if "agencies" in top:
            node = top["agencies"][1]
            if not isinstance(node, yaml.SequenceNode):
                self.add(
                    node,
                    "agencies",
                    f"wrong type: expected a list of agencies, got {_node_kind(node)}",
                )
            else:
                if not node.value:
                    self.add(node, "agencies", "the list of agencies is empty")
                for index, item in enumerate(node.value):
                    entry = self._agency(item, index, roles)
                    if entry is not None:
                        entries.append(entry)
        return roles, entries

    def _agency(
        self, node: yaml.Node, index: int, roles: tuple[str, ...] | None
    ) -> tuple[dict[str, Any], _Where, Agency | None] | None:
        label = f"agencies[{index}]"
        where = _Where(self.file, label, node.start_mark.line + 1, node.start_mark.column + 1)
        fields = self.mapping(node, label)
        if fields is None:
            return None
        before = len(self.problems)
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in fields.items():
            where.fields[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
            if key not in _FIELDS:
                self.add(
                    key_node,
                    f"{label}.{key}",
                    f"unknown field (expected one of {', '.join(_FIELDS)})",
                )
                continue
            if isinstance(value_node, yaml.SequenceNode):
                for i, item in enumerate(value_node.value):
                    where.fields[f"{key}[{i}]"] = (
                        item.start_mark.line + 1,
                        item.start_mark.column + 1,
                    )
            value = self.typed(value_node, _FIELDS[key][0], f"{label}.{key}")
            if value is not None:
                values[key] = value
        for key, (_, required, _) in _FIELDS.items():
            if required and key not in fields:
                self.add(node, f"{label}.{key}", "missing required field")
        for name in _PATH_FIELDS:
            if isinstance(values.get(name), str) and values[name].strip():
                path = Path(values[name]).expanduser()
                values[name] = os.path.normpath(self.base_dir / path)
                if self.rebase is not None and Path(values[name]).is_relative_to(self.rebase[0]):
                    inside = Path(values[name]).relative_to(self.rebase[0])
                    values[name] = os.path.normpath(self.rebase[1] / inside)
        self.problems.extend(_value_problems(values, where))
        if roles is not None and "roles" in values:
            self.problems.extend(_role_problems(values["roles"], roles, where))
        agency = None
        if len(self.problems) == before:
            agency = Agency(
                id=values["id"],
                name=values["name"].strip(),
                behoerdenkennung=values["behoerdenkennung"].strip(),
                roles=tuple(values["roles"]),
                channel=Channel(values["channel"]),
                token_env=values["token_env"],
                endpoint=values.get("endpoint"),
                mailbox_host=values.get("mailbox_host"),
                drop_dir=Path(values["drop_dir"]) if "drop_dir" in values else None,
                transfer_dir=Path(values["transfer_dir"]) if "transfer_dir" in values else None,
                webdav_url=values.get("webdav_url"),
                xta_url=values.get("xta_url"),
                webdav_user_env=values.get("webdav_user_env"),
                webdav_password_env=values.get("webdav_password_env"),
                webdav_ca=Path(values["webdav_ca"]) if "webdav_ca" in values else None,
                client_cert_sha256=values.get("client_cert_sha256"),
                tls_client_cert=_path_or_none(values.get("tls_client_cert")),
                tls_client_key=_path_or_none(values.get("tls_client_key")),
                tls_ca=_path_or_none(values.get("tls_ca")),
                rate_limit=float(values.get("rate_limit", DEFAULT_RATE_LIMIT)),
                concurrency=int(values.get("concurrency", DEFAULT_CONCURRENCY)),
            )
        return values, where, agency


def _var_rebase(file: Path, environ: Mapping[str, str] | None) -> tuple[Path, Path] | None:
    """``(var folder, data dir)`` for the directory file of an installed wheel, else None."""
    from ..settings import AmtsboteSettings, installed_var_dir

    var = installed_var_dir(file)
    if var is None:
        return None
    return var, AmtsboteSettings.from_environ(environ, only=("data_dir",)).data_dir


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar"


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
