"""X.509 certificates as identities: SHA-256 fingerprints and the TLS contexts of mutual TLS.

A certificate is named by the SHA-256 of its DER encoding, written as 64 lower-case hex digits
(:func:`normalise_fingerprint` also takes upper case and ``AB:CD:…`` with colons, as
``openssl x509 -fingerprint -sha256`` prints it). The directory maps fingerprints to agencies
(``client_cert_sha256`` in agencies.yaml); the inbox reads the fingerprint of the certificate a
client presented (:mod:`connectors.inbox.tls`). Only the standard library is used (``ssl``,
``hashlib``): no certificate is parsed here beyond PEM → DER.

Errors::

    ConnectorError                       (connectors.exceptions)
    └── CertificateError                 (also a ValueError) a malformed fingerprint, or a PEM
                                         file that cannot be read or holds no certificate; names
                                         the file (``path``) where there is one
"""

from __future__ import annotations

import hashlib
import re
import ssl
from pathlib import Path

from .exceptions import ConnectorError

__all__ = [
    "CertificateError",
    "check_fingerprint",
    "fingerprint_of_der",
    "fingerprint_of_file",
    "normalise_fingerprint",
    "server_ssl_context",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.DOTALL)


class CertificateError(ConnectorError, ValueError):
    """A fingerprint or certificate file is unusable; ``path`` names the file (None: a value)."""

    def __init__(self, problem: str, *, path: Path | str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path is not None else self.problem


def check_fingerprint(value: str) -> str | None:
    """Why ``value`` is no SHA-256 fingerprint (None when it is one, in any accepted spelling)."""
    text = value.strip().lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 32 or any(len(p) != 2 for p in parts):
            return (
                f"{value!r} is not a SHA-256 fingerprint: with colons it must be 32 pairs of hex "
                "digits (AB:CD:…)"
            )
        text = "".join(parts)
    if not _HEX64.fullmatch(text):
        return (
            f"{value!r} is not a SHA-256 fingerprint: expected 64 hex digits (with or without "
            "colons), e.g. from 'openssl x509 -in cert.pem -outform DER | sha256sum'"
        )
    return None


def normalise_fingerprint(value: str) -> str:
    """``value`` as 64 lower-case hex digits; :class:`CertificateError` when malformed."""
    problem = check_fingerprint(value)
    if problem is not None:
        raise CertificateError(problem)
    return value.strip().lower().replace(":", "")


def fingerprint_of_der(der: bytes) -> str:
    """The fingerprint (lower-case hex SHA-256) of a DER-encoded certificate."""
    return hashlib.sha256(der).hexdigest()


def fingerprint_of_file(path: Path | str) -> str:
    """The fingerprint of the first certificate in a PEM file (or of a DER file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    match = _PEM_CERT.search(data)
    if match is None:
        if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: DER
            return fingerprint_of_der(data)
        raise CertificateError("no PEM certificate (-----BEGIN CERTIFICATE-----)", path=path)
    try:
        der = ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(f"malformed PEM certificate: {exc}", path=path) from exc
    return fingerprint_of_der(der)


def _readable(path: Path, what: str) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise CertificateError(f"{what}: cannot read: {exc.strerror or exc}", path=path) from exc
    if not head:
        raise CertificateError(f"{what}: the file is empty", path=path)


def server_ssl_context(
    *,
    cert_file: Path,
    key_file: Path,
    client_ca: Path | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """The TLS context of a server: its certificate chain and key; with ``client_ca`` it asks
    clients for a certificate signed by that CA (``CERT_OPTIONAL``: a client without one may
    still connect; ``require_client_cert``: ``CERT_REQUIRED``). A certificate that is presented
    but not signed by the CA fails the handshake either way. :class:`CertificateError` names the
    file that is unreadable, malformed or does not match."""
    if require_client_cert and client_ca is None:
        raise CertificateError("requiring client certificates needs a client CA")
    _readable(cert_file, "server certificate")
    _readable(key_file, "server key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc) or reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(
                f"server key does not belong to the certificate {cert_file}", path=key_file
            ) from exc
        # Which of the two files: try the certificate alone.
        if _PEM_CERT.search(cert_file.read_bytes()) is None:
            raise CertificateError(
                "server certificate: no PEM certificate", path=cert_file
            ) from exc
        raise CertificateError(f"server key: unusable ({reason})", path=key_file) from exc
    except OSError as exc:
        raise CertificateError(f"cannot load: {exc.strerror or exc}", path=cert_file) from exc
    if client_ca is not None:
        _readable(client_ca, "client CA")
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(
                f"client CA: no usable PEM certificate ({getattr(exc, 'reason', None) or exc})",
                path=client_ca,
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context
