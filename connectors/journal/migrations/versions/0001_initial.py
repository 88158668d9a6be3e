"""Initial journal schema: cases, messages, deliveries, delivery_attempts, events, expectations,
and the triggers that make ``events`` append-only.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("procedure", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("summary", Json, nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", name="pk_cases"),
        sa.CheckConstraint(
            "status IN ('open', 'waiting', 'closed', 'failed', 'cancelled')",
            name="ck_cases_status",
        ),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_procedure", "cases", ["procedure"])
    op.create_index("ix_cases_flow_run_id", "cases", ["flow_run_id"])

    op.create_table(
        "messages",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("nachrichten_uuid", sa.String(36), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("standard", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("reader", sa.String(200), nullable=True),
        sa.Column("sender_agency", sa.String(200), nullable=True),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_encoding", sa.String(16), nullable=False),
        sa.Column("payload_sha512", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=True),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.Column("in_reply_to", sa.String(36), nullable=True),
        sa.Column("correlation_state", sa.String(10), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name="fk_messages_case_id_cases"),
        sa.UniqueConstraint(
            "nachrichten_uuid", "direction", name="uq_messages_nachrichten_uuid_direction"
        ),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_messages_direction"),
        sa.CheckConstraint(
            "payload_encoding IN ('zlib', 'zlib+fernet')", name="ck_messages_payload_encoding"
        ),
        sa.CheckConstraint(
            "(direction = 'outbound' AND correlation_state IS NULL) OR "
            "(direction = 'inbound' AND correlation_state IN ('unmatched', 'matched', 'consumed'))",
            name="ck_messages_correlation_state",
        ),
    )
    op.create_index("ix_messages_case_id", "messages", ["case_id"])
    op.create_index("ix_messages_in_reply_to", "messages", ["in_reply_to"])
    op.create_index(
        "ix_messages_direction_correlation_state", "messages", ["direction", "correlation_state"]
    )
    op.create_index("ix_messages_recorded_at", "messages", ["recorded_at"])

    op.create_table(
        "deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_deliveries_message_id_messages"
        ),
        sa.UniqueConstraint("message_id", "recipient", name="uq_deliveries_message_id_recipient"),
        sa.CheckConstraint(
            "state IN ('created', 'sent', 'delivered', 'fetched', 'failed', 'dead')",
            name="ck_deliveries_state",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_deliveries_attempts"),
    )
    op.create_index("ix_deliveries_recipient_state", "deliveries", ["recipient", "state"])
    op.create_index(
        "ix_deliveries_state_next_attempt_at", "deliveries", ["state", "next_attempt_at"]
    )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("delivery_id", BigId, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(100), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name="fk_delivery_attempts_delivery_id_deliveries"
        ),
        sa.CheckConstraint("outcome IN ('ok', 'error')", name="ck_delivery_attempts_outcome"),
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])

    op.create_table(
        "events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("nachrichten_uuid", sa.String(36), nullable=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_case_id", "events", ["case_id"])
    op.create_index("ix_events_nachrichten_uuid", "events", ["nachrichten_uuid"])
    op.create_index("ix_events_delivery_id", "events", ["delivery_id"])
    op.create_index("ix_events_at", "events", ["at"])

    op.create_table(
        "expectations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("message_type", sa.String(100), nullable=True),
        sa.Column("from_agency", sa.String(200), nullable=True),
        sa.Column("in_reply_to", sa.String(36), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reply_uuid", sa.String(36), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_expectations"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.case_id"], name="fk_expectations_case_id_cases"
        ),
        sa.CheckConstraint(
            "state IN ('waiting', 'satisfied', 'expired')", name="ck_expectations_state"
        ),
        sa.CheckConstraint(
            "in_reply_to IS NOT NULL OR message_type IS NOT NULL",
            name="ck_expectations_criterion",
        ),
    )
    op.create_index("ix_expectations_case_id", "expectations", ["case_id"])
    op.create_index("ix_expectations_state_in_reply_to", "expectations", ["state", "in_reply_to"])
    op.create_index("ix_expectations_flow_run_id", "expectations", ["flow_run_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Payloads are compressed already: skip TOAST's own compression attempt.
        op.execute("ALTER TABLE messages ALTER COLUMN payload SET STORAGE EXTERNAL")
        op.execute(
            """
            CREATE FUNCTION amtsbote_events_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'events is append-only: % refused', TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION amtsbote_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION amtsbote_events_append_only()"
        )
    elif dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN "
            "SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
            "SELECT RAISE(ABORT, 'events is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS amtsbote_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    for table in (
        "expectations",
        "events",
        "delivery_attempts",
        "deliveries",
        "messages",
        "cases",
    ):
        op.drop_table(table)
