"""A throw-away PKI for TLS tests and benchmarks on loopback, made with ``cryptography`` and
written as PEM files. Never for production: the issued keys are written unencrypted.

::

    pki = Pki.create(tmp_path)                  # CA + server certificate for 127.0.0.1/localhost
    a = pki.client("kreis-paderborn")           # client certificate signed by the CA
    a.cert, a.key, a.fingerprint                # PEM paths; SHA-256 of the DER certificate (hex)
    rogue = Pki.create(tmp_path / "rogue").client("kreis-paderborn")   # another CA's certificate

Fingerprints come from ``cryptography`` (``Certificate.fingerprint``), independent of the code
under test. Keys are P-256, certificates valid for a day.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "Pki"]


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "amtsbote tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as PEM files, and the certificate's SHA-256 fingerprint."""

    name: str
    cert: Path
    key: Path
    fingerprint: str
    certificate: x509.Certificate


@dataclass
class Pki:
    """A CA in ``directory`` (``ca.pem``) and the server certificate it signed."""

    directory: Path
    ca: Path
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    server: Issued = field(init=False)

    @classmethod
    def create(cls, directory: Path, *, name: str = "amtsbote test CA") -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        ca = directory / "ca.pem"
        ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pki = cls(directory, ca, cert, key)
        pki.server = pki.issue("server", server=True)
        return pki

    def issue(self, name: str, *, server: bool = False) -> Issued:
        """A certificate for ``name`` signed by this CA (server: for 127.0.0.1 and localhost)."""
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_key_pem(key))
        return Issued(name, cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex(), cert)

    def client(self, name: str) -> Issued:
        """A client certificate (clientAuth) for ``name``, e.g. an agency id."""
        return self.issue(name)
