"""The record store's first schema: bans, ban lifts, alerts, tasks, task updates, audit,
protected-person notifications (see streams/store/schema.py for why each key is what it is).

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("ban_id", sa.String(length=128), nullable=True),
        sa.Column("restrained_person", sa.String(length=128), nullable=True),
        sa.Column("protected_person", sa.String(length=128), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", "seq"),
    )
    op.create_index(op.f("ix_alerts_ban_id"), "alerts", ["ban_id"], unique=False)
    op.create_index(op.f("ix_alerts_kind"), "alerts", ["kind"], unique=False)
    op.create_index(
        op.f("ix_alerts_protected_person"), "alerts", ["protected_person"], unique=False
    )
    op.create_index(
        op.f("ix_alerts_restrained_person"), "alerts", ["restrained_person"], unique=False
    )
    op.create_index(op.f("ix_alerts_state"), "alerts", ["state"], unique=False)
    op.create_index(op.f("ix_alerts_ts"), "alerts", ["ts"], unique=False)
    op.create_table(
        "audit",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("object", sa.String(length=256), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index(op.f("ix_audit_actor"), "audit", ["actor"], unique=False)
    op.create_index(op.f("ix_audit_object"), "audit", ["object"], unique=False)
    op.create_index(op.f("ix_audit_ts"), "audit", ["ts"], unique=False)
    op.create_table(
        "ban_lifts",
        sa.Column("ban_id", sa.String(length=128), nullable=False),
        sa.Column("lifted_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ban_id", "lifted_ms"),
    )
    op.create_table(
        "bans",
        sa.Column("ban_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("restrained_person", sa.String(length=128), nullable=True),
        sa.Column("valid_from", sa.DateTime(), nullable=True),
        sa.Column("valid_until", sa.DateTime(), nullable=True),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("ban_id", "version"),
    )
    op.create_index(op.f("ix_bans_restrained_person"), "bans", ["restrained_person"], unique=False)
    op.create_table(
        "protected_notifications",
        sa.Column("notification_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=True),
        sa.Column("ban_id", sa.String(length=128), nullable=True),
        sa.Column("alert_id", sa.String(length=128), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("notification_id"),
    )
    op.create_index(
        op.f("ix_protected_notifications_ban_id"),
        "protected_notifications",
        ["ban_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_protected_notifications_person_id"),
        "protected_notifications",
        ["person_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_protected_notifications_ts"), "protected_notifications", ["ts"], unique=False
    )
    op.create_table(
        "task_updates",
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "ts", "action", "by"),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("alert_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("ban_id", sa.String(length=128), nullable=True),
        sa.Column("restrained_person", sa.String(length=128), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("record_ms", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "seq"),
    )
    op.create_index(op.f("ix_tasks_alert_id"), "tasks", ["alert_id"], unique=False)
    op.create_index(op.f("ix_tasks_ban_id"), "tasks", ["ban_id"], unique=False)
    op.create_index(op.f("ix_tasks_ts"), "tasks", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_ts"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_ban_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_alert_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("task_updates")
    op.drop_index(op.f("ix_protected_notifications_ts"), table_name="protected_notifications")
    op.drop_index(
        op.f("ix_protected_notifications_person_id"), table_name="protected_notifications"
    )
    op.drop_index(op.f("ix_protected_notifications_ban_id"), table_name="protected_notifications")
    op.drop_table("protected_notifications")
    op.drop_index(op.f("ix_bans_restrained_person"), table_name="bans")
    op.drop_table("bans")
    op.drop_table("ban_lifts")
    op.drop_index(op.f("ix_audit_ts"), table_name="audit")
    op.drop_index(op.f("ix_audit_object"), table_name="audit")
    op.drop_index(op.f("ix_audit_actor"), table_name="audit")
    op.drop_table("audit")
    op.drop_index(op.f("ix_alerts_ts"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_state"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_restrained_person"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_protected_person"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_kind"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_ban_id"), table_name="alerts")
    op.drop_table("alerts")
