"""The agency directory: who takes part, in which roles, and how a message reaches each agency.

The directory is a YAML file (``deployments/owl/agencies.yaml`` ships; its comment header
documents every key). :meth:`Directory.load` reads it through YAML *nodes* so that every problem
names the file, the line and the field::

    deployments/owl/agencies.yaml:42:14: agencies[3].channel: unknown channel 'smtp' (expected …)

All problems of a file are reported at once (:attr:`InvalidDirectoryError.problems`).

Certificates: an agency may also be known by the certificate it presents to an inbox
(``client_cert_sha256``, the SHA-256 of its DER certificate;
:meth:`Directory.authenticate_certificate`) and may name the certificate, key and CA this
installation uses toward it over HTTPS (``tls_client_cert``, ``tls_client_key``, ``tls_ca``;
http agencies only) — see ``docs/mtls.md``.

Tokens: an agency's bearer token is read from the environment variable named by its ``token_env``.
When it is unset, :meth:`Directory.token_for` raises :class:`MissingTokenError` naming the variable,
unless ``AMTSBOTE_DEV_TOKENS=1`` switches on deterministic development tokens (:func:`dev_token`).

Exceptions (no shared ``connectors.exceptions`` existed when this module was written; the tree is
rooted at ``ValueError`` so callers treating bad configuration as bad values keep working)::

    DirectoryError (ValueError)
    ├── InvalidDirectoryError   bad file or agency set; .problems: file:line:column, field, message
    ├── UnknownAgencyError      (also LookupError) no agency with that id / Behördenkennung
    ├── UnknownRoleError        (also LookupError) role not declared in the directory
    └── TokenError
        ├── MissingTokenError   token variable unset/empty and development tokens off
        └── AmbiguousTokenError one token authenticates several agencies
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import yaml

from . import yamlfile
from .certificates import check_fingerprint, normalise_fingerprint
from .exceptions import ConnectorError
from .settings import data_file
from .yamlfile import YamlProblem

__all__ = [
    "AGENCIES_ENV",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PATH",
    "DEFAULT_RATE_LIMIT",
    "DEV_TOKENS_ENV",
    "Agency",
    "AmbiguousTokenError",
    "Channel",
    "Directory",
    "DirectoryError",
    "DirectoryProblem",
    "InvalidDirectoryError",
    "MissingTokenError",
    "TokenError",
    "UnknownAgencyError",
    "UnknownRoleError",
    "dev_token",
    "dev_tokens_enabled",
]

#: The shipped directory: package data of ``deployments.owl`` (overridden by
#: ``AMTSBOTE_AGENCIES``). Its relative paths (``drop_dir: ../../var/drop/…``) are relative to the
#: file: in a checkout that is the repository's ``var/``; in an installed wheel, where the file
#: lies in site-packages, paths into that ``var/`` are taken as paths into the data directory
#: (``AMTSBOTE_DATA_DIR``) instead — see :func:`connectors.settings.installed_var_dir`.
DEFAULT_PATH = data_file("agencies.yaml")
#: Environment variable naming another directory file for :meth:`Directory.default`.
AGENCIES_ENV = "AMTSBOTE_AGENCIES"
#: Environment variable switching on deterministic development tokens (``1``/``true``/``on``).
DEV_TOKENS_ENV = "AMTSBOTE_DEV_TOKENS"
DEFAULT_RATE_LIMIT = 10.0
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
SCHEMA_VERSION = 1

_DEV_TOKEN_KEY = b"amtsbote-dev-token"
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KENNUNG = re.compile(r"([A-Za-z][A-Za-z0-9._-]*):([A-Za-z0-9._-]+)")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


# --------------------------------------------------------------------------------------- errors


class DirectoryError(ConnectorError, ValueError):
    """Base of the directory's errors."""


@dataclass(frozen=True, slots=True)
class DirectoryProblem(YamlProblem):
    """One defect of a directory file: where (file, 1-based line and column), which field, what
    (shown ``file:line:col: field: message``, see :class:`connectors.yamlfile.YamlProblem`)."""

    UNNAMED: ClassVar[str] = "<agencies>"


class InvalidDirectoryError(DirectoryError):
    """The directory file (or agency set) is unusable. ``problems`` lists every defect found;
    ``file``, ``line``, ``column`` and ``field`` are those of the first."""

    def __init__(self, problems: Iterable[DirectoryProblem]) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("InvalidDirectoryError needs at least one problem")
        first = self.problems[0]
        self.file, self.line, self.column, self.field = (
            first.file,
            first.line,
            first.column,
            first.field,
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class UnknownAgencyError(DirectoryError, LookupError):
    def __init__(self, key: str, *, what: str = "id", source: str | None = None) -> None:
        self.key, self.what, self.source = key, what, source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        return f"no agency with {self.what} {self.key!r}{where}"


class UnknownRoleError(DirectoryError, LookupError):
    def __init__(self, role: str, *, known: Iterable[str], source: str | None = None) -> None:
        self.role, self.known, self.source = role, tuple(known), source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        return f"role {self.role!r} is not declared{where} (known: {', '.join(self.known)})"


class TokenError(DirectoryError):
    """A bearer token cannot be determined or is ambiguous."""


class MissingTokenError(TokenError):
    def __init__(self, agency_id: str, env_var: str) -> None:
        self.agency_id, self.env_var = agency_id, env_var
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"no token for agency {self.agency_id!r}: environment variable {self.env_var} is "
            f"unset or empty (set it, or {DEV_TOKENS_ENV}=1 for development tokens)"
        )


class AmbiguousTokenError(TokenError):
    def __init__(self, agency_ids: Iterable[str]) -> None:
        self.agency_ids = tuple(agency_ids)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"one token authenticates several agencies: {', '.join(self.agency_ids)}"


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
    """http (optional): PEM CA bundle verifying the agency's inbox instead of the system store."""
    rate_limit: float = DEFAULT_RATE_LIMIT
    """Messages per second sent to this agency."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Simultaneous requests to this agency."""

    def __post_init__(self) -> None:
        # Normalise what callers commonly pass loosely, then check every field.
        object.__setattr__(self, "roles", tuple(self.roles))
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", self.endpoint.rstrip("/"))
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
    from .settings import AmtsboteSettings

    environ = {} if value is None else {"AMTSBOTE_DEV_TOKENS": value}
    return AmtsboteSettings.from_environ(environ, only=("dev_tokens",)).dev_tokens


def dev_token(agency_id: str) -> str:
    """The development token of ``agency_id``: ``dev-`` + the first 32 hex digits of
    HMAC-SHA256(key ``amtsbote-dev-token``, message: the id). Deterministic and public by design:
    only used when ``AMTSBOTE_DEV_TOKENS`` is on."""
    digest = hmac.new(_DEV_TOKEN_KEY, agency_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"dev-{digest[:32]}"


# ------------------------------------------------------------------------------ value checks
# Each returns an error message or None; shared by the YAML loader and Directory(...).


def _check_slug(value: str) -> str | None:
    if not _SLUG.fullmatch(value):
        return f"{value!r} is not a slug (lower-case letters, digits, single hyphens)"
    return None


def _check_text(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _check_kennung(value: str) -> str | None:
    if not _KENNUNG.fullmatch(value):
        return f"{value!r} is not 'praefix:kennung' (e.g. 'MELDID:05774032')"
    return None


def _check_env_name(value: str) -> str | None:
    if not _ENV_NAME.fullmatch(value):
        return f"{value!r} is not an environment variable name (A-Z, 0-9, _)"
    return None


def _check_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"bad URL {value!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"bad URL {value!r}: scheme must be http or https"
    if not parts.hostname:
        return f"bad URL {value!r}: no host"
    if parts.username is not None or parts.password is not None:
        return (
            f"bad URL {value!r}: credentials do not belong in the URL "
            "(use token_env, or webdav_user_env/webdav_password_env)"
        )
    if parts.query or parts.fragment:
        return f"bad URL {value!r}: no query or fragment allowed"
    if port == 0:
        return f"bad URL {value!r}: port 0"
    return None


def _check_rate(value: float) -> str | None:
    return None if value > 0 else f"must be > 0 (messages per second), got {value}"


def _check_concurrency(value: int) -> str | None:
    if 1 <= value <= MAX_CONCURRENCY:
        return None
    return f"must be between 1 and {MAX_CONCURRENCY}, got {value}"


def _check_channel(value: str) -> str | None:
    if value in {c.value for c in Channel}:
        return None
    known = ", ".join(sorted(c.value for c in Channel))
    return f"unknown channel {value!r} (expected one of {known})"


def _kennung_key(kennung: str) -> tuple[str, str]:
    praefix, _, rest = kennung.strip().partition(":")
    return praefix.lower(), rest


_STR, _NUMBER, _INT, _STR_LIST = "string", "number", "integer", "list of strings"

#: field → (type, required, value check)
_FIELDS: dict[str, tuple[str, bool, Any]] = {
    "id": (_STR, True, _check_slug),
    "name": (_STR, True, _check_text),
    "behoerdenkennung": (_STR, True, _check_kennung),
    "roles": (_STR_LIST, True, None),
    "channel": (_STR, True, _check_channel),
    "token_env": (_STR, True, _check_env_name),
    "endpoint": (_STR, False, _check_url),
    "mailbox_host": (_STR, False, _check_slug),
    "drop_dir": (_STR, False, _check_text),
    "transfer_dir": (_STR, False, _check_text),
    "webdav_url": (_STR, False, _check_url),
    "webdav_user_env": (_STR, False, _check_env_name),
    "webdav_password_env": (_STR, False, _check_env_name),
    "webdav_ca": (_STR, False, _check_text),
    "client_cert_sha256": (_STR, False, check_fingerprint),
    "tls_client_cert": (_STR, False, _check_text),
    "tls_client_key": (_STR, False, _check_text),
    "tls_ca": (_STR, False, _check_text),
    "rate_limit": (_NUMBER, False, _check_rate),
    "concurrency": (_INT, False, _check_concurrency),
}
#: channel → (fields it needs, fields it may have); each field belongs to one channel only
_CHANNEL_FIELDS: dict[Channel, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Channel.HTTP: (("endpoint",), ()),
    Channel.MAILBOX: (("mailbox_host",), ()),
    Channel.FILE: (("drop_dir",), ()),
    Channel.TRANSFER_DIR: (("transfer_dir",), ()),
    Channel.WEBDAV: (("webdav_url", "webdav_user_env", "webdav_password_env"), ("webdav_ca",)),
}
#: the TLS material used toward an agency, and the channels that connect over HTTPS with it
_TLS_FIELDS = ("tls_client_cert", "tls_client_key", "tls_ca")
_TLS_CHANNELS = frozenset({Channel.HTTP})
#: fields whose relative paths are relative to the directory file
_PATH_FIELDS = ("drop_dir", "transfer_dir", "webdav_ca", *_TLS_FIELDS)


@dataclass(slots=True)
class _Where:
    """Where an agency and each of its fields were written (1-based line/column)."""

    file: str | None
    label: str
    line: int | None = None
    column: int | None = None
    fields: dict[str, tuple[int, int]] = field(default_factory=dict)

    def problem(self, name: str, message: str) -> DirectoryProblem:
        line, column = self.fields.get(name, (self.line, self.column))
        label = self.label + (f".{name}" if name else "")
        return DirectoryProblem(self.file, line, column, label, message)

    def describe(self) -> str:
        return self.label + (f" (line {self.line})" if self.line is not None else "")


def _value_problems(values: Mapping[str, Any], where: _Where) -> list[DirectoryProblem]:
    """Value and channel-consistency checks of one agency's fields (types already right)."""
    problems: list[DirectoryProblem] = []
    for name, value in values.items():
        check = _FIELDS[name][2]
        if value is not None and check is not None and (msg := check(value)):
            problems.append(where.problem(name, msg))
    if "roles" in values and not values["roles"]:
        problems.append(where.problem("roles", "must list at least one role"))
    else:
        for i, role in enumerate(values.get("roles") or ()):
            if not str(role).strip():
                problems.append(where.problem(_item(where, "roles", i), "a role must not be empty"))
    channel = values.get("channel")
    if channel is not None and _check_channel(channel) is None:
        channel = Channel(channel)
        for needed in _CHANNEL_FIELDS[channel][0]:
            if values.get(needed) is None and needed not in where.fields:
                problems.append(
                    where.problem("channel", f"channel {channel.value} needs the field {needed}")
                )
        for other_channel, (required, optional) in _CHANNEL_FIELDS.items():
            if other_channel is channel:
                continue
            for other in (*required, *optional):
                if values.get(other) is not None:
                    problems.append(
                        where.problem(
                            other,
                            f"not allowed for channel {channel.value} "
                            f"(only for channel {other_channel.value})",
                        )
                    )
        if channel not in _TLS_CHANNELS:
            hint = "; set it on the mailbox host" if channel is Channel.MAILBOX else ""
            for name in _TLS_FIELDS:
                if values.get(name) is not None:
                    allowed = ", ".join(sorted(c.value for c in _TLS_CHANNELS))
                    problems.append(
                        where.problem(
                            name,
                            f"not allowed for channel {channel.value} (only for channel "
                            f"{allowed}){hint}",
                        )
                    )
    if values.get("tls_client_key") is not None and values.get("tls_client_cert") is None:
        problems.append(where.problem("tls_client_key", "needs tls_client_cert"))
    return problems


def _role_problems(
    roles: Iterable[str], declared: tuple[str, ...], where: _Where
) -> list[DirectoryProblem]:
    return [
        where.problem(
            _item(where, "roles", i), f"unknown role {role!r} (declared: {', '.join(declared)})"
        )
        for i, role in enumerate(roles)
        if role not in declared
    ]


def _item(where: _Where, name: str, index: int) -> str:
    key = f"{name}[{index}]"
    return key if key in where.fields or not where.fields else name


def _agency_values(agency: Agency) -> dict[str, Any]:
    return {
        "id": agency.id,
        "name": agency.name,
        "behoerdenkennung": agency.behoerdenkennung,
        "roles": agency.roles,
        "channel": str(agency.channel),
        "token_env": agency.token_env,
        "endpoint": agency.endpoint,
        "mailbox_host": agency.mailbox_host,
        "drop_dir": str(agency.drop_dir) if agency.drop_dir is not None else None,
        "transfer_dir": str(agency.transfer_dir) if agency.transfer_dir is not None else None,
        "webdav_url": agency.webdav_url,
        "webdav_user_env": agency.webdav_user_env,
        "webdav_password_env": agency.webdav_password_env,
        "webdav_ca": str(agency.webdav_ca) if agency.webdav_ca is not None else None,
        "client_cert_sha256": agency.client_cert_sha256,
        "tls_client_cert": _str_or_none(agency.tls_client_cert),
        "tls_client_key": _str_or_none(agency.tls_client_key),
        "tls_ca": _str_or_none(agency.tls_ca),
        "rate_limit": agency.rate_limit,
        "concurrency": agency.concurrency,
    }


def _cross_problems(entries: Sequence[tuple[Mapping[str, Any], _Where]]) -> list[DirectoryProblem]:
    """Uniqueness of id, Behördenkennung, token_env, endpoint, drop_dir, transfer_dir, webdav_url,
    client_cert_sha256; mailbox hosts. Works on field values so that entries with defects
    elsewhere are still compared."""
    problems: list[DirectoryProblem] = []
    unique = (
        "id",
        "behoerdenkennung",
        "token_env",
        "endpoint",
        "drop_dir",
        "transfer_dir",
        "webdav_url",
        "client_cert_sha256",
    )
    seen: dict[str, dict[Any, tuple[Mapping[str, Any], _Where]]] = {k: {} for k in unique}
    for values, where in entries:
        for name in unique:
            value = values.get(name)
            if value is None:
                continue
            key: Any = value
            if name == "behoerdenkennung":
                key = _kennung_key(value)
            elif name in ("endpoint", "webdav_url"):
                key = value.rstrip("/").lower()
            elif name in ("drop_dir", "transfer_dir"):
                key = os.path.normpath(value)
            elif name == "client_cert_sha256":
                if check_fingerprint(value) is not None:
                    continue
                key = normalise_fingerprint(value)
            if key in seen[name]:
                first, first_where = seen[name][key]
                extra = ""
                if name == "endpoint":
                    extra = "; to share an inbox, use channel mailbox with mailbox_host"
                elif name == "client_cert_sha256":
                    extra = (
                        f": one certificate identifies one agency, {values.get('id')!r} and "
                        f"{first.get('id')!r} would be indistinguishable"
                    )
                problems.append(
                    where.problem(
                        name,
                        f"duplicate {name} {value!r}: already used by {first.get('id')!r} at "
                        f"{first_where.describe()}{extra}",
                    )
                )
            else:
                seen[name][key] = (values, where)
    by_id = {v["id"]: v for v, _ in entries if v.get("id") is not None}
    for values, where in entries:
        host_id = values.get("mailbox_host")
        if values.get("channel") != Channel.MAILBOX or host_id is None:
            continue
        host = by_id.get(host_id)
        if host is None:
            problems.append(where.problem("mailbox_host", f"unknown mailbox host {host_id!r}"))
        elif host_id == values.get("id"):
            problems.append(where.problem("mailbox_host", "an agency cannot host its own mailbox"))
        elif (
            host.get("channel") != Channel.HTTP and _check_channel(host.get("channel", "")) is None
        ):
            problems.append(
                where.problem(
                    "mailbox_host",
                    f"mailbox host {host_id!r} has channel {host.get('channel')}; "
                    "only an http agency runs an inbox that can host mailboxes",
                )
            )
    return problems


# --------------------------------------------------------------------------------------- loader

#: field values (those of the right type), where they were written, the agency if all is well
_Entry = tuple[dict[str, Any], _Where, Agency | None]


class _Loader:
    """Turns the composed YAML node tree into agencies, recording problems with positions."""

    def __init__(
        self, text: str, file: str, base_dir: Path, rebase: tuple[Path, Path] | None = None
    ) -> None:
        self.text, self.file, self.base_dir, self.rebase = text, file, base_dir, rebase
        self.problems: list[DirectoryProblem] = []

    def close(self) -> None:
        """Nothing to release (kept for callers of the former PyYAML-loader-based version)."""

    def add(self, node: yaml.Node | None, field_name: str, message: str) -> None:
        line, column = yamlfile.position(node)
        self.problems.append(DirectoryProblem(self.file, line, column, field_name, message))

    def scalar(self, node: yaml.Node) -> Any:
        return yamlfile.value(node)

    def mapping(self, node: yaml.Node, label: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.add(node, label, f"must be a mapping, got {_node_kind(node)}")
            return None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.add(key_node, label, "keys must be strings")
                continue
            if key in result:
                where = f"{label}.{key}" if label else key
                first = result[key][0].start_mark.line + 1
                self.add(key_node, where, f"duplicate key (first at line {first})")
                continue
            result[key] = (key_node, value_node)
        return result

    def typed(self, node: yaml.Node, kind: str, label: str) -> Any:
        """The value of ``node`` if it has type ``kind``; else record a problem, return None."""
        if kind == _STR_LIST:
            if not isinstance(node, yaml.SequenceNode):
                self.add(
                    node, label, f"wrong type: expected a list of strings, got {_node_kind(node)}"
                )
                return None
            items = [self.typed(item, _STR, f"{label}[{i}]") for i, item in enumerate(node.value)]
            return None if any(i is None for i in items) else items
        if not isinstance(node, yaml.ScalarNode):
            self.add(node, label, f"wrong type: expected {_a(kind)}, got {_node_kind(node)}")
            return None
        value = self.scalar(node)
        ok = (
            (kind == _STR and isinstance(value, str))
            or (kind == _INT and isinstance(value, int) and not isinstance(value, bool))
            or (
                kind == _NUMBER
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and value == value  # not NaN
                and value not in (float("inf"), float("-inf"))
            )
        )
        if not ok:
            self.add(
                node,
                label,
                f"wrong type: expected {_a(kind)}, got {_value_kind(value)} {_short(value)}",
            )
            return None
        return value

    def load(self) -> tuple[tuple[str, ...] | None, list[_Entry]]:
        try:
            root = yamlfile.compose(self.text, file=self.file)
        except yamlfile.YamlSyntaxError as exc:
            self.problems.append(
                DirectoryProblem(self.file, exc.line, exc.column, "", exc.problem.message)
            )
            return None, []
        if root is None:
            self.problems.append(DirectoryProblem(self.file, 1, 1, "", "the file is empty"))
            return None, []
        top = self.mapping(root, "")
        if top is None:
            return None, []
        for key, (key_node, _) in top.items():
            if key not in ("version", "roles", "agencies"):
                self.add(key_node, key, "unknown field (expected version, roles, agencies)")
        for key in ("version", "roles", "agencies"):
            if key not in top:
                self.add(root, key, "missing required field")
        if "version" in top:
            node = top["version"][1]
            version = self.typed(node, _INT, "version")
            if version is not None and version != SCHEMA_VERSION:
                self.add(
                    node,
                    "version",
                    f"unsupported version {version} (this amtsbote reads {SCHEMA_VERSION})",
                )
        roles: tuple[str, ...] | None = None
        if "roles" in top:
            node = top["roles"][1]
            declared = self.typed(node, _STR_LIST, "roles")
            if declared is not None:
                seen: set[str] = set()
                for item, value in zip(node.value, declared, strict=True):
                    if not value.strip():
                        self.add(item, "roles", "a role must not be empty")
                    elif value in seen:
                        self.add(item, "roles", f"duplicate role {value!r}")
                    seen.add(value)
                roles = tuple(dict.fromkeys(declared))
        entries: list[_Entry] = []
        if "agencies" in top:
            node = top["agencies"][1]
            if not isinstance(node, yaml.SequenceNode):
                self.add(
                    node,
                    "agencies",
                    f"wrong type: expected a list of agencies, got {_node_kind(node)}",
                )
            else:
                if not node.value:
                    self.add(node, "agencies", "the list of agencies is empty")
                for index, item in enumerate(node.value):
                    entry = self._agency(item, index, roles)
                    if entry is not None:
                        entries.append(entry)
        return roles, entries

    def _agency(
        self, node: yaml.Node, index: int, roles: tuple[str, ...] | None
    ) -> tuple[dict[str, Any], _Where, Agency | None] | None:
        label = f"agencies[{index}]"
        where = _Where(self.file, label, node.start_mark.line + 1, node.start_mark.column + 1)
        fields = self.mapping(node, label)
        if fields is None:
            return None
        before = len(self.problems)
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in fields.items():
            where.fields[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
            if key not in _FIELDS:
                self.add(
                    key_node,
                    f"{label}.{key}",
                    f"unknown field (expected one of {', '.join(_FIELDS)})",
                )
                continue
            if isinstance(value_node, yaml.SequenceNode):
                for i, item in enumerate(value_node.value):
                    where.fields[f"{key}[{i}]"] = (
                        item.start_mark.line + 1,
                        item.start_mark.column + 1,
                    )
            value = self.typed(value_node, _FIELDS[key][0], f"{label}.{key}")
            if value is not None:
                values[key] = value
        for key, (_, required, _) in _FIELDS.items():
            if required and key not in fields:
                self.add(node, f"{label}.{key}", "missing required field")
        for name in _PATH_FIELDS:
            if isinstance(values.get(name), str) and values[name].strip():
                path = Path(values[name]).expanduser()
                values[name] = os.path.normpath(self.base_dir / path)
                if self.rebase is not None and Path(values[name]).is_relative_to(self.rebase[0]):
                    inside = Path(values[name]).relative_to(self.rebase[0])
                    values[name] = os.path.normpath(self.rebase[1] / inside)
        self.problems.extend(_value_problems(values, where))
        if roles is not None and "roles" in values:
            self.problems.extend(_role_problems(values["roles"], roles, where))
        agency = None
        if len(self.problems) == before:
            agency = Agency(
                id=values["id"],
                name=values["name"].strip(),
                behoerdenkennung=values["behoerdenkennung"].strip(),
                roles=tuple(values["roles"]),
                channel=Channel(values["channel"]),
                token_env=values["token_env"],
                endpoint=values.get("endpoint"),
                mailbox_host=values.get("mailbox_host"),
                drop_dir=Path(values["drop_dir"]) if "drop_dir" in values else None,
                transfer_dir=Path(values["transfer_dir"]) if "transfer_dir" in values else None,
                webdav_url=values.get("webdav_url"),
                webdav_user_env=values.get("webdav_user_env"),
                webdav_password_env=values.get("webdav_password_env"),
                webdav_ca=Path(values["webdav_ca"]) if "webdav_ca" in values else None,
                client_cert_sha256=values.get("client_cert_sha256"),
                tls_client_cert=_path_or_none(values.get("tls_client_cert")),
                tls_client_key=_path_or_none(values.get("tls_client_key")),
                tls_ca=_path_or_none(values.get("tls_ca")),
                rate_limit=float(values.get("rate_limit", DEFAULT_RATE_LIMIT)),
                concurrency=int(values.get("concurrency", DEFAULT_CONCURRENCY)),
            )
        return values, where, agency


def _var_rebase(file: Path, environ: Mapping[str, str] | None) -> tuple[Path, Path] | None:
    """``(var folder, data dir)`` for the directory file of an installed wheel, else None."""
    from .settings import AmtsboteSettings, installed_var_dir

    var = installed_var_dir(file)
    if var is None:
        return None
    return var, AmtsboteSettings.from_environ(environ, only=("data_dir",)).data_dir


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar"


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------------ directory


class Directory:
    """The set of agencies, looked up by id, role or Behördenkennung; iterates in file order.

    ``environ`` (default: ``os.environ`` at each call) is where tokens and the dev-token switch are
    read; tests pass a dict.
    """

    def __init__(
        self,
        agencies: Iterable[Agency],
        *,
        roles: Iterable[str] | None = None,
        source: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._agencies = tuple(agencies)
        self._source = Path(source) if source is not None else None
        declared = tuple(dict.fromkeys(roles)) if roles is not None else None
        self._roles = (
            declared
            if declared is not None
            else tuple(dict.fromkeys(r for a in self._agencies for r in a.roles))
        )
        self._environ = environ
        file = str(self._source) if self._source is not None else None
        entries = [
            (_agency_values(a), _Where(file, f"agencies[{i}]"))
            for i, a in enumerate(self._agencies)
        ]
        problems: list[DirectoryProblem] = []
        for agency, (_, where) in zip(self._agencies, entries, strict=True):
            problems.extend(_role_problems(agency.roles, self._roles, where))
        problems.extend(_cross_problems(entries))
        if problems:
            raise InvalidDirectoryError(problems)
        self._by_id = {a.id: a for a in self._agencies}
        self._by_kennung = {_kennung_key(a.behoerdenkennung): a for a in self._agencies}
        self._by_certificate = {
            a.client_cert_sha256: a for a in self._agencies if a.client_cert_sha256 is not None
        }

    # -- construction

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
    ) -> Directory:
        """Read a directory file. Raises :class:`InvalidDirectoryError` naming file, line, field."""
        file = Path(path)
        label = str(file)
        try:
            text = yamlfile.read_text(file)
        except yamlfile.YamlReadError as exc:
            raise InvalidDirectoryError(
                [DirectoryProblem(label, None, None, "", exc.problem.message)]
            ) from exc.cause
        loader = _Loader(text, label, file.resolve().parent, _var_rebase(file, environ))
        try:
            roles, entries = loader.load()
        finally:
            loader.close()
        problems = loader.problems + _cross_problems([(v, w) for v, w, _ in entries])
        if problems:
            problems.sort(key=lambda p: (p.line or 0, p.column or 0))
            raise InvalidDirectoryError(problems)
        agencies = [a for _, _, a in entries if a is not None]
        return cls(agencies, roles=roles, source=file, environ=environ)

    @classmethod
    def default(cls, *, environ: Mapping[str, str] | None = None) -> Directory:
        """The file named by ``AMTSBOTE_AGENCIES``, else the shipped OWL directory."""
        from .settings import AmtsboteSettings

        chosen = AmtsboteSettings.from_environ(environ, only=("agencies",)).agencies
        return cls.load(chosen or DEFAULT_PATH, environ=environ)

    # -- lookups

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def roles(self) -> tuple[str, ...]:
        return self._roles

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies)

    def __len__(self) -> int:
        return len(self._agencies)

    def __contains__(self, agency_id: object) -> bool:
        return agency_id in self._by_id

    def __repr__(self) -> str:
        return f"Directory({len(self)} agencies from {self._source or '<memory>'})"

    def _source_text(self) -> str | None:
        return str(self._source) if self._source is not None else None

    def get(self, agency_id: str) -> Agency:
        try:
            return self._by_id[agency_id]
        except KeyError:
            raise UnknownAgencyError(agency_id, source=self._source_text()) from None

    def by_role(self, role: str) -> tuple[Agency, ...]:
        """Agencies holding ``role``, in file order (may be empty for a declared role)."""
        if role not in self._roles:
            raise UnknownRoleError(role, known=self._roles, source=self._source_text())
        return tuple(a for a in self._agencies if role in a.roles)

    def by_behoerdenkennung(self, kennung: str) -> Agency:
        """The agency with ``praefix:kennung`` (praefix compared case-insensitively)."""
        try:
            return self._by_kennung[_kennung_key(kennung)]
        except KeyError:
            raise UnknownAgencyError(
                kennung, what="Behördenkennung", source=self._source_text()
            ) from None

    def hosted_by(self, agency_id: str) -> tuple[Agency, ...]:
        """Mailbox agencies whose mailbox is on the inbox of ``agency_id``."""
        self.get(agency_id)
        return tuple(a for a in self._agencies if a.mailbox_host == agency_id)

    def delivery_endpoint(self, agency_id: str) -> str | None:
        """Base URL a message for ``agency_id`` is POSTed to: its own endpoint (http), its mailbox
        host's (mailbox); None for file drop and transfer directories."""
        agency = self.get(agency_id)
        if agency.channel == Channel.MAILBOX and agency.mailbox_host is not None:
            return self.get(agency.mailbox_host).endpoint
        return agency.endpoint

    # -- tokens

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def dev_tokens(self) -> bool:
        return dev_tokens_enabled(self._env())

    def token_source(self, agency_id: str) -> str:
        """``env`` (variable set), ``dev`` (development token) or ``missing``; never the token."""
        agency = self.get(agency_id)
        env = self._env()
        if env.get(agency.token_env, "").strip():
            return "env"
        return "dev" if dev_tokens_enabled(env) else "missing"

    def token_for(self, agency_id: str) -> str:
        """The bearer token of ``agency_id``: its ``token_env`` variable; a development token when
        that is unset and ``AMTSBOTE_DEV_TOKENS`` is on; else :class:`MissingTokenError`."""
        agency = self.get(agency_id)
        env = self._env()
        value = env.get(agency.token_env, "").strip()
        if value:
            return value
        if dev_tokens_enabled(env):
            return dev_token(agency.id)
        raise MissingTokenError(agency.id, agency.token_env)

    def authenticate(self, token: str | None) -> Agency | None:
        """The agency whose token is ``token``, or None. Compares in constant time against every
        agency with a token (no early exit); agencies without a token are skipped. Raises
        :class:`AmbiguousTokenError` when several agencies share the token."""
        if not token:
            return None
        presented = token.strip().encode("utf-8")
        matches: list[Agency] = []
        for agency in self._agencies:
            try:
                expected = self.token_for(agency.id).encode("utf-8")
            except MissingTokenError:
                continue
            if hmac.compare_digest(presented, expected):
                matches.append(agency)
        if len(matches) > 1:
            raise AmbiguousTokenError(a.id for a in matches)
        return matches[0] if matches else None

    # -- certificates

    def authenticate_certificate(self, fingerprint: str | None) -> Agency | None:
        """The agency whose ``client_cert_sha256`` is ``fingerprint`` (any accepted spelling,
        see :func:`connectors.certificates.normalise_fingerprint`), or None. A malformed
        fingerprint raises :class:`~connectors.certificates.CertificateError`."""
        if not fingerprint:
            return None
        return self._by_certificate.get(normalise_fingerprint(fingerprint))

    # -- output

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self._source_text(),
                "roles": list(self._roles),
                "agencies": [a.to_dict() for a in self._agencies],
            },
            ensure_ascii=False,
            indent=2,
        )
