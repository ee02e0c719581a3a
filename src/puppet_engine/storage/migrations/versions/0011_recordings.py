"""Replay recordings: each event's inputs, LLM answers and starting state

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index("ix_recordings_agent_time", "recordings", ["agent_id", "created_at"], unique=False)
    op.create_index("ix_recordings_created", "recordings", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recordings_created", table_name="recordings")
    op.drop_index("ix_recordings_agent_time", table_name="recordings")
    op.drop_table("recordings")
