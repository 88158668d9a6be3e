"""Every ``AMTSBOTE_*`` environment variable in one place: :class:`AmtsboteSettings`.

One field per variable (``AMTSBOTE_`` + the field name in upper case), with its type, default and
description; ``docs/settings.md`` is generated from the model (``python -m connectors.settings``)
and ``tests/test_settings.py`` checks that every ``AMTSBOTE_*`` name in the source tree is either a
field here or one of the :data:`DYNAMIC_VARIABLES` (names chosen in data files or by families).

Reading
    ``AmtsboteSettings()`` reads ``os.environ``; :meth:`AmtsboteSettings.from_environ` reads a given
    mapping (tests pass a dict) and raises :class:`~connectors.exceptions.ConfigError` naming the
    variable instead of pydantic's ``ValidationError``. ``only=`` restricts reading to some fields
    (the others keep their defaults), so that a component is not refused for a bad variable it
    never uses — the ``from_env()`` constructors of the components read just their own.

    Values are stripped; empty (or blank) variables count as unset.

The older readers (:class:`connectors.config.Settings`,
:class:`connectors.inbox.config.InboxConfig`, ``flows.runtime.FlowSettings``,
``flows.operations.LimitSettings``, :class:`connectors.directory.Directory`, …) keep their
``from_env()`` signatures and read through this model.

Not read here: ``AMTSBOTE_SCHEMA_PATH`` is read by :mod:`xoev.registry` itself (``xoev`` must not
import ``connectors``); the field documents and validates it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .exceptions import ConfigError

__all__ = [
    "DYNAMIC_VARIABLES",
    "ENV_PREFIX",
    "AmtsboteSettings",
    "data_file",
    "env_name",
    "installed_var_dir",
    "parse_duration",
    "settings_markdown",
]

ENV_PREFIX = "AMTSBOTE_"

#: Variables whose names are not fixed in code: name or prefix → what they are. They are read
#: where they are named (agencies.yaml, a family class), not through :class:`AmtsboteSettings`.
DYNAMIC_VARIABLES: dict[str, str] = {
    "AMTSBOTE_TOKEN_": "bearer token of one agency; the variable is named by the agency's "
    "`token_env` in agencies.yaml (e.g. `AMTSBOTE_TOKEN_STADT_PADERBORN`), read by "
    "`connectors.directory.Directory.token_for`",
    "AMTSBOTE_DAV_": "WebDAV basic-auth user/password of one agency, named by its "
    "`webdav_user_env`/`webdav_password_env` in agencies.yaml",
    "AMTSBOTE_ROUTING": "routing file of the Gewerbe family (its `Family.routing_env`; default: "
    "the packaged `deployments/owl/routing.yaml`), read by `Family.routing_path()`",
    "AMTSBOTE_ROUTING_": "routing file of another procedure family, named by the family's "
    "`routing_env` (e.g. `AMTSBOTE_ROUTING_AUSSONDERUNG`), read by `Family.routing_path()`",
    "AMTSBOTE_TEST_PG_ADMIN": "tests only: admin URL of the PostgreSQL server the tests use",
    "AMTSBOTE_BENCH_COPY": "benchmarks only (bench/)",
}

_TRUE = ("1", "on", "true", "yes")
_FALSE = ("0", "off", "false", "no")
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations of days, hours, minutes, seconds (``P10D``, ``PT30S``)."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"not an ISO 8601 duration like P10D or PT30M: {text!r}")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def data_file(name: str) -> Path:
    """A default data file of the OWL installation (``deployments/owl/<name>``), from the
    installed package ``deployments.owl`` (package data of the wheel; in a checkout or an editable
    install the repository's folder); an absolute path as it is."""
    if Path(name).is_absolute():
        return Path(name)
    try:
        from importlib.resources import files

        return Path(str(files("deployments.owl") / name))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - not installed, not a checkout
        return Path(__file__).resolve().parents[1] / "deployments" / "owl" / name


def installed_var_dir(file: Path) -> Path | None:
    """For a data file of an *installed* ``deployments.owl`` (a wheel in site-packages, not a
    checkout): the ``var`` folder its relative paths point into (``../../var/…`` = beside the
    package root), which stands for the data directory there. ``None`` for any other file and
    in a checkout (a ``pyproject.toml`` beside the ``deployments`` folder)."""
    folder = file.resolve().parent
    root = folder.parent.parent
    if (folder.name, folder.parent.name) != ("owl", "deployments"):
        return None
    if not (folder / "__init__.py").is_file() or (root / "pyproject.toml").is_file():
        return None
    return root / "var"


def env_name(field: str) -> str:
    """The environment variable of a settings field (``data_dir`` → ``AMTSBOTE_DATA_DIR``)."""
    return ENV_PREFIX + field.upper()


# --------------------------------------------------------------------------- the source

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("amtsbote_environ", default=None)
_ONLY: ContextVar[frozenset[str] | None] = ContextVar("amtsbote_only", default=None)


class _Environ(EnvSettingsSource):
    """The environment source reading :data:`_ENVIRON` (default ``os.environ``), values stripped,
    blank ones dropped, restricted to the ``only`` fields' variables when given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        env = os.environ if environ is None else environ
        only = _ONLY.get()
        wanted = None if only is None else {env_name(f).lower() for f in only}
        out: dict[str, str | None] = {}
        for key, value in env.items():
            low = key.lower()
            if not low.startswith(ENV_PREFIX.lower()) or value is None:
                continue
            if wanted is not None and low not in wanted:
                continue
            if str(value).strip():
                out[low] = str(value).strip()
        return out


@contextmanager
def _reading(environ: Mapping[str, str] | None, only: frozenset[str] | None) -> Iterator[None]:
    t1, t2 = _ENVIRON.set(environ), _ONLY.set(only)
    try:
        yield
    finally:
        _ENVIRON.reset(t1)
        _ONLY.reset(t2)


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected on or off, got {text!r}")
    return value


def _seconds_list(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        values = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"expected comma-separated seconds, got {value!r}") from exc
    if not values or any(v < 0 for v in values):
        raise ValueError(f"expected non-negative seconds, got {value!r}")
    return values


# --------------------------------------------------------------------------- the model


class AmtsboteSettings(BaseSettings):
    """All ``AMTSBOTE_*`` settings (see the module docstring and ``docs/settings.md``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_default=False,
    )

    # -- state -------------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("var"),
        validate_default=True,
        description="Directory for local state: the default SQLite journal, blobs, inbox journals "
        "of partner agencies, drop/transfer directories of the shipped OWL directory when "
        "installed from a wheel. Default `./var` below the *current working directory*, made "
        "absolute when read; services set it explicitly, e.g. `/var/lib/amtsbote`.",
    )
    database_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL of the message journal (`sqlite:///<data dir>/journal.sqlite` "
        "when unset). PostgreSQL: `postgresql+psycopg://user@host/db`.",
    )
    journal_key: SecretStr | None = Field(
        default=None,
        description="Fernet key encrypting stored payloads and blobs. Several comma-separated keys "
        "rotate: the first encrypts, all decrypt. Create one with `amtsbote db genkey`. Unset: "
        "the key file `<data dir>/journal.key` is used, created on first run (mode 0600, a new "
        "random key) by every command that opens the journal — keep it with the backups of the "
        "journal (without it the payloads are lost) and give every host sharing a PostgreSQL "
        "journal the same key (this variable or a copy of the file).",
    )
    journal_plaintext: bool = Field(
        default=False,
        description="`on`: store new payloads compressed but **not encrypted** when "
        "`AMTSBOTE_JOURNAL_KEY` is unset (no key file is created or read); logged as a warning "
        "at every start. Only for tests and debugging.",
    )
    retention: Path | None = Field(
        default=None,
        description="Retention file (default: the packaged `deployments/owl/retention.yaml`).",
    )
    # -- agencies ----------------------------------------------------------------------------
    agencies: Path | None = Field(
        default=None,
        description="Agency directory file (default: the packaged `deployments/owl/agencies.yaml`"
        "). Relative paths inside it are relative to that file.",
    )
    dev_tokens: bool = Field(
        default=False,
        description="`on`: an agency whose token variable is unset gets a deterministic, public "
        "development token. Never in production.",
    )
    home_agency: str = Field(
        default="stadt-paderborn",
        description="Id of the agency this installation runs its procedures for; its inbox uses "
        "the main journal, other agencies' inboxes get `<data dir>/inbox/<id>.sqlite`.",
    )
    inbox_max_container_bytes: int | None = Field(
        default=None,
        description="Largest accepted xdomea container body of the inbox in bytes (default "
        "2 GiB, see `InboxConfig.max_container_bytes`).",
    )
    inbox_queue_per_sender: int | None = Field(
        default=None,
        description="Messages of one sender the inbox has in progress at once (reading, waiting "
        "or working) before it answers 429 (default 32, see `InboxConfig.queue_per_sender`).",
    )
    inbox_queue_total: int | None = Field(
        default=None,
        description="Messages of all senders the inbox has in progress at once before it "
        "answers 503 (default 64, see `InboxConfig.queue_total`).",
    )
    schema_path: str | None = Field(
        default=None,
        description="Extra directories with XSD bundles and codelists, `os.pathsep`-separated; "
        "read by `xoev.registry` itself (xoev does not import connectors).",
    )
    # -- procedures ----------------------------------------------------------------------------
    send_retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        default=(2.0, 10.0, 60.0, 300.0),
        description="Comma-separated seconds between send attempts; their number is the number "
        "of retries.",
    )
    receipt_wait: timedelta = Field(
        default=timedelta(seconds=60),
        description="How long `await_receipts` waits for mailbox agencies to fetch (ISO 8601 "
        "duration, e.g. `PT60S`).",
    )
    poll_interval: float = Field(default=2.0, description="Seconds between checks while waiting.")
    suspend: bool = Field(
        default=True,
        description="`on`: a run from a deployment that waits for an approval or a reply is "
        "suspended (frees the worker); `off`: it pauses in-process.",
    )
    agency_limits: bool = Field(
        default=True,
        description="`on`: sends take a slot of the agency's Prefect global concurrency limit.",
    )
    limit_wait: float = Field(
        default=600.0,
        description="Seconds to wait for a concurrency slot before the send attempt fails "
        "(transiently); > 0.",
    )
    # -- installation --------------------------------------------------------------------------
    home: Path | None = Field(
        default=None,
        description="Code directory of the installation that `prefect deploy` runs in (default: "
        "the directory of this code).",
    )
    prefect_database_url: str | None = Field(
        default=None,
        repr=False,
        description="Database of the Prefect server started by `amtsbote serve` (default: "
        "Prefect's SQLite).",
    )

    # -- validators ----------------------------------------------------------------------------

    @field_validator("data_dir", mode="after")
    @classmethod
    def _data_dir(cls, value: Path) -> Path:
        path = value.expanduser()
        try:
            path = path.resolve()
        except OSError as exc:  # pragma: no cover - e.g. a broken cwd
            raise ValueError(f"cannot resolve {path}: {exc}") from exc
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory")
        return path

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from .config import mask_url

        try:
            parsed = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {mask_url(value)}") from exc
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported database {backend!r} in {mask_url(value)} (use sqlite or postgresql)"
            )
        return value

    @field_validator("agencies", "retention", "home", mode="after")
    @classmethod
    def _path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("dev_tokens", "suspend", "agency_limits", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> Any:
        return _flag(value)

    @field_validator("send_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        return _seconds_list(value, "send_retry_delays")

    @field_validator("poll_interval", mode="before")
    @classmethod
    def _poll(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"expected seconds, got {value!r}") from None
            if seconds < 0:
                raise ValueError(f"expected non-negative seconds, got {value!r}")
            return seconds
        return value

    @field_validator("limit_wait", mode="before")
    @classmethod
    def _limit_wait(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"expected seconds, got {value!r}") from None
        if isinstance(value, int | float) and value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("receipt_wait", mode="before")
    @classmethod
    def _receipt_wait(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator(
        "inbox_max_container_bytes", "inbox_queue_per_sender", "inbox_queue_total", mode="before"
    )
    @classmethod
    def _container_bytes(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a number") from None
        return value

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environ(settings_cls))

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, only: Iterable[str] | None = None
    ) -> AmtsboteSettings:
        """The settings from ``environ`` (default ``os.environ``); ``only``: read just these
        fields (the others keep their defaults). Raises :class:`ConfigError` naming the variable
        (``setting``) of the first bad value."""
        chosen = None if only is None else frozenset(only)
        if chosen is not None and (unknown := chosen - set(cls.model_fields)):
            raise ValueError(f"no such settings field: {', '.join(sorted(unknown))}")
        try:
            with _reading(environ, chosen):
                return cls()
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Environment variable → field name."""
        return {env_name(name): name for name in cls.model_fields}


def _config_error(exc: ValidationError) -> ConfigError:
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        var = env_name(name)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ValueError):
            message = str(cause)
        else:
            message = f"{error['msg']}, got {error.get('input')!r}"
        problems.append((var, message))
    var, message = problems[0]
    for other, text in problems[1:]:
        message += f"; {other}: {text}"
    return ConfigError(var, message)


# --------------------------------------------------------------------------- documentation


_KINDS = {
    "Path": "path",
    "str": "text",
    "SecretStr": "secret text",
    "bool": "flag",
    "int": "integer",
    "float": "seconds",
    "timedelta": "ISO 8601 duration",
}


def _type_text(annotation: Any) -> str:
    text = str(annotation)
    for noise in ("typing.", "pathlib.", "datetime.", "pydantic.types.", "<class '", "'>"):
        text = text.replace(noise, "")
    text = re.sub(r"Annotated\[(.*), NoDecode\]", r"\1", text)
    optional = text.endswith(" | None")
    text = text.removesuffix(" | None")
    if text == "tuple[float, ...]":
        text = "comma-separated seconds"
    text = _KINDS.get(text, text)
    return f"{text}, optional" if optional else text


def _default_text(name: str, value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, timedelta):
        return f"PT{int(value.total_seconds())}S"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_markdown() -> str:
    """``docs/settings.md``: one table row per variable, then the dynamic variables."""
    lines = [
        "# Settings (`AMTSBOTE_*` environment variables)",
        "",
        "Generated from `connectors/settings.py` (`AmtsboteSettings`) by "
        "`python -m connectors.settings > docs/settings.md`; `tests/test_settings.py` fails when "
        "this file is out of date. Values are stripped; an empty variable counts as unset. Flags "
        "take `1`/`on`/`true`/`yes` or `0`/`off`/`false`/`no`. A bad value is refused with an "
        "error naming the variable.",
        "",
        "| variable | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, info in AmtsboteSettings.model_fields.items():
        description = (info.description or "").replace("|", "\\|")
        lines.append(
            f"| `{env_name(name)}` | {_type_text(info.annotation)} | "
            f"`{_default_text(name, info.default)}` | {description} |"
        )
    lines += [
        "",
        "## Default data files",
        "",
        "Without `AMTSBOTE_AGENCIES`, `AMTSBOTE_RETENTION` or a family's routing variable the "
        "files of the package `deployments.owl` are read (`agencies.yaml`, `routing.yaml`, "
        "`retention.yaml`; package data of the wheel, found with "
        '`importlib.resources.files("deployments.owl")`). Relative paths in a directory file '
        "(`drop_dir`, `transfer_dir`, `webdav_ca`) are relative to that file. In a checkout the "
        "shipped `../../var/drop/…` is therefore the repository's `var/`; in an installed wheel "
        "(the file lies in site-packages, no `pyproject.toml` beside `deployments/`) a path into "
        "that `var/` is taken as a path into `AMTSBOTE_DATA_DIR` instead "
        "(`var/drop/x` → `<data dir>/drop/x`), so nothing is written into site-packages.",
        "",
        "## Variables with names chosen elsewhere",
        "",
        "Not fields of the model: their names come from data files or code (a trailing `_` means "
        "a prefix).",
        "",
        "| name or prefix | what |",
        "|---|---|",
    ]
    for var, what in DYNAMIC_VARIABLES.items():
        lines.append(f"| `{var}` | {what} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(settings_markdown(), end="")
