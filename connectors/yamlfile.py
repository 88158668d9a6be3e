"""Reading YAML configuration files with line-precise errors: the shared part of the loaders of
the agency directory (:mod:`connectors.directory`), routing (:mod:`flows.routing`) and retention
(:mod:`connectors.journal.retention`).

* :func:`read_text` — the file as text; :class:`YamlReadError` when it is missing, unreadable or
  not UTF-8 (``problem`` says which, ``cause`` is the original exception);
* :func:`compose` — the node tree (safe: only standard tags are constructed later);
  :class:`YamlSyntaxError` with 1-based ``line``/``column`` when the text is not YAML;
* :func:`value` — the plain value of a node (safe construction);
* :func:`position` — 1-based ``(line, column)`` of a node; :func:`find` / :func:`line_of` — the
  node / line reached by a path of mapping keys and list indices (``("agencies", 3, "channel")``);
* :func:`duplicate_keys` — every key given twice in a mapping, anywhere in the tree (PyYAML
  silently keeps the last one);
* :class:`YamlProblem` — one defect, shown ``file:line:col: field: message``.

The loaders keep their own error types and texts; they use these pieces to find and read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .exceptions import ConnectorError

__all__ = [
    "Key",
    "YamlFileError",
    "YamlProblem",
    "YamlReadError",
    "YamlSyntaxError",
    "compose",
    "duplicate_keys",
    "find",
    "line_of",
    "position",
    "read_text",
    "value",
]

#: One step of a path into the tree: a mapping key or a list index.
Key = str | int


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """One defect of a YAML file: where (file, 1-based line and column), which field, what."""

    UNNAMED: ClassVar[str] = "<yaml>"

    file: str | None
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file or self.UNNAMED
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class YamlFileError(ConnectorError, ValueError):
    """A YAML file cannot be used; ``str()`` is its :class:`YamlProblem`."""

    def __init__(self, problem: YamlProblem) -> None:
        self.problem = problem
        super().__init__(str(problem))

    def __str__(self) -> str:
        return str(self.problem)


class YamlReadError(YamlFileError):
    """The file is missing, unreadable or not UTF-8 text. ``cause``: the original exception."""

    def __init__(self, problem: YamlProblem, cause: OSError | UnicodeDecodeError) -> None:
        super().__init__(problem)
        self.cause = cause


class YamlSyntaxError(YamlFileError):
    """The text is not YAML. ``line``/``column`` (1-based) where the parser gave up, ``reason``
    its short explanation; ``cause`` the PyYAML error."""

    def __init__(self, problem: YamlProblem, reason: str, cause: yaml.YAMLError) -> None:
        super().__init__(problem)
        self.line, self.column, self.reason, self.cause = (
            problem.line,
            problem.column,
            reason,
            cause,
        )


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of ``path``; :class:`YamlReadError` otherwise."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise YamlReadError(YamlProblem(str(file), None, None, "", message), exc) from exc
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
        raise YamlReadError(YamlProblem(str(file), None, None, "", message), exc) from exc


def compose(text: str, *, file: str | None = None) -> yaml.Node | None:
    """The node tree of one YAML document (``None`` when empty); :class:`YamlSyntaxError`."""
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        reason = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        problem = YamlProblem(file, line, column, "", f"not valid YAML: {reason}")
        raise YamlSyntaxError(problem, str(reason), exc) from exc
    finally:
        loader.dispose()


def value(node: yaml.Node) -> Any:
    """The value of ``node`` as ``yaml.safe_load`` would give it."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def position(node: yaml.Node | None) -> tuple[int | None, int | None]:
    """1-based ``(line, column)`` where ``node`` starts; ``(None, None)`` without a node."""
    if node is None:
        return None, None
    return node.start_mark.line + 1, node.start_mark.column + 1


def find(root: yaml.Node | None, path: Sequence[Key]) -> yaml.Node | None:
    """The node reached from ``root`` by mapping keys and list indices, or ``None``."""
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            node = next(
                (
                    v
                    for k, v in reversed(node.value)
                    if isinstance(k, yaml.ScalarNode) and k.value == step
                ),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step] if -len(node.value) <= step < len(node.value) else None
        else:
            return None
        if node is None:
            return None
    return node


def line_of(root: yaml.Node | None, path: Sequence[Key]) -> int | None:
    """The 1-based line of the node at ``path`` (see :func:`find`), or ``None``."""
    return position(find(root, path))[0]


def _label(path: Sequence[Key]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def duplicate_keys(root: yaml.Node | None, *, file: str | None = None) -> Iterator[YamlProblem]:
    """A problem ``field: duplicate key (first at line N)`` for every mapping key given twice."""

    def walk(node: yaml.Node, path: tuple[Key, ...]) -> Iterator[YamlProblem]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    line, column = position(key_node)
                    first = position(seen[key])[0]
                    yield YamlProblem(
                        file,
                        line,
                        column,
                        _label((*path, key)),
                        f"duplicate key (first at line {first})",
                    )
                elif key is not None:
                    seen[key] = key_node
                yield from walk(value_node, (*path, key if key is not None else "?"))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                yield from walk(item, (*path, index))

    if root is not None:
        yield from walk(root, ())
