"""Dead letters in the store: the report's "dead letters by reason" (issue 17) reads them.

Keyed by the SHA-256 of the dead letter's canonical JSON (see streams/store/schema.py). `raw`
and `error` in `payload` may quote a position; retention erases them like an alert's position.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source_topic", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index(op.f("ix_dead_letters_reason"), "dead_letters", ["reason"], unique=False)
    op.create_index(op.f("ix_dead_letters_ts"), "dead_letters", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_ts"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_reason"), table_name="dead_letters")
    op.drop_table("dead_letters")
