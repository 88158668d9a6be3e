"""``amtsbote validate`` and ``amtsbote schemas``.

::

    amtsbote validate FILE... [--schema-path DIR]... [--format text|json]
    amtsbote validate --kosit CONFIG [--kosit-repository DIR] FILE... [--format text|json]
    amtsbote schemas [--schema-path DIR]... [--format text|json]

``validate`` checks each file (hardened parse, XSD, codelists, business rules) and prints one
report per file on stdout, in the order the files were given; each report's findings are in line
order (findings without a line last, otherwise in the order the checks found them). Exit codes:

* 0 — every file is valid (no error findings; warnings are printed but do not count);
* 1 — at least one report has error findings;
* 2 — at least one file is unusable: missing/unreadable, too large, not XML, hostile XML
  (DOCTYPE, XXE, entity bomb, external DTD), wrong encoding, too deep, an **unknown document**
  (root namespace of no known standard version — there is nothing to check it against, so it is
  unusable input rather than a finding, like the KoSIT test case ``xy-unknown.xml``), or a known
  standard whose schema bundle is not on the schema path, or a version amtsbote knows of but does
  not ship ("XGewerbeanzeige 2.1 is not built in; put its bundle on the schema path"). The reason
  goes to stderr, naming the file. Other files are still checked.

A batch exits with its worst result: 2 over 1 over 0.

``--format json`` prints one array with **one entry per file given**, in order. A checked file is
its report (``source``, ``valid``, ``standard``, ``version``, ``message_type``,
``nachrichtenUUID``, ``findings``; with ``--kosit`` also ``scenario``, ``accepted``) plus
``exit`` (0 or 1, or 2 for a KoSIT report of an unusable document). A file that could not be checked
is ``{"source": FILE, "valid": false, "exit": 2, "error": REASON}`` (the reason printed to stderr
too). The text format prints the reports; unusable files only on stderr.

A closed stdout (``amtsbote validate … | head -1``, ``amtsbote schemas | head``) ends the command
quietly: no traceback, exit 141 (128 + SIGPIPE, what a shell reports for a process a closed pipe
ended; :func:`flows.cli.main`).

A ``FILE`` ending in ``.zip`` is an xdomea container as x-man exchanges it
(``{ProzessID}_{Nachrichtenname}.zip``, :mod:`xoev.container`): the container rules are checked
first (a breach — zip bomb, unsafe or duplicate member, missing or unreferenced primary file, XML
not matching the file name — is unusable input, exit 2), then its message XML like any file.

``--jobs N``: a batch of 400 files or more is checked by N worker processes (default: the CPU
cores, at most 8), forked after the schemas are loaded, in chunks of 100 files; reports, stderr
lines and exit codes are the same and in the same order as with ``--jobs 1`` (:mod:`._jobs`).
KoSIT configurations are checked in this process.

``--kosit CONFIG`` checks with a KoSIT validator configuration instead of the built-in registry
(a ``scenarios.xml`` or its folder; ``--kosit-repository`` is the folder its resource locations are
relative to, by default that of the scenarios file; :mod:`xoev.kosit`). Exit 1 when a document is
rejected; not well-formed input and a document no scenario matches are unusable input (exit 2), like
without ``--kosit``, and their report is printed too; a broken configuration is exit 2.

``schemas`` lists the known standards and versions with namespace, message types and where each
schema bundle came from (built-in, the schema-path directory, or the bundle folder of a version by
configuration with its ``bundle.yaml`` or ``targetNamespace``), plus loaded codelists; unusable
bundles are warnings on stderr.

``--schema-path DIR`` (repeatable) is searched recursively before the directories in
``AMTSBOTE_SCHEMA_PATH``; bundles found there override built-in ones, and bundles for namespaces no
package declares are versions of their own (:mod:`xoev.bundles`, docs/xoev.md "Versions by
configuration").
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

__all__ = ["register", "run_schemas", "run_validate"]


def _add_schema_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema-path",
        metavar="DIR",
        action="append",
        default=[],
        help="directory searched recursively for XSD bundles and genericode codelists "
        "(repeatable; before $AMTSBOTE_SCHEMA_PATH; overrides built-in bundles)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check XÖV messages (XSD, codelists, business rules)",
        description="Check XÖV message files: hardened XML intake, XML Schema of the standard "
        "version named by the root namespace, codelists, business rules. Exit 0 all valid, "
        "1 findings, 2 unusable input (missing file, not XML, hostile XML, unknown document, "
        "schema bundle not found).",
    )
    validate.add_argument(
        "files",
        metavar="FILE",
        nargs="+",
        help="message file(s) to check; a .zip is an xdomea container (x-man layout)",
    )
    _add_schema_path(validate)
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="report format on stdout"
    )
    validate.add_argument(
        "--kosit",
        metavar="CONFIG",
        help="check with a KoSIT validator configuration (scenarios.xml or its folder) instead "
        "of the built-in registry",
    )
    validate.add_argument(
        "--kosit-repository",
        metavar="DIR",
        help="folder the configuration's resource locations are relative to "
        "(default: the folder of scenarios.xml)",
    )
    validate.add_argument(
        "--jobs",
        type=_positive,
        metavar="N",
        help="worker processes for a large batch (default: the CPU cores, at most 8; 1: all in "
        "this process); reports stay in the order of the files",
    )
    validate.set_defaults(handler=run_validate)

    schemas = subparsers.add_parser(
        "schemas",
        help="list known standards, versions, namespaces and schema origins",
        description="List the XÖV standards and versions amtsbote knows: namespace, message "
        "types, and where each schema bundle came from (built-in or schema path).",
    )
    _add_schema_path(schemas)
    schemas.add_argument("--format", choices=("text", "json"), default="text")
    schemas.set_defaults(handler=run_schemas)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _registry(args: argparse.Namespace, command: str) -> Any:
    from xoev.exceptions import SchemaPathError
    from xoev.registry import SchemaRegistry

    try:
        return SchemaRegistry(args.schema_path)
    except SchemaPathError as exc:
        print(f"amtsbote {command}: {exc}", file=sys.stderr)
        return None


class _Batch:
    """The outcome of ``validate`` for each file, in order: a report or the reason it could not be
    checked, each with its exit code; the batch's exit is the worst."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any, int]] = []

    def report(self, report: Any, code: int) -> None:
        report.findings.sort(key=_line_order)  # stable: equal lines keep the checks' order
        self.entries.append((report.source, report, code))

    def unusable(self, name: str, message: str, error: str) -> None:
        from . import EXIT_UNUSABLE

        print(f"amtsbote validate: {message}", file=sys.stderr)
        self.entries.append((name, error, EXIT_UNUSABLE))

    @property
    def code(self) -> int:
        return max((code for _name, _entry, code in self.entries), default=0)

    def write(self, output_format: str) -> None:
        if output_format == "json":
            data = []
            for name, entry, code in self.entries:
                if isinstance(entry, str):
                    data.append({"source": name, "valid": False, "exit": code, "error": entry})
                else:
                    data.append({**entry.to_dict(), "exit": code})
            print(json.dumps(data, ensure_ascii=False, indent=2))
            return
        text = "\n".join(e.to_text() for _n, e, _c in self.entries if not isinstance(e, str))
        if text:
            print(text)


def _line_order(finding: Any) -> tuple[bool, int]:
    return (finding.line is None, finding.line or 0)


def _check_file(name: str, *, registry: Any) -> tuple[Any, ...]:
    """One file's outcome: ``("report", report, exit)`` or ``("unusable", name, message,
    error)`` (picklable: it may come from a worker process, :mod:`._jobs`)."""
    from xoev.exceptions import SchemaError, UnusableInputError
    from xoev.validation import validate_file

    from . import EXIT_FINDINGS, EXIT_OK

    try:
        if name.lower().endswith(".zip"):
            report = _validate_container(name, registry)
        else:
            report = validate_file(name, registry=registry)
    except UnusableInputError as exc:
        return ("unusable", name, f"unusable input: {exc}", str(exc))
    except SchemaError as exc:
        return ("unusable", name, f"{name}: cannot check: {exc}", f"cannot check: {exc}")
    return ("report", report, EXIT_OK if report.ok else EXIT_FINDINGS)


def run_validate(args: argparse.Namespace) -> int:
    from . import EXIT_UNUSABLE
    from ._jobs import default_jobs, in_order

    if getattr(args, "kosit", None):
        return _run_kosit(args)
    registry = _registry(args, "validate")
    if registry is None:
        return EXIT_UNUSABLE
    jobs = args.jobs if getattr(args, "jobs", None) else default_jobs()
    batch = _Batch()
    check = functools.partial(_check_file, registry=registry)
    for outcome in in_order(args.files, check, jobs=jobs):
        if outcome[0] == "unusable":
            batch.unusable(*outcome[1:])
        else:
            batch.report(*outcome[1:])
    batch.write(args.format)
    return batch.code


def _run_kosit(args: argparse.Namespace) -> int:
    """``validate --kosit``: every file checked with the configuration (xoev.kosit)."""
    from xoev.exceptions import KositConfigError, UnusableInputError
    from xoev.kosit import UNUSABLE_RULES, KositConfiguration
    from xoev.parsing import read_input

    from . import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE

    try:
        config = KositConfiguration.load(args.kosit, repository=args.kosit_repository)
    except KositConfigError as exc:
        print(f"amtsbote validate: KoSIT configuration unusable: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    batch = _Batch()
    for name in args.files:
        try:
            report = config.check(read_input(name), source=name)
        except UnusableInputError as exc:
            batch.unusable(name, f"unusable input: {exc}", str(exc))
            continue
        unusable = [f for f in report.findings if f.rule in UNUSABLE_RULES]
        if unusable:
            print(
                f"amtsbote validate: unusable input: {name}: {unusable[0].message}", file=sys.stderr
            )
            batch.report(report, EXIT_UNUSABLE)
        else:
            batch.report(report, EXIT_OK if report.ok else EXIT_FINDINGS)
    batch.write(args.format)
    return batch.code


def _validate_container(name: str, registry: Any) -> Any:
    """Container rules (raising ContainerError, an UnusableInputError), then the XML."""
    from xoev.container import read_container
    from xoev.validation import validate

    return validate(read_container(name, registry=registry).xml, source=name, registry=registry)


def run_schemas(args: argparse.Namespace) -> int:
    from . import EXIT_OK, EXIT_UNUSABLE

    registry = _registry(args, "schemas")
    if registry is None:
        return EXIT_UNUSABLE
    statuses = registry.status()
    codelists = sorted(registry.codelists, key=lambda c: (c.canonical_uri, c.version))
    if args.format == "json":
        data = {
            "schema_path": [str(p) for p in registry.schema_path],
            "versions": [s.to_dict() for s in statuses],
            "codelists": [
                {
                    "uri": c.canonical_uri,
                    "version": c.version,
                    "name": c.short_name,
                    "codes": len(c),
                    "source": c.source,
                }
                for c in codelists
            ],
            "problems": list(registry.problems),
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK

    lines = ["schema path: " + (", ".join(str(p) for p in registry.schema_path) or "(empty)")]
    for status in statuses:
        sv = status.version
        lines.append("")
        lines.append(f"{sv.standard} {sv.version}")
        lines.append(f"  namespace:  {sv.namespace}")
        if status.available:
            lines.append(f"  schema:     {sv.schema} ({sv.origin})")
            if sv.configured_by == "targetNamespace":
                lines.append("  configured: standard and version from the targetNamespace")
            elif sv.configured_by:
                lines.append(f"  configured: {sv.configured_by}")
            if sv.kosit:
                lines.append(f"  kosit:      {sv.kosit}")
        else:
            entry = sv.entry_name or "?"
            where = ", ".join(status.searched) or "empty schema path"
            lines.append(f"  schema:     not found: {entry} (searched: {where})")
        lines.append(f"  messages:   {len(sv.message_types)}")
        lines.extend(f"    {mt.code}  {mt.root}" for mt in sv.message_types)
    lines.append("")
    lines.append(f"codelists: {len(codelists)}")
    lines.extend(f"  {c.canonical_uri} {c.version} ({len(c)} codes)" for c in codelists)
    print("\n".join(lines))
    for problem in registry.problems:
        print(f"amtsbote schemas: warning: {problem}", file=sys.stderr)
    return EXIT_OK
