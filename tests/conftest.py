"""Shared fixtures: a fresh SQLite database per test, a virtual clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
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


@pytest.fixture
def virtual_clock():
    from puppet_engine.clock import VirtualClock

    return VirtualClock()
