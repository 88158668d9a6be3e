"""``amtsbote agencies``: show the agency directory (and check the file).

::

    amtsbote agencies [--file PATH] [--format table|json] [--role ROLE]
    amtsbote agencies fingerprint CERT...

Without ``--file`` the directory named by ``AMTSBOTE_AGENCIES`` or the shipped OWL directory is
read. The TOKEN column tells whether each agency's token variable is set (``env``), replaced by a
development token (``dev``, with ``AMTSBOTE_DEV_TOKENS=1``) or ``missing``; tokens are never shown.
Exit 0; 2 when the file is unusable (every problem as ``file:line:column: field: message`` on
stderr) or the role is unknown.

``fingerprint`` prints the SHA-256 fingerprint of each certificate file (PEM or DER) as the
directory's ``client_cert_sha256`` takes it — 64 lower-case hex digits, the same as
``openssl x509 -in CERT -outform DER | sha256sum`` — followed by the file name and, when an agency
of the directory (``--file``) has it, that agency's id. Exit 2 when a file is unreadable or holds
no certificate.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agencies",
        help="show the agency directory",
        description="Show the agency directory: ids, Behördenkennungen, channels, roles.",
    )
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="directory file (default: $AMTSBOTE_AGENCIES or deployments/owl/agencies.yaml)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--role", help="only agencies holding this role")
    parser.set_defaults(handler=run)
    actions = parser.add_subparsers(dest="agencies_command", metavar="ACTION")
    fingerprint = actions.add_parser(
        "fingerprint",
        help="print the SHA-256 fingerprint of certificates (client_cert_sha256)",
        description="Print the SHA-256 fingerprint of each certificate (PEM or DER) as the "
        "directory's client_cert_sha256 takes it.",
    )
    fingerprint.add_argument("certificates", nargs="+", metavar="CERT", help="certificate file")
    fingerprint.add_argument(
        "--file",
        metavar="PATH",
        help="directory file to look the fingerprints up in (default: $AMTSBOTE_AGENCIES or the "
        "shipped one)",
    )
    fingerprint.set_defaults(handler=run_fingerprint)


def run_fingerprint(args: argparse.Namespace) -> int:
    from connectors.certificates import CertificateError, fingerprint_of_file
    from connectors.directory import Directory, DirectoryError

    from . import EXIT_OK, EXIT_UNUSABLE

    try:
        directory: Directory | None = (
            Directory.load(args.file) if args.file else Directory.default()
        )
    except DirectoryError as exc:
        if args.file:
            print(f"amtsbote agencies: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        directory = None  # the lookup is a courtesy; the fingerprint is what was asked for
    code = EXIT_OK
    for name in args.certificates:
        try:
            value = fingerprint_of_file(name)
        except CertificateError as exc:
            print(f"amtsbote agencies: {exc}", file=sys.stderr)
            code = EXIT_UNUSABLE
            continue
        agency = directory.authenticate_certificate(value) if directory is not None else None
        suffix = f"  (agency {agency.id})" if agency is not None else ""
        print(f"{value}  {name}{suffix}")
    return code


def _target(agency: Any) -> str:
    if agency.endpoint:
        return str(agency.endpoint)
    if agency.mailbox_host:
        return f"mailbox on {agency.mailbox_host}"
    for name in ("xta_url", "webdav_url", "transfer_dir", "drop_dir"):
        value = getattr(agency, name, None)
        if value is not None:
            return str(value)
    return "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from connectors.directory import Directory, DirectoryError, InvalidDirectoryError

    from . import EXIT_OK, EXIT_UNUSABLE

    try:
        directory = Directory.load(args.file) if args.file else Directory.default()
    except InvalidDirectoryError as exc:
        count = len(exc.problems)
        print(
            f"amtsbote agencies: unusable directory ({count} problem{'s' * (count != 1)}):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        agencies = list(directory.by_role(args.role)) if args.role else list(directory)
    except DirectoryError as exc:
        print(f"amtsbote agencies: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE

    if args.format == "json":
        data = {
            "source": str(directory.source) if directory.source else None,
            "roles": list(directory.roles),
            "agencies": [{**a.to_dict(), "token": directory.token_source(a.id)} for a in agencies],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK

    rows = [
        ["ID", "BEHOERDENKENNUNG", "CHANNEL", "TARGET", "RATE", "CONC", "TOKEN", "ROLES", "NAME"]
    ]
    for a in agencies:
        rows.append(
            [
                a.id,
                a.behoerdenkennung,
                a.channel.value,
                _target(a),
                f"{a.rate_limit:g}/s",
                str(a.concurrency),
                f"{a.token_env} ({directory.token_source(a.id)})",
                ", ".join(a.roles),
                a.name,
            ]
        )
    print(_table(rows))
    print(f"\n{len(agencies)} agencies from {directory.source}")
    return EXIT_OK
