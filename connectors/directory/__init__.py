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

from .core import Directory
from .errors import (
    DEV_TOKENS_ENV,
    AmbiguousTokenError,
    DirectoryError,
    DirectoryProblem,
    InvalidDirectoryError,
    MissingTokenError,
    TokenError,
    UnknownAgencyError,
    UnknownRoleError,
)
from .model import (
    AGENCIES_ENV,
    DEFAULT_CONCURRENCY,
    DEFAULT_PATH,
    DEFAULT_RATE_LIMIT,
    Agency,
    Channel,
    dev_token,
    dev_tokens_enabled,
)

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
