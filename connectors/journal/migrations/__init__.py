"""Alembic migrations of the journal (``script_location = connectors.journal:migrations``)."""
