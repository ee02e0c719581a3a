"""Human review: items awaiting approval and the audit trail of decisions

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("on_expire", sa.String(length=8), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("notice", sa.String(length=16), nullable=False),
        sa.Column("notice_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_review_items")),
    )
    op.create_index("ix_review_items_state", "review_items", ["state", "expires_at"], unique=False)
    op.create_index("ix_review_items_notice", "review_items", ["notice"], unique=False)
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index("ix_review_decisions_agent", "review_decisions", ["agent_id", "decision"], unique=False)
    op.create_index("ix_review_decisions_time", "review_decisions", ["decided_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_review_decisions_time", table_name="review_decisions")
    op.drop_index("ix_review_decisions_agent", table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_index("ix_review_items_notice", table_name="review_items")
    op.drop_index("ix_review_items_state", table_name="review_items")
    op.drop_table("review_items")
