"""HTTPS for the inbox, and the client certificate in the ASGI scope (mutual TLS).

:class:`TlsConfig` names the server's certificate and key and, for mutual TLS, the CA whose
client certificates the inbox accepts. With a client CA the server asks every client for a
certificate: ``CERT_OPTIONAL`` by default (clients without one still connect and authenticate
by bearer token), ``CERT_REQUIRED`` with ``require_client_cert``. A certificate that is not
signed by the client CA fails the TLS handshake in both modes.

uvicorn does not put the peer certificate into the ASGI scope. :func:`uvicorn_tls_options`
therefore gives uvicorn, besides the TLS context, a subclass of its HTTP protocol (h11 or
httptools, whichever ``http`` selects) that reads the peer certificate once per connection —
asyncio calls ``connection_made`` after the handshake — and adds to the scope of every request
on that connection (ASGI TLS extension, plus the fingerprint)::

    scope["extensions"]["tls"] = {
        "client_cert_sha256": "3f1c…" or None,   # SHA-256 of the DER certificate, lower hex
        "client_cert_chain": ["-----BEGIN CERTIFICATE-----…"],   # the leaf only, or []
        "client_cert_name": "CN=…,O=…" or None,
        "client_cert_error": None,
        "tls_version": 0x0304 or None,
        "cipher_suite": None,
    }

:func:`client_fingerprint` reads it back (None without TLS or without a client certificate).
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from ..certificates import CertificateError, fingerprint_of_der, server_ssl_context
from .exceptions import InboxConfigError

__all__ = [
    "TLS_EXTENSION",
    "TlsConfig",
    "client_fingerprint",
    "peer_certificate_protocol",
    "tls_info",
    "uvicorn_tls_options",
]

#: Key of the TLS information in ``scope["extensions"]``.
TLS_EXTENSION = "tls"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

Scope = MutableMapping[str, Any]
ReadScope = Mapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """The inbox's HTTPS: ``cert_file``/``key_file`` (PEM) of the server; ``client_ca`` (PEM)
    switches on client certificates (mutual TLS), ``require_client_cert`` makes them
    mandatory (no connection without one; bearer tokens alone no longer reach the inbox)."""

    cert_file: Path
    key_file: Path
    client_ca: Path | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        for name in ("cert_file", "key_file", "client_ca"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.require_client_cert and self.client_ca is None:
            raise InboxConfigError(
                "tls", "require_client_cert needs client_ca (the CA of the client certificates)"
            )

    @property
    def mutual(self) -> bool:
        """Whether clients are asked for a certificate."""
        return self.client_ca is not None

    def ssl_context(self) -> ssl.SSLContext:
        """The server's TLS context; :class:`InboxConfigError` (setting ``tls``) naming the file
        that is unreadable, malformed or does not match."""
        try:
            return server_ssl_context(
                cert_file=self.cert_file,
                key_file=self.key_file,
                client_ca=self.client_ca,
                require_client_cert=self.require_client_cert,
            )
        except CertificateError as exc:
            raise InboxConfigError("tls", str(exc)) from exc


def tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
    """The scope's ``tls`` extension for one connection (see the module docstring)."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    info: dict[str, Any] = {
        "client_cert_sha256": fingerprint_of_der(der) if der else None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": _subject(ssl_object) if ssl_object is not None and der else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }
    return info


def _subject(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    """The peer's subject as ``CN=…,O=…`` (RFC 4514 order: most specific first)."""
    decoded = ssl_object.getpeercert()
    if not decoded:
        return None
    rdns = decoded.get("subject", ())
    names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    names |= {"countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
    parts = [f"{names.get(key, key)}={value}" for rdn in reversed(rdns) for key, value in rdn]
    return ",".join(parts) or None


def client_fingerprint(scope: ReadScope) -> str | None:
    """The fingerprint of the client certificate of the request with ``scope`` (None: no TLS
    or no client certificate)."""
    extensions = scope.get("extensions") or {}
    tls = extensions.get(TLS_EXTENSION) or {}
    value = tls.get("client_cert_sha256")
    return value if isinstance(value, str) else None


def _with_tls(app: ASGIApp, info: dict[str, Any]) -> ASGIApp:
    async def tls_app(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope["extensions"] = {**(scope.get("extensions") or {}), TLS_EXTENSION: info}
        await app(scope, receive, send)

    return tls_app


_PROTOCOLS: dict[type[asyncio.Protocol], type[asyncio.Protocol]] = {}


def peer_certificate_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's H11Protocol or HttpToolsProtocol) reading the peer certificate on
    ``connection_made`` and adding it to every request's scope on that connection."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    supported: list[type[asyncio.Protocol]] = [H11Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        pass
    else:
        supported.append(HttpToolsProtocol)
    if not any(issubclass(base, cls) for cls in supported):
        raise InboxConfigError(
            "tls",
            f"client certificates need uvicorn's h11 or httptools protocol, not {base.__name__}",
        )
    if base in _PROTOCOLS:
        return _PROTOCOLS[base]

    def connection_made(self: Any, transport: asyncio.Transport) -> None:
        base.connection_made(self, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _with_tls(self.app, tls_info(ssl_object))

    cls = type(f"PeerCertificate{base.__name__}", (base,), {"connection_made": connection_made})
    _PROTOCOLS[base] = cls
    return cls


def _protocol_class(http: Any) -> type[asyncio.Protocol]:
    if isinstance(http, str):
        return import_from_string(HTTP_PROTOCOLS.get(http, http))
    return http


def uvicorn_tls_options(tls: TlsConfig, *, http: Any = "auto") -> dict[str, Any]:
    """Options for :class:`uvicorn.Config`: the TLS context (built and checked now, so that a bad
    file is reported before binding) and, with a client CA, the protocol class exposing the
    client certificate. ``http``: uvicorn's ``http`` option being replaced."""
    context = tls.ssl_context()
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.cert_file),
        "ssl_keyfile": str(tls.key_file),
    }
    if "ssl_context_factory" in inspect.signature(uvicorn.Config).parameters:
        options["ssl_context_factory"] = lambda config, default: context
    else:  # older uvicorn: it builds the same context from the files
        options["ssl_cert_reqs"] = context.verify_mode
        if tls.client_ca is not None:
            options["ssl_ca_certs"] = str(tls.client_ca)
    options["http"] = peer_certificate_protocol(_protocol_class(http)) if tls.mutual else http
    return options
