"""HISTORY_RETENTION_DAYS on the virtual clock: the engine's job prunes old facts into a baseline,
the projection still rebuilds, recent moments still answer, and registered pruners run with it."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.history import rebuild, register_pruner, state_at
from puppet_engine.history.retention import unregister_pruner
from puppet_engine.persona import parse_agent_config
from puppet_engine.settings import Settings
from puppet_engine.storage.repos import facts as fact_rows
from puppet_engine.storage.tables import facts, recordings
from puppet_engine.wiring import build_sandbox

HOUR = 3600.0
AGENTS = Path(__file__).resolve().parents[2] / "agents"


async def test_the_retention_job_prunes_old_facts_and_history_still_answers(sqlite_url: str) -> None:
    clock = VirtualClock()
    settings = Settings(database_url=sqlite_url, embedder="hashing", history_retention_days=0.25,  # 6 hours
                        _env_file=None)  # type: ignore[call-arg]
    config = parse_agent_config(json.loads((AGENTS / "nova.json").read_text()))
    engine = Engine(settings, EngineOptions(agents=[config], clock=clock, seed=3,
                                            sandbox=build_sandbox(seed=3, crowd_rate=0.5, clock=clock)))
    cuts: list[float] = []

    async def extra(db, before: float) -> int:  # any further history registers its own pruner
        cuts.append(before)
        return 0

    register_pruner("extra", extra)
    start = clock.now()
    await engine.start()
    try:
        await engine.run_until(start + 9 * HOUR)
        moment = clock.now()
        state, version, _ = await fact_rows.projection_of(engine.db, "nova")
        await engine.run_until(start + 14 * HOUR)
        now = clock.now()
        async with engine.db.connect() as conn:
            rows = (await conn.execute(sa.select(facts.c.kind, facts.c.at).where(facts.c.agent_id == "nova"))).all()
        oldest_allowed = now - 6 * HOUR - HOUR  # the job runs every virtual hour
        assert [kind for kind, at in rows if at < oldest_allowed] == []
        async with engine.db.connect() as conn:  # replay's recordings go under the same limit
            recorded = (await conn.execute(sa.select(recordings.c.created_at))).scalars().all()
        assert recorded and min(recorded) >= oldest_allowed
        baselines = [at for kind, at in rows if kind == "baseline"]
        assert len(baselines) == 1 and baselines[0] >= oldest_allowed
        assert cuts and all(b <= now - 6 * HOUR for b in cuts) and cuts[-1] >= oldest_allowed

        live_state, live_version, live_rels = await fact_rows.projection_of(engine.db, "nova")
        projection = await rebuild(engine.db, "nova")
        assert projection.state == live_state and projection.config["version"] == live_version
        assert {r["other"]: r["familiarity"] for r in live_rels} == {
            o: r["familiarity"] for o, r in projection.relationships.items()}

        then = await state_at(engine.db, "nova", moment)
        assert then["state"] == state and then["config"]["version"] == version
        early = await state_at(engine.db, "nova", start + HOUR)
        assert early["known"] is False  # pruned: nothing that old is kept
    finally:
        unregister_pruner("extra")
        await engine.stop()
