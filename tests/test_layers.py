"""The project's structure, checked on its source: layering of imports, no import cycle, and one
exception tree per package.

(a) Layers: ``flows`` → ``connectors`` → ``xoev``, never back. ``xoev`` is pure (no Prefect, no
    connectors, no HTTP or database framework); ``connectors`` has no Prefect. Every import of
    every module counts, also the ones inside functions and ``if TYPE_CHECKING:`` blocks.
(b) No import cycle between the project's modules. The graph has one edge per module-level
    import of a project module (imports inside functions run later and are the usual way to
    defer; ``TYPE_CHECKING`` blocks do not run), to the module named — a submodule when
    ``from package import name`` names one, else the package itself.
(c) Every exception class defined in ``xoev/`` derives from :class:`xoev.exceptions.XoevError`,
    every one in ``connectors/`` from :class:`connectors.exceptions.ConnectorError`; a built-in
    base (``ValueError``, ``LookupError``) may only be a second base. Exceptions to the rule are
    listed in ``ALLOWED_STRAYS`` with the reason.

Everything is read with :mod:`ast`; only (c) imports the modules that define classes, to follow
inheritance through imported bases.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.exceptions import ConnectorError
from xoev.exceptions import XoevError

ROOT = Path(__file__).resolve().parents[1]
#: Layer of each top-level package: a module may import its own layer and lower ones.
LAYERS = {"xoev": 0, "connectors": 1, "flows": 2}
#: Third-party packages a layer must not import.
FORBIDDEN = {
    "xoev": {"prefect", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "httpx"},
    "connectors": {"prefect"},
    "flows": set(),
}
#: Package base error per package whose exception classes (c) checks.
BASE_ERRORS: dict[str, type[BaseException]] = {"xoev": XoevError, "connectors": ConnectorError}
#: "module.Class" → why it may stay outside its package's tree. Empty: none may.
ALLOWED_STRAYS: dict[str, str] = {}
#: Alembic's scripts run inside Alembic (env.py reads its context on import): not imported.
NOT_IMPORTABLE = ("connectors.journal.migrations",)


@dataclass(frozen=True)
class Import:
    """One imported module as written (``target``), where, and whether it runs on import."""

    module: str
    target: str
    names: tuple[str, ...]
    where: str
    top_level: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node`` with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        runs = top_level and not isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        )
        if isinstance(child, ast.If) and _is_type_checking(child):
            runs = False
        yield child, runs
        yield from _walk(child, runs)


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node, top_level in _walk(tree, True):
        where = f"{shown}:{node.lineno}" if isinstance(node, ast.stmt) else str(shown)
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, (), where, top_level))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            found.append(Import(module, target, names, where, top_level))
    return found


IMPORTS = {module: _imports(module, path) for module, path in SOURCES.items()}


# ----------------------------------------------------------------------------- (a) layers


def _layer_violations(imports: dict[str, list[Import]]) -> list[str]:
    problems = []
    for module, items in imports.items():
        own = module.split(".")[0]
        for item in items:
            top = item.target.split(".")[0]
            if top in LAYERS and LAYERS[top] > LAYERS[own]:
                problems.append(f"{item.where}: {own} imports {item.target} (a higher layer)")
            elif top in FORBIDDEN[own]:
                problems.append(f"{item.where}: {own} must not import {top}")
    return problems


def test_imports_go_from_flows_to_connectors_to_xoev_only() -> None:
    assert _layer_violations(IMPORTS) == []


def test_layer_check_sees_imports_in_functions_and_relative_ones(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import prefect\n"
        "def later():\n    from flows import cli\n"
        "from ...flows import blocks\n"
        "from .. import records\n",
        encoding="utf-8",
    )
    items = _imports("connectors.journal.repo.probe", path)
    assert [(i.target, i.top_level) for i in items] == [
        ("typing", True),
        ("prefect", False),
        ("flows", False),
        ("connectors.flows", True),
        ("connectors.journal", True),
    ]
    problems = _layer_violations({"connectors.journal.repo.probe": items})
    assert [p.split(": ", 1)[1] for p in problems] == [
        "connectors must not import prefect",
        "connectors imports flows (a higher layer)",
    ]


# ----------------------------------------------------------------------------- (b) cycles


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in SOURCES}
    for module, items in IMPORTS.items():
        for item in items:
            if not item.top_level or item.target.split(".")[0] not in LAYERS:
                continue
            targets = [f"{item.target}.{name}" for name in item.names]
            submodules = [t for t in targets if t in SOURCES]
            if submodules:
                graph[module].update(submodules)
            names_package = len(submodules) < len(targets) or not item.names
            if names_package and item.target in SOURCES:
                graph[module].add(item.target)
        graph[module].discard(module)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or ``None``."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                path.append(nxt)
    return None


def test_no_import_cycle_between_modules() -> None:
    cycle = _cycle(_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_graph_follows_submodules_named_in_from_imports() -> None:
    graph = _edges()
    assert "connectors.journal.repo.cases" in graph["connectors.journal.repo"]
    assert "connectors.journal.migrate" in graph["connectors.journal.store"]


# ----------------------------------------------------------------------------- (c) exceptions


def _defined_classes() -> dict[str, list[tuple[str, int, bool]]]:
    """Module → (class name, line, defined at module level) of every class with bases."""
    found: dict[str, list[tuple[str, int, bool]]] = {}
    for module, path in SOURCES.items():
        if module.split(".")[0] not in BASE_ERRORS or module.startswith(NOT_IMPORTABLE):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top = {id(node) for node in tree.body}
        classes = [
            (node.name, node.lineno, id(node) in top)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.bases
        ]
        if classes:
            found[module] = classes
    return found


def _exception_classes() -> Iterator[tuple[str, type[BaseException], str]]:
    for module, classes in _defined_classes().items():
        loaded = importlib.import_module(module)
        for name, line, at_top in classes:
            where = f"{SOURCES[module].relative_to(ROOT)}:{line}"
            if not at_top:
                if name.endswith(("Error", "Exception")):
                    raise AssertionError(f"{where}: exception class {name} not at module level")
                continue
            cls = getattr(loaded, name)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                yield f"{module}.{name}", cls, where


def test_every_exception_class_derives_from_its_package_base() -> None:
    strays = []
    seen = set()
    for qualified, cls, where in _exception_classes():
        seen.add(qualified)
        base = BASE_ERRORS[qualified.split(".")[0]]
        if not issubclass(cls, base) and qualified not in ALLOWED_STRAYS:
            bases = ", ".join(b.__name__ for b in cls.__bases__)
            strays.append(f"{where}: {cls.__name__}({bases}) is no {base.__name__}")
    assert strays == []
    assert not set(ALLOWED_STRAYS) - seen, "ALLOWED_STRAYS names classes that do not exist"


def test_exception_check_sees_the_package_trees() -> None:
    found = {qualified for qualified, _, _ in _exception_classes()}
    assert {
        "connectors.senders.exceptions.SenderConfigError",
        "connectors.directory.errors.UnknownAgencyError",
        "connectors.inbox.exceptions.ApiError",
        "xoev.rueckmeldung.v1_0.RueckmeldungError",
        "xoev.exceptions.NotXMLError",
    } <= found


@pytest.mark.parametrize("package", sorted(BASE_ERRORS))
def test_package_base_is_a_plain_exception(package: str) -> None:
    base = BASE_ERRORS[package]
    assert base.__bases__ == (Exception,), f"{base.__name__} should derive from Exception only"
