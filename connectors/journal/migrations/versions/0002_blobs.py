"""Primary documents outside the message rows: ``blobs`` (content-addressed files below the data
dir, see :mod:`connectors.journal.blobs`) and ``message_blobs`` (which message holds which file
under which name).

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_blobs"),
        sa.CheckConstraint("size >= 0 AND stored_size >= 0", name="ck_blobs_size"),
        sa.CheckConstraint("length(digest) = 128", name="ck_blobs_digest"),
    )
    op.create_table(
        "message_blobs",
        sa.Column("message_key", sa.String(36), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("message_key", "name", name="pk_message_blobs"),
        sa.ForeignKeyConstraint(["digest"], ["blobs.digest"], name="fk_message_blobs_digest_blobs"),
    )
    op.create_index("ix_message_blobs_digest", "message_blobs", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_message_blobs_digest", table_name="message_blobs")
    op.drop_table("message_blobs")
    op.drop_table("blobs")
