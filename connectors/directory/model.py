"""The directory's model: :class:`Channel`, :class:`Agency`, development tokens, defaults."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..certificates import check_fingerprint, normalise_fingerprint
from ..settings import data_file
from .errors import InvalidDirectoryError

#: The shipped directory: package data of ``deployments.owl`` (overridden by
#: ``AMTSBOTE_AGENCIES``). Its relative paths (``drop_dir: ../../var/drop/…``) are relative to the
#: file: in a checkout that is the repository's ``var/``; in an installed wheel, where the file
#: lies in site-packages, paths into that ``var/`` are taken as paths into the data directory
#: (``AMTSBOTE_DATA_DIR``) instead — see :func:`connectors.settings.installed_var_dir`.
DEFAULT_PATH = data_file("agencies.yaml")
#: Environment variable naming another directory file for :meth:`Directory.default`.
AGENCIES_ENV = "AMTSBOTE_AGENCIES"
DEFAULT_RATE_LIMIT = 10.0
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
SCHEMA_VERSION = 1

_DEV_TOKEN_KEY = b"amtsbote-dev-token"
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KENNUNG = re.compile(r"([A-Za-z][A-Za-z0-9._-]*):([A-Za-z0-9._-]+)")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


# --------------------------------------------------------------------------------------- model


class Channel(StrEnum):
    HTTP = "http"
    """Push: POST to the agency's own inbox service at ``endpoint``."""
    MAILBOX = "mailbox"
    """Pull: deposit in a mailbox on the inbox of ``mailbox_host``; the agency fetches."""
    FILE = "file"
    """Drop: ``<uuid>.xml`` written atomically into ``drop_dir``."""
    TRANSFER_DIR = "transfer-dir"
    """x-man transfer directory on the file system at ``transfer_dir`` (xdomea containers, both
    directions; see :mod:`connectors.transfer`)."""
    XTA = "xta"
    """XTA 2 webservice at ``xta_url`` (sendMessage; replies polled from our msgBox there)."""
    WEBDAV = "webdav"
    """x-man transfer directory on a WebDAV share at ``webdav_url`` (basic auth from
    ``webdav_user_env``/``webdav_password_env``, optional CA bundle ``webdav_ca``)."""


@dataclass(frozen=True, slots=True)
class Agency:
    """One agency of the directory."""

    id: str
    name: str
    behoerdenkennung: str
    """``praefix:kennung``, e.g. ``MELDID:05774032``."""
    roles: tuple[str, ...]
    channel: Channel
    token_env: str
    endpoint: str | None = None
    """http: base URL of the agency's inbox service (no trailing slash)."""
    mailbox_host: str | None = None
    """mailbox: id of the http agency whose inbox hosts this agency's mailbox."""
    drop_dir: Path | None = None
    """file: directory receiving ``<uuid>.xml``."""
    transfer_dir: Path | None = None
    """transfer-dir: root of the transfer directory shared with the partner."""
    webdav_url: str | None = None
    xta_url: str | None = None
    """webdav: URL of the transfer area's root collection (no trailing slash)."""
    webdav_user_env: str | None = None
    """webdav: environment variable holding the basic-auth user name."""
    webdav_password_env: str | None = None
    """webdav: environment variable holding the basic-auth password (never in the YAML)."""
    webdav_ca: Path | None = None
    """webdav (optional): PEM CA bundle verifying the server instead of the system store."""
    client_cert_sha256: str | None = None
    """SHA-256 fingerprint (64 lower-case hex digits) of the certificate this agency presents
    to an inbox (mutual TLS): it identifies the agency like its bearer token."""
    tls_client_cert: Path | None = None
    """http (optional): PEM certificate (chain) this installation presents to the agency's
    inbox (mutual TLS); the key is in ``tls_client_key`` or in the same file."""
    tls_client_key: Path | None = None
    """http (optional): PEM private key of ``tls_client_cert``."""
    tls_ca: Path | None = None
    """http/xta (optional): PEM CA bundle verifying the agency's server (not the system store)."""
    rate_limit: float = DEFAULT_RATE_LIMIT
    """Messages per second sent to this agency."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Simultaneous requests to this agency."""

    def __post_init__(self) -> None:
        from .checks import _PATH_FIELDS, _agency_values, _value_problems, _Where  # (cycle)

        # Normalise what callers commonly pass loosely, then check every field.
        object.__setattr__(self, "roles", tuple(self.roles))
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", self.endpoint.rstrip("/"))
        if self.xta_url is not None:
            object.__setattr__(self, "xta_url", self.xta_url.rstrip("/"))
        if self.webdav_url is not None:
            object.__setattr__(self, "webdav_url", self.webdav_url.rstrip("/"))
        for name in _PATH_FIELDS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        fingerprint = self.client_cert_sha256
        if isinstance(fingerprint, str) and check_fingerprint(fingerprint) is None:
            object.__setattr__(self, "client_cert_sha256", normalise_fingerprint(fingerprint))
        problems = _value_problems(_agency_values(self), _Where(None, f"agency {self.id!r}"))
        if problems:
            raise InvalidDirectoryError(problems)
        object.__setattr__(self, "channel", Channel(self.channel))

    @property
    def praefix(self) -> str:
        return self.behoerdenkennung.split(":", 1)[0]

    @property
    def kennung(self) -> str:
        return self.behoerdenkennung.split(":", 1)[1]

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "behoerdenkennung": self.behoerdenkennung,
            "roles": list(self.roles),
            "channel": self.channel.value,
            "endpoint": self.endpoint,
            "mailbox_host": self.mailbox_host,
            "drop_dir": str(self.drop_dir) if self.drop_dir is not None else None,
            "transfer_dir": str(self.transfer_dir) if self.transfer_dir is not None else None,
            "webdav_url": self.webdav_url,
            "xta_url": self.xta_url,
            "webdav_user_env": self.webdav_user_env,
            "webdav_password_env": self.webdav_password_env,
            "webdav_ca": str(self.webdav_ca) if self.webdav_ca is not None else None,
            "token_env": self.token_env,
            "client_cert_sha256": self.client_cert_sha256,
            "tls_client_cert": _str_or_none(self.tls_client_cert),
            "tls_client_key": _str_or_none(self.tls_client_key),
            "tls_ca": _str_or_none(self.tls_ca),
            "rate_limit": self.rate_limit,
            "concurrency": self.concurrency,
        }


def _str_or_none(value: object) -> str | None:
    return str(value) if value is not None else None


def dev_tokens_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``AMTSBOTE_DEV_TOKENS`` (a flag; anything but on/off is a :class:`ConfigError`)."""
    env = os.environ if environ is None else environ
    return _dev_tokens_flag(env.get("AMTSBOTE_DEV_TOKENS"))


@functools.lru_cache(maxsize=8)
def _dev_tokens_flag(value: str | None) -> bool:
    # Read through the settings (one parser for flags), once per distinct value: every token
    # lookup asks, and an inbox looks up every agency's token per request.
    from ..settings import AmtsboteSettings

    environ = {} if value is None else {"AMTSBOTE_DEV_TOKENS": value}
    return AmtsboteSettings.from_environ(environ, only=("dev_tokens",)).dev_tokens


def dev_token(agency_id: str) -> str:
    """The development token of ``agency_id``: ``dev-`` + the first 32 hex digits of
    HMAC-SHA256(key ``amtsbote-dev-token``, message: the id). Deterministic and public by design:
    only used when ``AMTSBOTE_DEV_TOKENS`` is on."""
    digest = hmac.new(_DEV_TOKEN_KEY, agency_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"dev-{digest[:32]}"
