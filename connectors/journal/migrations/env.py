"""Alembic environment of the journal.

Used in three ways:

* programmatically (:func:`connectors.journal.migrate.upgrade`, ``amtsbote db upgrade``,
  ``Journal(create=True)``): the caller passes an open connection, already inside a transaction,
  in ``config.attributes["connection"]``; everything runs in that one transaction;
* from the ``alembic`` command with ``connectors/journal/alembic.ini`` (developers): the URL comes
  from ``sqlalchemy.url`` or the ``AMTSBOTE_*`` settings;
* offline (``--sql``): SQL is printed.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from connectors.journal.engine import WRITE_OPTION, create_journal_engine
from connectors.journal.migrate import VERSION_TABLE
from connectors.journal.models import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from connectors.config import Settings

    return Settings.from_env().database_url


def run_offline() -> None:
    _configure(url=_database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_with(given)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = create_journal_engine(_database_url())
    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
