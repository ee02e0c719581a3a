"""The history: every change of an agent's state as a fact with its time and cause

Revision ID: 0010
Revises: 0009

Agents that exist already get one ``baseline`` fact (their state, relationships and config
version as they are now), so the projection can be rebuilt from the facts on an old database too.
"""

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    facts = op.create_table(
        "facts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("cause", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facts")),
    )
    op.create_index("ix_facts_agent_at", "facts", ["agent_id", "at"], unique=False)
    op.create_index("ix_facts_at", "facts", ["at"], unique=False)
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, state, version FROM agents")).fetchall()
    if not rows:
        return
    relationships: dict[str, list[dict]] = {}
    for r in bind.execute(sa.text("SELECT agent_id, other, sentiment, familiarity, trust, notes, interactions "
                                  "FROM relationships")).mappings():
        relationships.setdefault(r["agent_id"], []).append(
            {k: r[k] for k in ("other", "sentiment", "familiarity", "trust", "notes", "interactions")})
    now = time.time()
    baseline = []
    for agent_id, state, version in rows:
        state = json.loads(state) if isinstance(state, str) else (state or {})
        baseline.append({"agent_id": agent_id, "at": now, "kind": "baseline", "cause": None,
                         "payload": {"state": state, "config_version": version,
                                     "relationships": relationships.get(agent_id, [])}})
    op.bulk_insert(facts, baseline)


def downgrade() -> None:
    op.drop_index("ix_facts_at", table_name="facts")
    op.drop_index("ix_facts_agent_at", table_name="facts")
    op.drop_table("facts")
