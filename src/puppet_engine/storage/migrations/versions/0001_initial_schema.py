"""initial schema

Revision ID: 0001
Revises: 
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.Float(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    sa.UniqueConstraint('key', name=op.f('uq_actions_key'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_actions_agent_kind', ['agent_id', 'kind', 'created_at'], unique=False)
        batch_op.create_index('ix_actions_status', ['status', 'not_before'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents'))
    )
    op.create_table('engine_nodes',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('heartbeat_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engine_nodes'))
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('due_at', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('trace_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('key', name=op.f('uq_events_key'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_agent_status', ['agent_id', 'status'], unique=False)
        batch_op.create_index('ix_events_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_events_type', ['type'], unique=False)

    op.create_table('llm_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_calls'))
    )
    with op.batch_alter_table('llm_calls', schema=None) as batch_op:
        batch_op.create_index('ix_llm_calls_agent_time', ['agent_id', 'created_at'], unique=False)

    op.create_table('memories',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('encrypted', sa.Boolean(), nullable=False),
    sa.Column('importance', sa.Float(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('embedder', sa.String(length=128), nullable=True),
    sa.Column('dim', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memories')),
    sa.UniqueConstraint('agent_id', 'key', name='uq_memories_agent_key')
    )
    with op.batch_alter_table('memories', schema=None) as batch_op:
        batch_op.create_index('ix_memories_agent_kind_time', ['agent_id', 'kind', 'created_at'], unique=False)

    op.create_table('mentions',
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('tweet_id', sa.String(length=32), nullable=False),
    sa.Column('author_id', sa.String(length=32), nullable=True),
    sa.Column('author_username', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=True),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=True),
    sa.Column('reply_tweet_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('agent_id', 'tweet_id', name=op.f('pk_mentions'))
    )
    op.create_table('price_samples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mint', sa.String(length=64), nullable=False),
    sa.Column('price_usd', sa.Float(), nullable=False),
    sa.Column('sampled_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_samples'))
    )
    with op.batch_alter_table('price_samples', schema=None) as batch_op:
        batch_op.create_index('ix_price_samples_mint_time', ['mint', 'sampled_at'], unique=False)

    op.create_table('relationships',
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('other', sa.String(length=128), nullable=False),
    sa.Column('sentiment', sa.Float(), nullable=False),
    sa.Column('familiarity', sa.Float(), nullable=False),
    sa.Column('trust', sa.Float(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('interactions', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('agent_id', 'other', name=op.f('pk_relationships'))
    )
    op.create_table('trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('input_mint', sa.String(length=64), nullable=False),
    sa.Column('output_mint', sa.String(length=64), nullable=False),
    sa.Column('in_amount', sa.String(length=40), nullable=True),
    sa.Column('out_amount', sa.String(length=40), nullable=True),
    sa.Column('amount_sol', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=True),
    sa.Column('quote', sa.JSON(), nullable=True),
    sa.Column('checks', sa.JSON(), nullable=True),
    sa.Column('simulation', sa.JSON(), nullable=True),
    sa.Column('signature', sa.String(length=128), nullable=True),
    sa.Column('last_valid_block_height', sa.Integer(), nullable=True),
    sa.Column('fee_lamports', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('reasoning', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trades')),
    sa.UniqueConstraint('key', name=op.f('uq_trades_key'))
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_agent_time', ['agent_id', 'created_at'], unique=False)

    op.create_table('leases',
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_leases_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_leases'))
    )


def downgrade() -> None:
    op.drop_table('leases')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_agent_time')

    op.drop_table('trades')
    op.drop_table('relationships')
    with op.batch_alter_table('price_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_price_samples_mint_time')

    op.drop_table('price_samples')
    op.drop_table('mentions')
    with op.batch_alter_table('memories', schema=None) as batch_op:
        batch_op.drop_index('ix_memories_agent_kind_time')

    op.drop_table('memories')
    with op.batch_alter_table('llm_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_llm_calls_agent_time')

    op.drop_table('llm_calls')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type')
        batch_op.drop_index('ix_events_status_due')
        batch_op.drop_index('ix_events_agent_status')

    op.drop_table('events')
    op.drop_table('engine_nodes')
    op.drop_table('agents')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_status')
        batch_op.drop_index('ix_actions_agent_kind')

    op.drop_table('actions')
