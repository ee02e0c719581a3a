"""The state of an agent at any moment, from its facts: a simulated day on the virtual clock.

Snapshots of the current tables are taken at moments during the run; afterwards
``state_at`` answers for each of those moments must equal them, and the projection rebuilt
from all the facts must equal the current tables.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.history import rebuild, state_at
from puppet_engine.persona import load_agents_dir
from puppet_engine.settings import Settings
from puppet_engine.storage.repos import facts as fact_rows
from puppet_engine.storage.tables import memories
from puppet_engine.wiring import build_sandbox

EXAMPLE_AGENTS = Path(__file__).resolve().parents[2] / "agents"

HOUR = 3600.0


def live_relationships(rels: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in ("agent_id", "updated_at")} for r in rels),
                  key=lambda r: (-r["familiarity"], r["other"]))


async def snapshot(engine: Engine, agent_id: str) -> dict:
    state, version, rels = await fact_rows.projection_of(engine.db, agent_id)
    async with engine.db.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).where(memories.c.agent_id == agent_id))).scalar()
    return {"state": state, "version": version, "relationships": live_relationships(rels), "memories": count}


def simulated_engine(url: str) -> Engine:
    clock = VirtualClock()
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    sandbox = build_sandbox(seed=7, crowd_rate=0.5, clock=clock)
    return Engine(settings, EngineOptions(agents=load_agents_dir(EXAMPLE_AGENTS), clock=clock, seed=7,
                                          sandbox=sandbox))


async def test_state_at_matches_snapshots_of_a_simulated_day_and_rebuild_matches(sqlite_url: str) -> None:
    engine = simulated_engine(sqlite_url)
    await engine.start()
    ids = sorted(engine.manager.agents)
    start = engine.clock.now()
    snapshots: list[tuple[float, str, dict]] = []
    try:
        for step in range(1, 9):  # 24 virtual hours, a snapshot every 3
            await engine.run_until(start + step * 3 * HOUR)
            for agent_id in ids:
                snapshots.append((engine.clock.now(), agent_id, await snapshot(engine, agent_id)))
        final = {agent_id: await snapshot(engine, agent_id) for agent_id in ids}
        store = engine.memory
        for at, agent_id, snap in snapshots:
            then = await state_at(engine.db, agent_id, at, store=store, query="validators")
            assert then["known"]
            assert then["state"] == snap["state"], (agent_id, at)
            assert then["relationships"] == snap["relationships"], (agent_id, at)
            assert then["config"]["version"] == snap["version"]
            assert then["memories"]["count"] == snap["memories"], (agent_id, at)
            assert len(then["memories"]["found"]) == min(5, snap["memories"])
            assert then["lifecycle"]["status"] == "started"
        changed = {agent_id for at, agent_id, snap in snapshots if snap["state"] != final[agent_id]["state"]}
        assert changed == set(ids), "every agent's state moved during the day (the test compares real changes)"
        assert any(s["relationships"] for _, _, s in snapshots), "relationships grew during the day"
        count, payload = await fact_rows.size_of(engine.db)
        per_agent_day = payload / len(ids)
        print(f"facts: {count / len(ids):.0f} per agent-day, payloads {per_agent_day / 1024:.1f} KiB per agent-day")
        assert per_agent_day < 300 * 1024, "the history grew: check what facts are written (README gives the cost)"
        for agent_id in ids:
            projection = await rebuild(engine.db, agent_id)
            assert projection.state == final[agent_id]["state"]
            rebuilt = live_relationships(list(projection.relationships.values()))
            assert rebuilt == final[agent_id]["relationships"]
            assert projection.config is not None and projection.config["version"] == final[agent_id]["version"]
    finally:
        await engine.stop()
