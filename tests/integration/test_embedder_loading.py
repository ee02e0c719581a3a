"""Agents start while the embedding model loads; memory writes and searches wait for it, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import numpy as np
import pytest
from api_helpers import CONTROL, KEYS, READ, auth, eventually, example_configs, running_engine

from puppet_engine.api import KeyRing, create_app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.errors import ConfigError
from puppet_engine.memory import SQLiteStore
from puppet_engine.memory.embeddings import HashingEmbedder, LocalEmbedder
from puppet_engine.persona import InitialMemory
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage import Database


class SlowLoadingEmbedder(HashingEmbedder):
    """The hashing embedder behind a model "load" that finishes only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.load_calls = 0

    @property
    def ready(self) -> bool:
        return self.release.is_set()

    async def ensure_loaded(self) -> None:
        self.load_calls += 1
        await self.release.wait()

    async def embed(self, texts: list[str]) -> np.ndarray:
        await self.ensure_loaded()
        return await super().embed(texts)


async def test_agents_run_before_the_model_is_ready_and_memory_waits_for_it(tmp_path: Path) -> None:
    embedder = SlowLoadingEmbedder()
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'slow.db'}")  # type: ignore[call-arg]
    engine = Engine(settings, EngineOptions(agents=example_configs(), sandbox=Sandbox(SandboxConfig()),
                                            seed=11, embedder=embedder))
    async with running_engine(engine):
        # Every agent runs although the model has not loaded.
        assert sorted(engine.manager.running) == ["coby", "ledger", "nova"]
        assert not embedder.ready and embedder.load_calls >= 1
        app = create_app(engine, keys=KeyRing.parse(KEYS))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as api:
            details = (await api.get("/health/details", headers=auth(READ))).json()
            assert details["status"] == "ok"
            assert "loading" in details["components"]["embedder"]["detail"]

            # A memory written meanwhile waits (queued) for the model, then is stored.
            write = asyncio.create_task(api.post("/memory/coby", headers=auth(CONTROL), json={
                "content": "The lighthouse keeper collects green sea glass every Sunday", "kind": "knowledge"}))
            await asyncio.sleep(0.3)
            assert not write.done()

            embedder.release.set()
            added = await asyncio.wait_for(write, timeout=20)
            assert added.status_code == 201, added.text
            hits = (await api.post("/memory/coby/search", headers=auth(READ),
                                   json={"query": "lighthouse keeper sea glass", "limit": 3})).json()
            assert hits[0]["memory"]["id"] == added.json()["id"]
            # The initial memories deferred at start are seeded too (reads wait for them).
            core = (await api.get("/memory/coby", headers=auth(READ), params={"kind": "core"})).json()
            assert core["total"] >= 4

            async def ready() -> bool:
                app.state.ctx._health = None  # the report is cached for a few seconds
                body = (await api.get("/health/details", headers=auth(READ))).json()
                return "ready" in body["components"]["embedder"]["detail"]

            await eventually(ready, timeout=10)


async def test_a_model_that_fails_to_load_says_why(tmp_path: Path) -> None:
    embedder = LocalEmbedder(model_path=tmp_path / "no-such-model")
    assert not embedder.ready and embedder.load_error is None
    with pytest.raises(ConfigError):
        await embedder.ensure_loaded()
    assert not embedder.ready
    assert embedder.load_error is not None and "ConfigError" in embedder.load_error


async def test_seeding_twice_while_loading_keeps_both_and_reads_wait(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'seed.db'}")
    await db.migrate()
    embedder = SlowLoadingEmbedder()
    clock = VirtualClock()
    store = SQLiteStore(db, embedder, clock=clock)
    try:
        first = InitialMemory.model_validate({"core_memories": ["I am Coby", "I never sell"]})
        second = InitialMemory.model_validate({"core_memories": ["I am Coby", "I sold once"],
                                               "recent_events": ["Bought a pizza with SOL"]})
        # A start, then a restart with an edited file, both before the model is ready: neither waits.
        assert await asyncio.wait_for(store.seed_initial("coby", first), 1) == 0
        assert await asyncio.wait_for(store.seed_initial("coby", second), 1) == 0
        started = clock.now()
        clock.advance(3600)  # the model takes its time: the seeds are still dated at the start
        listing = asyncio.create_task(store.list_memories("coby"))
        await asyncio.sleep(0.1)
        assert not listing.done()  # the agent's reads wait for its seeding
        embedder.release.set()
        listed = await asyncio.wait_for(listing, 10)
        assert all(m.created_at is not None and m.created_at < started for m in listed)
        contents = sorted(m.content for m in listed)
        assert contents == ["Bought a pizza with SOL", "I am Coby", "I never sell", "I sold once"]
        assert [h.memory.content for h in await store.search_memories("coby", "pizza", limit=1)] == [
            "Bought a pizza with SOL"]
        assert await store.seed_initial("coby", second) == 0  # ready now: seeded at once, nothing new
    finally:
        await store.close()
        await db.close()
