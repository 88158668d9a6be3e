"""Running the journal's Alembic migrations from code (no ``alembic.ini`` needed).

The scripts live in the package (``connectors/journal/migrations``) and are found through the
package, so this works from a checkout and when installed. The revision is kept in the table
``amtsbote_journal_version`` so that the journal can share a database with other Alembic users.

:func:`upgrade` runs in one transaction, serialised against concurrent upgraders (PostgreSQL:
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so several services starting at once are harmless,
and running it again at head changes nothing.

Alembic is imported only to migrate: checking a database's revision (every journal opened
without ``create``, e.g. in each flow-run process) reads the version table with plain SQL and
compares it with :data:`HEAD_REVISION`, which a test keeps equal to the scripts' head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

from .engine import WRITE_OPTION

__all__ = [
    "HEAD_REVISION",
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "UpgradeResult",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]

SCRIPT_LOCATION = "connectors.journal:migrations"
VERSION_TABLE = "amtsbote_journal_version"
#: The newest revision of the scripts in ``migrations/versions`` (raise it with each new one).
HEAD_REVISION = "0004"
#: pg_advisory_xact_lock key serialising journal migrations ("amtsbote" in ASCII, truncated).
_PG_LOCK_KEY = 0x616D7473626F7465 & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the journal; ``connection`` is used by ``env.py`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code (:data:`HEAD_REVISION`)."""
    return HEAD_REVISION


def script_head_revision() -> str | None:
    """The head revision as the migration scripts say (Alembic reads them)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` for an empty (never migrated) database."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches: not used by the journal; report them as Alembic would refuse
        raise ValueError(f"{VERSION_TABLE} holds several revisions: {sorted(rows)}")
    return rows[0] if rows else None


def upgrade(engine: Engine, revision: str = "head") -> UpgradeResult:
    """Migrate the database behind ``engine`` to ``revision`` (default: head)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            before = current_revision(conn)
            from alembic import command

            command.upgrade(alembic_config(conn), revision)
            after = current_revision(conn)
    return UpgradeResult(before=before, after=after)


def downgrade(engine: Engine, revision: str) -> UpgradeResult:
    """Migrate down to ``revision`` (``base`` removes the journal schema; data is lost)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            before = current_revision(conn)
            from alembic import command

            command.downgrade(alembic_config(conn), revision)
            after = current_revision(conn)
    return UpgradeResult(before=before, after=after)
