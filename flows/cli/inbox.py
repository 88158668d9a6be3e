"""``amtsbote inbox``: run an agency's inbox service.

::

    amtsbote inbox serve --agency ID [--host 127.0.0.1] [--port N] [--database-url URL]
                         [--agencies FILE] [--max-body-bytes N] [--workers N]
                         [--schema-path DIR]...
                         [--tls-cert FILE --tls-key FILE [--client-ca FILE
                          [--require-client-cert]]]
                         [--log-level LEVEL] [--no-migrate]

Serves ``POST /v1/messages``, the mailboxes of the agencies it hosts and the status reports
(``docs/inbox-api.md``; OpenAPI at ``/docs``) until SIGINT/SIGTERM. The agency must have channel
``http`` in the directory (``--agencies`` or ``AMTSBOTE_AGENCIES`` or the shipped OWL file). The
port defaults to the one of the agency's directory endpoint; the host to 127.0.0.1.

Journal: ``--database-url``; else the home agency (``AMTSBOTE_HOME_AGENCY``, default
stadt-paderborn) uses the main journal (``AMTSBOTE_DATABASE_URL`` or ``<data dir>/
journal.sqlite``) and every other agency ``<data dir>/inbox/<agency>.sqlite`` (see
:mod:`connectors.inbox.config`). The schema is created/migrated at start unless
``--no-migrate``. Tokens come from the directory's ``token_env`` variables
(``AMTSBOTE_DEV_TOKENS=1`` for development tokens).

HTTPS: ``--tls-cert``/``--tls-key`` (PEM) serve HTTPS; ``--client-ca`` (PEM) asks clients for a
certificate signed by that CA (mutual TLS): a client presenting one is identified by its
fingerprint (``client_cert_sha256`` in the directory), a client without one still connects and
authenticates by bearer token — unless ``--require-client-cert``, which refuses the handshake
without a certificate (``docs/mtls.md``).

Exit 0 after a clean shutdown; 2 when the directory, the agency, the journal, a certificate/key/CA
file (named) or the address is unusable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from . import EXIT_OK, EXIT_UNUSABLE

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "inbox",
        help="run an agency's inbox service (messages, mailboxes, status)",
        description="Run the inbox service of one agency.",
    )
    actions = parser.add_subparsers(dest="inbox_command", metavar="ACTION")
    actions.required = True
    serve = actions.add_parser(
        "serve",
        help="serve the inbox of one agency until interrupted",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--agency", required=True, metavar="ID", help="agency id (channel http)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, metavar="N", help="port (default: from the agency's endpoint)"
    )
    serve.add_argument(
        "--database-url",
        metavar="URL",
        help="journal database (default: home agency → main journal, others → "
        "<data dir>/inbox/<agency>.sqlite)",
    )
    serve.add_argument(
        "--agencies",
        metavar="FILE",
        help="directory file (default: $AMTSBOTE_AGENCIES or deployments/owl/agencies.yaml)",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, metavar="N", help="largest accepted message (10 MiB)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="messages parsed, validated and stored at once, in threads (default 2)",
    )
    serve.add_argument(
        "--schema-path",
        action="append",
        default=[],
        metavar="DIR",
        help="directory with further XSD bundles/codelists (repeatable)",
    )
    tls = serve.add_argument_group("HTTPS and client certificates (docs/mtls.md)")
    tls.add_argument("--tls-cert", metavar="FILE", help="server certificate (chain), PEM: HTTPS")
    tls.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert, PEM")
    tls.add_argument(
        "--client-ca",
        metavar="FILE",
        help="CA (PEM) of the client certificates: ask clients for one (mutual TLS); clients "
        "without a certificate may still authenticate by bearer token",
    )
    tls.add_argument(
        "--require-client-cert",
        action="store_true",
        help="with --client-ca: refuse connections without a client certificate",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="log level (default info)",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not create/migrate the journal schema; refuse to start unless it is current",
    )
    serve.set_defaults(handler=_serve)


def _fail(message: object) -> int:
    print(f"amtsbote inbox: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _default_port(endpoint: str | None) -> int | None:
    from urllib.parse import urlsplit

    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _tls_config(args: argparse.Namespace) -> Any:
    """The :class:`TlsConfig` of the flags (None: plain HTTP); ValueError for bad combinations,
    InboxConfigError naming an unusable file."""
    from pathlib import Path

    from connectors.inbox.tls import TlsConfig

    if args.tls_cert is None and args.tls_key is None:
        if args.client_ca is not None or args.require_client_cert:
            raise ValueError("--client-ca and --require-client-cert need --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    if args.require_client_cert and args.client_ca is None:
        raise ValueError("--require-client-cert needs --client-ca")
    tls = TlsConfig(
        cert_file=Path(args.tls_cert),
        key_file=Path(args.tls_key),
        client_ca=Path(args.client_ca) if args.client_ca else None,
        require_client_cert=args.require_client_cert,
    )
    tls.ssl_context()  # every file checked now, before the journal is opened
    return tls


def _serve(args: argparse.Namespace) -> int:
    from connectors.config import Settings
    from connectors.directory import Directory, DirectoryError
    from connectors.exceptions import ConnectorError
    from connectors.inbox import InboxConfig, create_app, home_agency, journal_url_for, serve
    from connectors.journal import Journal
    from connectors.journal.keyfile import journal_key_for
    from xoev.exceptions import XoevError

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        directory = Directory.load(args.agencies) if args.agencies else Directory.default()
        agency = directory.get(args.agency)
    except DirectoryError as exc:
        return _fail(exc)
    try:
        tls = _tls_config(args)
    except ValueError as exc:  # InboxConfigError is a ValueError
        return _fail(exc)
    port = args.port if args.port is not None else _default_port(agency.endpoint)
    if port is None:
        return _fail(
            f"agency {agency.id} has channel {agency.channel.value} and no endpoint; only "
            "agencies with channel http run an inbox (give --port to override)"
        )
    from connectors.directory.tokens import check_tokens

    tokens = check_tokens(
        directory, host=args.host, client_certificates=tls is not None and tls.mutual
    )
    for warning in tokens.warnings:
        print(f"amtsbote inbox: WARNING: {warning}", file=sys.stderr, flush=True)
    if not tokens.ok:
        for refusal in tokens.refusals:
            print(f"amtsbote inbox: {refusal}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        options: dict[str, Any] = {"schema_path": tuple(args.schema_path)}
        if args.max_body_bytes is not None:
            options["max_body_bytes"] = args.max_body_bytes
        if args.workers is not None:
            options["workers"] = args.workers
        config = InboxConfig.from_env(**options)
        settings = Settings.from_env()
        url = journal_url_for(agency.id, database_url=args.database_url)
        journal = Journal(url, key=journal_key_for(settings), create=not args.no_migrate)
    except (ConnectorError, XoevError, OSError) as exc:
        return _fail(exc)
    try:
        try:
            hook = None
            if agency.id == home_agency():
                # the home agency's inbox starts the procedures (Prefect event per accepted
                # notification) and resumes runs waiting for replies
                from ..correlation import make_inbox_hook

                hook = make_inbox_hook(
                    journal, home_agency_kennung=agency.behoerdenkennung, directory=directory
                )
            app = create_app(
                agency.id, journal=journal, directory=directory, config=config, on_accepted=hook
            )
        except (ConnectorError, XoevError) as exc:
            return _fail(exc)
        hosted = ", ".join(a.id for a in directory.hosted_by(agency.id)) or "none"
        pollers = None
        if agency.id == home_agency():
            # partners on a transfer directory or WebDAV share (x-man): poll them into this inbox
            # and its msgBox on every partner's XTA server (their replies)
            from connectors.inbox.transfer import PollerThread, transfer_pollers
            from connectors.inbox.xta_poll import xta_pollers

            try:
                found = [
                    *transfer_pollers(app.state.inbox, directory),
                    *xta_pollers(
                        app.state.inbox,
                        directory,
                        rejected_dir=settings.data_dir / "xta-rejected",
                    ),
                ]
            except ConnectorError as exc:
                return _fail(exc)
            if found:
                pollers = PollerThread(found, interval=5.0)
                pollers.start()
                print(
                    f"amtsbote inbox: polling {len(found)} transfer area(s)/XTA msgBox(es): "
                    + ", ".join(repr(p) for p in found),
                    file=sys.stderr,
                    flush=True,
                )
        scheme = "https" if tls is not None else "http"
        if tls is not None and tls.mutual:
            mode = "required" if tls.require_client_cert else "optional"
            scheme_note = f"; client certificates {mode}"
        else:
            scheme_note = ""
        print(
            f"amtsbote inbox: {agency.id} on {scheme}://{args.host}:{port}{scheme_note} "
            f"(journal {journal.url}; mailboxes hosted: {hosted})",
            file=sys.stderr,
            flush=True,
        )
        try:
            serve(app, host=args.host, port=port, log_level=args.log_level, tls=tls)
        except ConnectorError as exc:
            return _fail(exc)
        finally:
            if pollers is not None:
                pollers.stop()
    finally:
        journal.close()
    return EXIT_OK
