"""The :class:`Directory`: lookup by id, Behördenkennung and role; tokens; certificates."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .. import yamlfile
from ..certificates import normalise_fingerprint
from .checks import _agency_values, _cross_problems, _kennung_key, _role_problems, _Where
from .errors import (
    AmbiguousTokenError,
    DirectoryProblem,
    InvalidDirectoryError,
    MissingTokenError,
    UnknownAgencyError,
    UnknownRoleError,
)
from .loader import _Loader, _var_rebase
from .model import DEFAULT_PATH, Agency, Channel, dev_token, dev_tokens_enabled

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
        from ..settings import AmtsboteSettings

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

    @property
    def environ(self) -> Mapping[str, str] | None:
        """The environment given at construction (None: ``os.environ`` at each call)."""
        return self._environ

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
