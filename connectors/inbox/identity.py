"""Who is calling: the client certificate (mutual TLS) and/or the bearer token → one agency.

One rule for every route group (:meth:`.service.InboxService.identify`, used by the FastAPI
dependency ``routes._caller``):

=============================  ========================  =====================================
certificate presented          bearer token              caller
=============================  ========================  =====================================
known (agency A)               none                      A, by ``certificate``
known (A)                      A's                       A, by ``certificate+token``
known (A)                      another agency's (B)      401 ``identity_conflict``
known (A)                      unknown                   401 ``invalid_token``
unknown                        any or none               401 ``unknown_certificate``
none                           A's                       A, by ``token``
none                           unknown                   401 ``invalid_token``
none                           none                      401 ``unauthorized``
=============================  ========================  =====================================

A presented certificate is a claim of identity: an unknown one is refused even when a valid
token comes along (no silent fallback), so that a renewed certificate whose fingerprint was not
entered in the directory shows up at once instead of being used without anyone noticing — and
a client whose certificate the client CA signed for another purpose cannot borrow a token.
(A certificate the client CA did not sign never gets here: the TLS handshake fails.)

Logs name the inbox, the agency ids, the method, the error code and the first 16 hex digits of
a fingerprint — never a token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..directory import Agency, AmbiguousTokenError, Directory
from .exceptions import ApiError
from .tls import TLS_EXTENSION, client_fingerprint

__all__ = ["CERTIFICATE", "CERTIFICATE_AND_TOKEN", "TOKEN", "Identity", "identify"]

log = logging.getLogger("connectors.inbox")

CERTIFICATE = "certificate"
TOKEN = "token"
CERTIFICATE_AND_TOKEN = "certificate+token"
_REALM = 'Bearer realm="amtsbote inbox"'


@dataclass(frozen=True, slots=True)
class Identity:
    """The calling ``agency``, how it was identified (``method``: ``certificate``, ``token`` or
    ``certificate+token``) and the fingerprint of its certificate (None without one)."""

    agency: Agency
    method: str
    fingerprint: str | None = None


def _short(fingerprint: str) -> str:
    return fingerprint[:16] + "…"


def _refuse(inbox: str, code: str, detail: str, *, status: int = 401, **log_ids: str) -> ApiError:
    ids = " ".join(f"{k}={v}" for k, v in log_ids.items())
    log.info("inbox %s: caller refused: %s %s", inbox, code, ids)
    error = "invalid_token" if code != "unauthorized" else None
    challenge = _REALM + (f', error="{error}"' if error else "")
    return ApiError(status, code, detail, headers={"WWW-Authenticate": challenge})


def _token_agency(directory: Directory, token: str, inbox: str) -> Agency | None:
    try:
        return directory.authenticate(token)
    except AmbiguousTokenError as exc:
        log.error("inbox %s: directory problem: %s", inbox, exc)
        return None


def identify(
    directory: Directory,
    source: Mapping[str, Any] | str | None,
    token: str | None,
    *,
    inbox: str,
) -> Identity:
    """The caller by the rule of the module docstring, or :class:`ApiError` 401. ``source``:
    the request's ASGI scope (its ``tls`` extension, :mod:`.tls`), the fingerprint itself or
    None; ``token``: the bearer token (None/empty: none sent); ``inbox``: the serving agency's
    id, for the log."""
    if isinstance(source, str) or source is None:
        fingerprint, mutual = source or None, bool(source)
    else:
        fingerprint = client_fingerprint(source)
        mutual = TLS_EXTENSION in (source.get("extensions") or {})
    token = (token or "").strip() or None
    by_cert: Agency | None = None
    if fingerprint is not None:
        by_cert = directory.authenticate_certificate(fingerprint)
        if by_cert is None:
            raise _refuse(
                inbox,
                "unknown_certificate",
                f"the client certificate (SHA-256 {fingerprint}) belongs to no agency of the "
                "directory: enter it as client_cert_sha256 of your agency, or connect without "
                "a certificate and authenticate by bearer token",
                certificate=_short(fingerprint),
            )
    by_token = _token_agency(directory, token, inbox) if token else None
    if token and by_token is None:
        raise _refuse(
            inbox,
            "invalid_token",
            "the bearer token belongs to no agency of the directory",
            certificate_agency=by_cert.id if by_cert else "-",
        )
    if by_cert is not None and by_token is not None and by_cert.id != by_token.id:
        raise _refuse(
            inbox,
            "identity_conflict",
            f"the client certificate identifies agency {by_cert.id}, the bearer token agency "
            f"{by_token.id}: send the token of the certificate's agency, or none",
            certificate_agency=by_cert.id,
            token_agency=by_token.id,
        )
    if by_cert is not None:
        method = CERTIFICATE_AND_TOKEN if by_token is not None else CERTIFICATE
        identity = Identity(by_cert, method, fingerprint)
    elif by_token is not None:
        identity = Identity(by_token, TOKEN)
    else:
        what = "no client certificate and no bearer token" if mutual else "no bearer token"
        raise _refuse(
            inbox,
            "unauthorized",
            f"{what}: send 'Authorization: Bearer <token of your agency>'"
            + (" or present your agency's client certificate" if mutual else ""),
        )
    log.debug("inbox %s: caller %s by %s", inbox, identity.agency.id, identity.method)
    return identity
