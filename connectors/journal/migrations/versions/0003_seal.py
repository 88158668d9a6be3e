"""The sealed journal: a SHA-256 hash chain over ``events`` (``seq``, ``prev_hash``, ``hash``,
``message_id``, ``message_digest``), its head ``journal_seal``, and triggers that refuse changes
of the sealed message columns and deletion of messages. Existing events are chained in id order;
every existing message gets a ``message.sealed`` event (see :mod:`connectors.journal.seal`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

#: Must equal connectors.journal.seal.SEALED_MESSAGE_COLUMNS (a test checks it).
SEALED = (
    "id",
    "nachrichten_uuid",
    "direction",
    "standard",
    "version",
    "message_type",
    "author",
    "reader",
    "sender_agency",
    "payload_sha512",
    "size",
    "created_at",
    "recorded_at",
    "in_reply_to",
)

_SQLITE_EVENT_TRIGGERS = (
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN "
    "SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
    "SELECT RAISE(ABORT, 'events is append-only: DELETE refused'); END",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("message_id", sa.BigInteger(), nullable=True))
    op.add_column("events", sa.Column("message_digest", sa.String(64), nullable=True))
    op.create_index("ix_events_seq", "events", ["seq"], unique=True)
    op.create_index("ix_events_message_id", "events", ["message_id"])
    op.create_table(
        "journal_seal",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_seal"),
        sa.CheckConstraint("id = 1", name="ck_journal_seal_single_row"),
        sa.CheckConstraint("seq >= 0", name="ck_journal_seal_seq"),
    )

    # chain what is there (the append-only trigger has to step aside for this one update)
    if dialect == "postgresql":
        op.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
    from connectors.journal.seal import seal_existing

    seal_existing(op.get_bind(), datetime.now(UTC))
    if dialect == "postgresql":
        op.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    else:
        op.execute(_SQLITE_EVENT_TRIGGERS[0])

    if dialect == "postgresql":
        new = ", ".join(f"NEW.{c}" for c in SEALED)
        old = ", ".join(f"OLD.{c}" for c in SEALED)
        op.execute(
            f"""
            CREATE FUNCTION amtsbote_messages_sealed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'messages are sealed: DELETE refused'
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                IF ROW({new}) IS DISTINCT FROM ROW({old}) THEN
                    RAISE EXCEPTION 'messages are sealed: UPDATE of sealed columns refused'
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER messages_sealed BEFORE UPDATE OR DELETE ON messages "
            "FOR EACH ROW EXECUTE FUNCTION amtsbote_messages_sealed()"
        )
    elif dialect == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in SEALED)
        op.execute(
            f"CREATE TRIGGER messages_sealed BEFORE UPDATE OF {', '.join(SEALED)} ON messages "
            f"WHEN {changed} BEGIN "
            "SELECT RAISE(ABORT, 'messages are sealed: UPDATE of sealed columns refused'); END"
        )
        op.execute(
            "CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages BEGIN "
            "SELECT RAISE(ABORT, 'messages are sealed: DELETE refused'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS messages_sealed ON messages")
        op.execute("DROP FUNCTION IF EXISTS amtsbote_messages_sealed()")
    else:
        op.execute("DROP TRIGGER IF EXISTS messages_sealed")
        op.execute("DROP TRIGGER IF EXISTS messages_no_delete")
    op.drop_table("journal_seal")
    op.drop_index("ix_events_message_id", table_name="events")
    op.drop_index("ix_events_seq", table_name="events")
    for column in ("message_digest", "message_id", "hash", "prev_hash", "seq"):
        if dialect == "sqlite":
            op.execute(f"ALTER TABLE events DROP COLUMN {column}")
        else:
            op.drop_column("events", column)
