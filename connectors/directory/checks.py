"""Value and cross-agency checks shared by the YAML loader and ``Agency(...)``/``Directory(...)``:
each problem names the file, line, column and field."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..certificates import check_fingerprint, normalise_fingerprint
from .errors import DirectoryProblem
from .model import _ENV_NAME, _KENNUNG, _SLUG, MAX_CONCURRENCY, Agency, Channel, _str_or_none

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
    "xta_url": (_STR, False, _check_url),
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
    Channel.XTA: (("xta_url",), ()),
    Channel.WEBDAV: (("webdav_url", "webdav_user_env", "webdav_password_env"), ("webdav_ca",)),
}
#: the TLS material used toward an agency, and the channels that connect over HTTPS with it
_TLS_FIELDS = ("tls_client_cert", "tls_client_key", "tls_ca")
_TLS_CHANNELS = frozenset({Channel.HTTP, Channel.XTA})
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
        "xta_url": agency.xta_url,
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
        "xta_url",
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
            elif name in ("endpoint", "webdav_url", "xta_url"):
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
