"""Recording and exact replay on PostgreSQL: the recordings commit with each event's outcome there
too, and a replay of a simulated stretch reads them back and decides the same."""

from __future__ import annotations

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.replay import ReplayRequest, replay
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage import Database
from puppet_engine.storage.repos import recordings
from puppet_engine.storage.repos.recordings import RecordCodec

START = 1_767_225_600.0
PERSONA = {"id": "ada", "name": "Ada", "llm_provider": "fake",
           "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
           "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2},
                        "interaction_patterns": {"reply_probability": 0.5}}}


async def test_exact_replay_on_postgres(pg_url: str) -> None:
    clock = VirtualClock()
    options = EngineOptions(agents=[parse_agent_config(PERSONA)], clock=clock, seed=3,
                            sandbox=Sandbox(SandboxConfig(seed=3, crowd_rate=0.2), clock=clock))
    settings = Settings(database_url=pg_url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    await simulate(settings, options, 4)
    db = Database(pg_url)
    try:
        [(rows, size)] = (await recordings.size_by_agent(db, ["ada"])).values()
        assert rows > 50 and size > 0
        report = await replay(db, RecordCodec(), ReplayRequest("ada", START, START + 4 * 3600,
                                                              parse_agent_config(PERSONA)))
        assert len(report.events) > 20 and report.differences == [] and report.llm["changed_requests"] == 0
        assert await recordings.prune_recordings(db, START + 3600) > 0
    finally:
        await db.close()
