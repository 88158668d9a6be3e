"""Settings of the connectors, read from ``AMTSBOTE_*`` environment variables (through
:class:`connectors.settings.AmtsboteSettings`, where every variable is declared).

=========================  ===============================================================
variable                   meaning (default)
=========================  ===============================================================
``AMTSBOTE_DATA_DIR``      directory for local state (``./var`` below the *current working
                           directory*, made absolute when read). Chosen over
                           ``~/.local/share/amtsbote`` because a checkout's ``make demo`` then
                           keeps its state beside the project (``/var/`` is git-ignored) and
                           nothing is hidden in the home directory; services set it explicitly,
                           e.g. ``/var/lib/amtsbote``.
``AMTSBOTE_DATABASE_URL``  SQLAlchemy URL of the message journal (``sqlite:///<data dir>/
                           journal.sqlite``). PostgreSQL: ``postgresql+psycopg://user@host/db``.
``AMTSBOTE_JOURNAL_KEY``   Fernet key encrypting stored payloads (unset: the key file
                           ``<data dir>/journal.key``, created 0600 on first run, see
                           :mod:`connectors.journal.keyfile`). Several comma-separated keys
                           rotate: the first encrypts, all decrypt. Create one with
                           ``amtsbote db genkey``. Passphrases are refused on purpose (see
                           :mod:`connectors.journal.crypto`). With
                           ``AMTSBOTE_JOURNAL_PLAINTEXT=1`` instead: no key file, payloads
                           stored **not encrypted** (logged as a warning; tests, debugging).
=========================  ===============================================================

Empty variables count as unset. The key and the database password are kept out of ``repr()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import ConfigError

__all__ = [
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "JOURNAL_FILE_NAME",
    "JOURNAL_KEY_ENV",
    "Settings",
    "default_sqlite_url",
    "mask_url",
]

DATA_DIR_ENV = "AMTSBOTE_DATA_DIR"
DATABASE_URL_ENV = "AMTSBOTE_DATABASE_URL"
JOURNAL_KEY_ENV = "AMTSBOTE_JOURNAL_KEY"
#: Default data directory, relative to the current working directory.
DEFAULT_DATA_DIR = Path("var")
JOURNAL_FILE_NAME = "journal.sqlite"


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Not parseable: show only the scheme, the rest may hold a secret.
        scheme = url.split(":", 1)[0] if ":" in url else "?"
        return f"{scheme}://…"


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Where the connectors keep their state. Build with :meth:`from_env` or directly.

    ``repr()`` masks the database password and shows only whether a key is set."""

    data_dir: Path
    """Absolute directory for local state (the default SQLite journal lives here)."""
    database_url: str
    """SQLAlchemy URL of the journal database."""
    journal_key: str | None = field(default=None, repr=False)
    """Fernet key(s) for payload encryption at rest, comma-separated, as configured; ``None``:
    the key file of the data dir (:func:`connectors.journal.keyfile.journal_key_for`)."""
    journal_plaintext: bool = False
    """Explicit opt-out of encryption when no key is configured."""

    def __repr__(self) -> str:
        return (
            f"Settings(data_dir={str(self.data_dir)!r}, "
            f"database_url={mask_url(self.database_url)!r}, "
            f"journal_key={'<set>' if self.journal_key else None})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``AMTSBOTE_*`` variables from ``environ`` (default ``os.environ``)."""
        from .settings import AmtsboteSettings

        read = AmtsboteSettings.from_environ(
            environ, only=("data_dir", "database_url", "journal_key", "journal_plaintext")
        )
        url = read.database_url or default_sqlite_url(read.data_dir)
        key = read.journal_key.get_secret_value() if read.journal_key is not None else None
        return cls(
            data_dir=read.data_dir,
            database_url=url,
            journal_key=key,
            journal_plaintext=read.journal_plaintext,
        )

    @property
    def journal_file(self) -> Path | None:
        """The SQLite journal file, or ``None`` when the journal is not a SQLite file."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database or "")

    def ensure_data_dir(self) -> Path:
        """Create the data directory (mode 0700 when new) and return it."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(DATA_DIR_ENV, f"cannot create {self.data_dir}: {exc}") from exc
        return self.data_dir


def default_sqlite_url(data_dir: Path) -> str:
    """``sqlite:///<data_dir>/journal.sqlite``."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(data_dir / JOURNAL_FILE_NAME)).render_as_string(
        hide_password=False
    )
