"""Where each agent's definition comes from: the agent file's hash, the source of the config, the refused edit

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("file_sha", "config_source", "config_changed_by", "config_changed_at", "definition_error",
           "refused_sha")


def upgrade() -> None:
    op.add_column("agents", sa.Column("file_sha", sa.String(length=64), nullable=True))
    op.add_column("agents", sa.Column("config_source", sa.String(length=8), nullable=True))
    op.add_column("agents", sa.Column("config_changed_by", sa.String(length=255), nullable=True))
    op.add_column("agents", sa.Column("config_changed_at", sa.Float(), nullable=True))
    op.add_column("agents", sa.Column("definition_error", sa.JSON(), nullable=True))
    op.add_column("agents", sa.Column("refused_sha", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
