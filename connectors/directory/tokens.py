"""The token policy an inbox checks before it starts (issue 12, point 3).

:func:`check_tokens` looks at the bearer tokens of the agencies an inbox accepts and returns a
:class:`TokenCheck`: ``refusals`` (the inbox must not start; each names the variables to set,
never a token) and ``warnings`` (printed loudly). The rules:

* **development tokens** (``AMTSBOTE_DEV_TOKENS=1``: derived from the public agency ids) only on a
  loopback bind, and always with a warning naming the agencies that get one;
* without them, every accepted agency needs its ``token_env`` variable — a server that starts
  anyway answers every delivery 401 while ``/healthz`` says ok;
* a token is at least :data:`MIN_TOKEN_LENGTH` characters;
* no two agencies share a token (the caller could not be told apart).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .core import Directory
from .errors import DEV_TOKENS_ENV

__all__ = ["MIN_TOKEN_LENGTH", "TokenCheck", "check_tokens", "is_loopback"]

MIN_TOKEN_LENGTH = 32


@dataclass(frozen=True, slots=True)
class TokenCheck:
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.refusals


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` or ``localhost``: reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_tokens(
    directory: Directory,
    *,
    host: str,
    accepting: Iterable[str] | None = None,
    client_certificates: bool = False,
) -> TokenCheck:
    """The policy above for an inbox bound to ``host`` that accepts the agencies ``accepting``
    (ids; default: every agency of the directory). ``client_certificates``: the inbox runs
    mutual TLS, so an agency with a certificate fingerprint in the directory needs no token."""
    env = os.environ if directory.environ is None else directory.environ
    ids = sorted(accepting) if accepting is not None else [a.id for a in directory]
    agencies = [directory.get(i) for i in ids]
    refusals: list[str] = []
    warnings: list[str] = []
    missing = [
        a
        for a in agencies
        if not env.get(a.token_env, "").strip()
        and not (client_certificates and a.client_cert_sha256)
    ]
    if directory.dev_tokens:
        if not is_loopback(host):
            refusals.append(
                f"{DEV_TOKENS_ENV}=1 with a bind on {host}: development tokens are derived from "
                "the public agency ids, anyone could send as any agency; they are only allowed "
                "on a loopback bind (127.0.0.1) — unset the variable and set the agencies' "
                "token variables"
            )
        elif missing:
            warnings.append(
                f"DEVELOPMENT TOKENS ({DEV_TOKENS_ENV}=1): {', '.join(a.id for a in missing)} "
                "authenticate with public development tokens — anyone on this machine can "
                "send as them. Not for production"
            )
    elif missing:
        refusals.append(
            "no token for "
            + ", ".join(f"{a.id} (set {a.token_env})" for a in missing)
            + ": every delivery from them would be refused 401; set the variables (each at "
            f"least {MIN_TOKEN_LENGTH} characters: `openssl rand -hex 32`) or, on a loopback "
            f"trial, {DEV_TOKENS_ENV}=1"
        )
    by_token: dict[str, list[str]] = {}
    for a in agencies:
        value = env.get(a.token_env, "").strip()
        if not value:
            continue
        if len(value) < MIN_TOKEN_LENGTH:
            refusals.append(
                f"{a.token_env} (agency {a.id}) is {len(value)} characters long; a token needs "
                f"at least {MIN_TOKEN_LENGTH}"
            )
        by_token.setdefault(value, []).append(f"{a.token_env} ({a.id})")
    for names in by_token.values():
        if len(names) > 1:
            refusals.append(
                f"{' and '.join(names)} hold the same token: the inbox could not tell these "
                "agencies apart; give each its own"
            )
    return TokenCheck(refusals=tuple(refusals), warnings=tuple(warnings))
