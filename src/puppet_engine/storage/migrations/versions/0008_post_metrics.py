"""Engagement samples of the agents' own posts (post_metrics)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "post_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("post_id", sa.String(length=64), nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.Column("posted_hour", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("sampled_at", sa.Float(), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("reposts", sa.Integer(), nullable=False),
        sa.Column("quotes", sa.Integer(), nullable=False),
        sa.Column("bookmarks", sa.Integer(), nullable=False),
        sa.Column("impressions", sa.Integer(), nullable=True),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_metrics")),
        sa.UniqueConstraint("post_id", "slot", name=op.f("uq_post_metrics_post_id_slot")),
    )
    op.create_index("ix_post_metrics_agent_posted", "post_metrics", ["agent_id", "posted_at"], unique=False)
    op.create_index("ix_post_metrics_event_key", "post_metrics", ["event_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_post_metrics_event_key", table_name="post_metrics")
    op.drop_index("ix_post_metrics_agent_posted", table_name="post_metrics")
    op.drop_table("post_metrics")
