"""Role leases: one engine process holds the X filtered stream connection

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("live_since", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_role_leases")),
    )


def downgrade() -> None:
    op.drop_table("role_leases")
