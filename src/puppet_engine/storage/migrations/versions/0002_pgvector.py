"""pgvector: a vector column and HNSW indexes for memory search (PostgreSQL only)

Revision ID: 0002
Revises: 0001

On SQLite this revision does nothing: the SQLite store searches with numpy.
On PostgreSQL it creates the ``vector`` extension, adds ``memories.embedding_vec``
(a vector of any size) and one partial HNSW index per common embedding size,
over ``embedding_vec::vector(N)`` for rows with ``dim = N`` (an HNSW index needs
a fixed size). ``PostgresStore`` creates the index for another size on first use.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# MiniLM and the hashing embedder (384), OpenAI text-embedding-3-small and ada-002 (1536).
INDEXED_DIMS = (384, 1536)


def hnsw_index_sql(dim: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS ix_memories_embedding_vec_{dim} ON memories "
        f"USING hnsw ((embedding_vec::vector({dim})) vector_cosine_ops) WHERE dim = {dim}"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    if available is None:
        raise RuntimeError(
            "PostgreSQL has no pgvector extension: install it on the server "
            "(https://github.com/pgvector/pgvector, e.g. the postgresql-16-pgvector package) and start again"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("ALTER TABLE memories ADD COLUMN IF NOT EXISTS embedding_vec vector")
    # Keep the vector in the row (the bytea copy is moved to TOAST first): a search
    # reads it for each candidate, and a TOAST fetch per candidate doubles its cost.
    op.execute("ALTER TABLE memories ALTER COLUMN embedding_vec SET STORAGE MAIN")
    for dim in INDEXED_DIMS:
        op.execute(hnsw_index_sql(dim))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE memories DROP COLUMN IF EXISTS embedding_vec")
