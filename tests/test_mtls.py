"""Identity by mutual TLS: the inbox over real HTTPS on 127.0.0.1 (uvicorn in a thread and
``amtsbote inbox serve`` in a subprocess), client certificates from :mod:`pki`, fingerprints in
the directory, the http sender presenting a certificate; the directory's certificate fields.

The inbox under test is stadt-paderborn's; kreis-paderborn ("A") is known by its certificate,
bezreg-detmold ("B") has a certificate of the same CA but only a token in the directory."""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from pki import Issued, Pki
from test_inbox_support import (
    DEV_ENV,
    ROOT,
    InboxProcess,
    Messages,
    auth,
    make_directory,
)

from connectors.certificates import (
    CertificateError,
    fingerprint_of_file,
    normalise_fingerprint,
)
from connectors.directory import Agency, Directory, InvalidDirectoryError
from connectors.inbox import InboxConfigError, InboxServer, create_app
from connectors.inbox.identity import identify
from connectors.inbox.tls import TlsConfig, tls_info
from connectors.journal import Direction, Journal
from connectors.senders import HttpSender, SenderConfig, SenderConfigError
from flows.cli import main as cli_main

pytestmark = pytest.mark.integration

HOME = "stadt-paderborn"
A = "kreis-paderborn"
B = "bezreg-detmold"


def _colons(fingerprint: str) -> str:
    """``AB:CD:…``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()


def _with(directory: Directory, environ: dict[str, str], **changes: dict[str, Any]) -> Directory:
    agencies = [dataclasses.replace(a, **changes.get(a.id, {})) for a in directory]
    return Directory(agencies, roles=directory.roles, environ=environ)


@dataclass
class Mtls:
    url: str
    pki: Pki
    a: Issued
    b: Issued
    stranger: Issued
    rogue: Issued
    journal: Journal
    directory: Directory
    messages: Messages

    def context(self, client: Issued | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def post(
        self, client: Issued | None, token_of: str | None, body: bytes | None = None
    ) -> httpx.Response:
        if body is None:
            body = self.messages.new()[1]
        headers = {"Content-Type": "application/xml", **(auth(token_of) if token_of else {})}
        return httpx.post(
            self.url + "/v1/messages",
            content=body,
            headers=headers,
            verify=self.context(client),
            timeout=10,
        )

    def sender_of(self, uid: str) -> str | None:
        return self.journal.get_message(uid, direction=Direction.INBOUND).sender_agency


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mtls]:
    tmp = tmp_path_factory.mktemp("mtls")
    pki = Pki.create(tmp / "pki")
    a, b, stranger = pki.client(A), pki.client(B), pki.client("stranger")
    rogue = Pki.create(tmp / "rogue", name="rogue CA").client(A)
    port = free_port()
    base = make_directory({HOME: f"https://127.0.0.1:{port}"})
    # A's fingerprint written as openssl prints it: the directory normalises it
    directory = _with(base, DEV_ENV, **{A: {"client_cert_sha256": _colons(a.fingerprint)}})
    journal = Journal(f"sqlite:///{tmp / 'journal.sqlite'}", create=True)
    app = create_app(HOME, journal=journal, directory=directory)
    tls = TlsConfig(cert_file=pki.server.cert, key_file=pki.server.key, client_ca=pki.ca)
    messages = Messages(directory.get(A), directory.get(HOME))
    try:
        with InboxServer(app, port=port, tls=tls) as server:
            assert server.url == f"https://127.0.0.1:{port}"
            yield Mtls(server.url, pki, a, b, stranger, rogue, journal, directory, messages)
    finally:
        journal.close()


# ------------------------------------------------------------------------------- the inbox


def test_a_client_certificate_alone_identifies_the_sender(mtls: Mtls) -> None:
    uid, body = mtls.messages.new()
    response = mtls.post(mtls.a, None, body)
    assert response.status_code == 202, response.text
    assert response.json()["nachrichtenUUID"] == uid
    assert mtls.sender_of(uid) == A


def test_certificate_and_token_of_the_same_agency(mtls: Mtls) -> None:
    uid, body = mtls.messages.new()
    assert mtls.post(mtls.a, A, body).status_code == 202
    assert mtls.sender_of(uid) == A


def test_token_only_still_works_on_the_tls_server(mtls: Mtls) -> None:
    uid, body = mtls.messages.new()
    response = mtls.post(None, A, body)
    assert response.status_code == 202, response.text
    assert mtls.sender_of(uid) == A


def test_an_unknown_certificate_is_refused_even_with_a_valid_token(mtls: Mtls) -> None:
    for token in (None, A):
        response = mtls.post(mtls.stranger, token)
        assert response.status_code == 401
        error = response.json()
        assert error["error"] == "unknown_certificate"
        assert mtls.stranger.fingerprint in error["detail"]
        assert "client_cert_sha256" in error["detail"]


def test_certificate_of_one_agency_and_token_of_another_are_refused(mtls: Mtls) -> None:
    response = mtls.post(mtls.a, B)
    assert response.status_code == 401
    assert response.json()["error"] == "identity_conflict"
    assert A in response.json()["detail"] and B in response.json()["detail"]


def test_certificate_with_a_wrong_token_is_refused(mtls: Mtls) -> None:
    context = mtls.context(mtls.a)
    response = httpx.get(
        mtls.url + "/v1/mailbox", headers={"Authorization": "Bearer nope"}, verify=context
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_no_certificate_and_no_token_is_401(mtls: Mtls) -> None:
    response = mtls.post(None, None)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "client certificate" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_certificate_identifies_on_every_route(mtls: Mtls) -> None:
    # the transport report of A's message, asked for by A's certificate alone
    uid, body = mtls.messages.new()
    assert mtls.post(mtls.a, None, body).status_code == 202
    context = mtls.context(mtls.a)
    response = httpx.get(f"{mtls.url}/v1/messages/{uid}/status", verify=context)
    assert response.status_code == 200, response.text
    # B (by token, on the same TLS server) is not the sender: the report is not B's
    response = httpx.get(
        f"{mtls.url}/v1/messages/{uid}/status", headers=auth(B), verify=mtls.context(None)
    )
    assert response.status_code in (403, 404), response.text


def test_a_certificate_of_another_ca_fails_the_handshake(mtls: Mtls) -> None:
    with pytest.raises(httpx.TransportError):
        response = mtls.post(mtls.rogue, A)
        # TLS 1.3: the server's alert may only arrive with the first read
        pytest.fail(f"answered {response.status_code}")


def test_the_http_sender_presents_its_certificate(mtls: Mtls, tmp_path: Path) -> None:
    # the sending installation's view: HOME reached with A's certificate, verified by the CA,
    # and no tokens at all (no dev tokens): the certificate alone identifies A
    sending = _with(
        mtls.directory,
        {},
        **{
            HOME: {
                "tls_client_cert": mtls.a.cert,
                "tls_client_key": mtls.a.key,
                "tls_ca": mtls.pki.ca,
            }
        },
    )
    message = mtls.messages.outgoing()
    with HttpSender(sending.get(HOME), sending, config=SenderConfig(rate_limit=False)) as sender:
        assert sender.presents_certificate
        receipt = sender.send(message)
    assert receipt.nachrichten_uuid == message.nachrichten_uuid
    assert mtls.sender_of(message.nachrichten_uuid) == A

    # with the dev tokens as well: certificate and token of A
    with_tokens = _with(sending, DEV_ENV)
    message = mtls.messages.outgoing()
    with HttpSender(with_tokens.get(HOME), with_tokens, config=SenderConfig(rate_limit=False)) as s:
        s.send(message)
    assert mtls.sender_of(message.nachrichten_uuid) == A


def test_the_sender_names_an_unusable_certificate_file(mtls: Mtls, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    sending = _with(mtls.directory, DEV_ENV, **{HOME: {"tls_client_cert": missing}})
    with pytest.raises(SenderConfigError, match="tls_client_cert") as info:
        HttpSender(sending.get(HOME), sending)
    assert str(missing) in str(info.value)


def test_h11_exposes_the_certificate_too(mtls: Mtls, tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'h11.sqlite'}", create=True)
    tls = TlsConfig(
        cert_file=mtls.pki.server.cert, key_file=mtls.pki.server.key, client_ca=mtls.pki.ca
    )
    try:
        app = create_app(HOME, journal=journal, directory=mtls.directory)
        with InboxServer(app, tls=tls, http="h11") as server:
            uid, body = mtls.messages.new()
            response = httpx.post(
                server.url + "/v1/messages",
                content=body,
                headers={"Content-Type": "application/xml"},
                verify=mtls.context(mtls.a),
            )
            assert response.status_code == 202, response.text
            assert journal.get_message(uid, direction=Direction.INBOUND).sender_agency == A
    finally:
        journal.close()


def test_required_client_certificates(mtls: Mtls, tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'required.sqlite'}", create=True)
    tls = TlsConfig(
        cert_file=mtls.pki.server.cert,
        key_file=mtls.pki.server.key,
        client_ca=mtls.pki.ca,
        require_client_cert=True,
    )
    try:
        app = create_app(HOME, journal=journal, directory=mtls.directory)
        with InboxServer(app, tls=tls) as server:
            healthz = server.url + "/healthz"
            assert httpx.get(healthz, verify=mtls.context(mtls.a)).status_code == 200
            with pytest.raises(httpx.TransportError):
                httpx.get(healthz, headers=auth(A), verify=mtls.context(None))
    finally:
        journal.close()
    with pytest.raises(InboxConfigError, match="require_client_cert needs client_ca"):
        TlsConfig(cert_file=tls.cert_file, key_file=tls.key_file, require_client_cert=True)


def test_bad_server_files_are_named(mtls: Mtls, tmp_path: Path) -> None:
    server = mtls.pki.server
    cases = [
        (TlsConfig(cert_file=tmp_path / "nope.pem", key_file=server.key), "nope.pem"),
        (TlsConfig(cert_file=server.cert, key_file=mtls.a.key), str(mtls.a.key)),
        (TlsConfig(cert_file=server.key, key_file=server.key), str(server.key)),
        (
            TlsConfig(cert_file=server.cert, key_file=server.key, client_ca=server.key),
            str(server.key),
        ),
    ]
    for tls, named in cases:
        with pytest.raises(InboxConfigError) as info:
            InboxServer(
                create_app(HOME, journal=mtls.journal, directory=mtls.directory), tls=tls
            ).start()
        assert named in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- the CLI


def _serve_command(tmp: Path, port: int, *tls_args: str) -> list[str]:
    process = InboxProcess(
        HOME, database_url=f"sqlite:///{tmp / 'cli.sqlite'}", log_dir=tmp, port=port
    )
    process.extra_args = tls_args
    return process.command()


def test_inbox_serve_over_https(mtls: Mtls, tmp_path: Path) -> None:
    port = free_port()
    pki = mtls.pki
    args: tuple[str, ...] = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key))
    args += ("--client-ca", str(pki.ca))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _serve_command(tmp_path, port, *args),
            cwd=ROOT,
            env=InboxProcess.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                response = httpx.get(
                    f"https://127.0.0.1:{port}/healthz", verify=mtls.context(mtls.a), timeout=1
                )
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        # plain HTTP is not served on the port
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        process.terminate()
        process.wait(15)
    assert process.returncode == 0, log.read_text()
    assert f"https://127.0.0.1:{port}; client certificates optional" in log.read_text()


def test_inbox_serve_refuses_bad_files(
    mtls: Mtls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = mtls.pki.server
    base = ["inbox", "serve", "--agency", HOME, "--port", str(free_port())]
    base += ["--database-url", f"sqlite:///{tmp_path / 'j.sqlite'}"]
    missing = tmp_path / "missing.key"
    cases = [
        (["--tls-cert", str(server.cert), "--tls-key", str(missing)], str(missing)),
        (["--tls-cert", str(server.cert), "--tls-key", str(mtls.a.key)], str(mtls.a.key)),
        (
            [
                *("--tls-cert", str(server.cert), "--tls-key", str(server.key)),
                *("--client-ca", str(tmp_path / "no-ca.pem")),
            ],
            "no-ca.pem",
        ),
        (["--tls-cert", str(server.cert)], "--tls-key"),
        (["--client-ca", str(mtls.pki.ca)], "--tls-cert"),
    ]
    for extra, named in cases:
        assert cli_main(base + extra) == 2
        err = capsys.readouterr().err
        assert named in err, err
    assert not (tmp_path / "j.sqlite").exists()  # refused before the journal was opened


def test_agencies_fingerprint(mtls: Mtls, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["agencies", "fingerprint", str(mtls.a.cert), str(mtls.b.cert)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == mtls.a.fingerprint
    assert lines[1].split()[0] == mtls.b.fingerprint
    assert cli_main(["agencies", "fingerprint", str(mtls.a.key)]) == 2
    assert "no PEM certificate" in capsys.readouterr().err


# ------------------------------------------------------------------ fingerprints and scope


def test_fingerprints(mtls: Mtls, tmp_path: Path) -> None:
    fp = mtls.a.fingerprint
    assert fingerprint_of_file(mtls.a.cert) == fp
    der = tmp_path / "a.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(mtls.a.cert.read_text()))
    assert fingerprint_of_file(der) == fp
    assert normalise_fingerprint(_colons(fp)) == fp
    assert normalise_fingerprint(f"  {fp.upper()} ") == fp
    for bad in ("", fp[:-1], fp + "0", fp[:-1] + "g", _colons(fp)[:-3]):
        with pytest.raises(CertificateError, match="not a SHA-256 fingerprint"):
            normalise_fingerprint(bad)


def test_identify_without_http(mtls: Mtls) -> None:
    d = mtls.directory
    assert identify(d, mtls.a.fingerprint, None, inbox=HOME).method == "certificate"
    assert identify(d, _colons(mtls.a.fingerprint), None, inbox=HOME).agency.id == A
    from connectors.directory import dev_token

    both = identify(d, mtls.a.fingerprint, dev_token(A), inbox=HOME)
    assert (both.agency.id, both.method) == (A, "certificate+token")
    assert identify(d, None, dev_token(B), inbox=HOME).method == "token"
    # a scope without the tls extension (plain HTTP) is token-only
    assert identify(d, {"type": "http"}, dev_token(B), inbox=HOME).agency.id == B
    assert tls_info(None)["client_cert_sha256"] is None


# ----------------------------------------------------------------------------- directory


def _yaml(extra_a: str = "", extra_b: str = "") -> str:
    return textwrap.dedent(
        """\
        version: 1
        roles: [Gewerbeamt, IHK]
        agencies:
          - id: amt-a
            name: Amt A
            behoerdenkennung: "MELDID:01001000"
            roles: [Gewerbeamt]
            channel: http
            endpoint: https://127.0.0.1:8701
            token_env: TOKEN_A
        {a}
          - id: amt-b
            name: Amt B
            behoerdenkennung: "IHK:0001"
            roles: [IHK]
            channel: mailbox
            mailbox_host: amt-a
            token_env: TOKEN_B
        {b}
        """
    ).format(a=textwrap.indent(extra_a, "    "), b=textwrap.indent(extra_b, "    "))


def _load(tmp_path: Path, text: str) -> Directory:
    path = tmp_path / "agencies.yaml"
    path.write_text(text, encoding="utf-8")
    return Directory.load(path, environ={})


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InvalidDirectoryError) as info:
        _load(tmp_path, text)
    return [str(p) for p in info.value.problems]


def test_directory_reads_certificate_fields(mtls: Mtls, tmp_path: Path) -> None:
    fp = mtls.a.fingerprint
    text = _yaml(
        f'client_cert_sha256: "{_colons(fp)}"\n'
        "tls_client_cert: pki/a.pem\ntls_client_key: pki/a.key\ntls_ca: /etc/ca.pem\n",
        f"client_cert_sha256: {mtls.b.fingerprint.upper()}\n",
    )
    d = _load(tmp_path, text)
    a: Agency = d.get("amt-a")
    assert a.client_cert_sha256 == fp
    assert a.tls_client_cert == tmp_path / "pki" / "a.pem"  # relative to the file
    assert a.tls_client_key == tmp_path / "pki" / "a.key"
    assert a.tls_ca == Path("/etc/ca.pem")
    assert d.authenticate_certificate(_colons(fp)) is a
    assert d.authenticate_certificate(mtls.b.fingerprint).id == "amt-b"  # type: ignore[union-attr]
    assert d.authenticate_certificate(mtls.stranger.fingerprint) is None
    assert d.authenticate_certificate(None) is None
    assert a.to_dict()["client_cert_sha256"] == fp


def test_directory_refuses_bad_certificate_fields(mtls: Mtls, tmp_path: Path) -> None:
    problems = _problems(tmp_path, _yaml('client_cert_sha256: "12:34"\n'))
    assert len(problems) == 1
    assert "agencies.yaml:11:" in problems[0]
    assert "agencies[0].client_cert_sha256" in problems[0]
    assert "not a SHA-256 fingerprint" in problems[0]

    fp = mtls.a.fingerprint
    problems = _problems(
        tmp_path, _yaml(f"client_cert_sha256: {fp}\n", f'client_cert_sha256: "{_colons(fp)}"\n')
    )
    assert len(problems) == 1
    assert "agencies[1].client_cert_sha256" in problems[0]
    assert "'amt-b' and 'amt-a' would be indistinguishable" in problems[0]
    assert "already used by 'amt-a' at agencies[0] (line 4)" in problems[0]

    problems = _problems(tmp_path, _yaml("tls_client_key: a.key\n", "tls_ca: ca.pem\n"))
    assert any("agencies[0].tls_client_key: needs tls_client_cert" in p for p in problems)
    assert any(
        "agencies[1].tls_ca: not allowed for channel mailbox" in p and "mailbox host" in p
        for p in problems
    )


# ------------------------------------------------------------------------------- XTA over mTLS


def _xta(mtls: Mtls, client: Issued, port: str, data: bytes) -> Any:
    from xta_support import read_answer

    response = httpx.post(
        f"{mtls.url}/services/XTAService/{port}",
        content=data,
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
        verify=mtls.context(client),
        timeout=30,
    )
    return read_answer(response)


def test_xta_caller_is_the_certificates_agency(mtls: Mtls) -> None:
    """The XTA ports take the caller from the client certificate (no token): the Author must be
    that agency's Behördenkennung (PermissionDenied otherwise, nothing stored)."""
    from xta_support import A as ACTION
    from xta_support import author_header, container_body, envelope, inline, metadata_header

    kennung = {x: mtls.directory.get(x).behoerdenkennung for x in (A, B, HOME)}
    active = _xta(
        mtls,
        mtls.a,
        "ManagementPort",
        envelope(ACTION + "CheckAccountActive", headers=author_header(kennung[A])),
    )
    assert active.fault is None, active.root
    # B's certificate is of the same CA but unknown to the directory: refused before SOAP
    response = httpx.post(
        f"{mtls.url}/services/XTAService/ManagementPort",
        content=envelope(ACTION + "CheckAccountActive", headers=author_header(kennung[B])),
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
        verify=mtls.context(mtls.b),
        timeout=30,
    )
    assert response.status_code == 401

    def send(author: str) -> Any:
        uid, body = mtls.messages.new()
        head = metadata_header(author=kennung[author], reader=kennung[HOME], nachrichten_uuid=uid)
        data = envelope(ACTION + "SendMessage", container_body(inline(body)), headers=head)
        return uid, _xta(mtls, mtls.a, "SendXtaPort", data)

    uid, answer = send(A)
    assert answer.fault is None, answer.root
    assert mtls.sender_of(uid) == A
    before = len(mtls.journal.messages(direction=Direction.INBOUND))
    uid, answer = send(B)  # A's certificate, B's Author
    assert answer.fault_detail() == ("PermissionDeniedException", "9014")
    assert len(mtls.journal.messages(direction=Direction.INBOUND)) == before
