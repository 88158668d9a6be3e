"""The ``amtsbote`` command line.

Each sub-command lives in its own module in this package and exposes
``register(subparsers: argparse._SubParsersAction) -> None``; modules are discovered, so adding a
command is adding a module. A procedure family brings its own commands the same way: a ``cli``
module in its package (``flows/families/<family>/cli.py``) or an entry point in the group
``amtsbote.commands`` naming such a module — no code here changes. Modules import heavy things
(Prefect, SQLAlchemy, FastAPI) inside their handlers so that ``amtsbote validate`` stays fast.

Exit codes: 0 ok, 1 findings, 2 unusable input (argparse's own usage errors are 2 as well).
A batch exits with its worst result. A closed stdout (``amtsbote schemas | head -1``) ends any
command quietly with :data:`EXIT_BROKEN_PIPE` (141, 128 + SIGPIPE, as a shell reports a process a
closed pipe ended): stdout is pointed at ``/dev/null`` so that the interpreter's final flush does
not fail again, as the Python documentation on SIGPIPE recommends.

A command that talks to the Prefect server sets ``needs_prefect=True`` with its handler; without
``PREFECT_API_URL`` it exits 2 saying what to export instead of talking to a temporary server
Prefect would start for it alone (:func:`flows.cli._util.prefect_api_missing`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Sequence

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_UNUSABLE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amtsbote",
        description="XÖV messages between agencies, as Prefect flows.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for module_name in _family_command_modules():
        importlib.import_module(module_name).register(sub)
    return parser


def _family_command_modules() -> list[str]:
    """``cli`` modules of the built-in family packages and of the ``amtsbote.commands`` entry
    points (found without importing the families themselves)."""
    from importlib.metadata import entry_points

    from .. import families

    found = [
        f"{families.__name__}.{info.name}.cli"
        for info in sorted(pkgutil.iter_modules(families.__path__), key=lambda m: m.name)
        if info.ispkg
        and importlib.util.find_spec(f"{families.__name__}.{info.name}.cli") is not None
    ]
    found += [ep.value for ep in entry_points(group="amtsbote.commands")]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_prefect", False):
        from ._util import prefect_api_missing

        if (why := prefect_api_missing()) is not None:
            print(f"amtsbote {args.command}: {why}", file=sys.stderr)
            return EXIT_UNUSABLE
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
    except KeyboardInterrupt:
        print("amtsbote: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return int(code or 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for the closed pipe goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
