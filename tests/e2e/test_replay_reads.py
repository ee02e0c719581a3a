"""Every read a decision uses is recorded and served back in a replay: the feedback an
operator left in review (listed in later prompts), engagement's samples and metrics, a
mentions poll the X stream covered. A read the recording does not serve fails loudly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from puppet_engine.agents.behaviors import MentionsBehavior
from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.errors import RateLimited
from puppet_engine.events import Event
from puppet_engine.events.recording import Recorder
from puppet_engine.memory import build_memory_store
from puppet_engine.memory.base import FEEDBACK, Memory
from puppet_engine.persona import parse_agent_config
from puppet_engine.replay import ReplayRequest, ReplaySocial, replay
from puppet_engine.replay.clients import ReplayMemory
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.social.dryrun import DryRunClient
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agent_states, recordings
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos.recordings import RecordCodec
from puppet_engine.storage.tables import recordings as recordings_table

START = 1_767_225_600.0
HOURS = 8
FEEDBACK_TEXT = "Not to say again: 'validators are a scam' (rejected: too harsh)"


def persona(agent_id: str) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
            "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
            "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2},
                         "interaction_patterns": {"reply_probability": 0.5}}}


async def _with_feedback(url: str) -> None:
    """A database where ada already has a rejected draft (a ``feedback`` memory)."""
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    db = Database(url)
    try:
        await db.migrate()
        store = build_memory_store(settings, db)
        await store.add_memory("ada", Memory(content=FEEDBACK_TEXT, kind=FEEDBACK, importance=0.8,
                                             created_at=START - 3600, agent_id="ada"))
    finally:
        await db.close()


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('reads') / 'day.db'}"
    asyncio.run(_with_feedback(url))
    clock = VirtualClock()
    options = EngineOptions(agents=[parse_agent_config(persona("ada"))], clock=clock, seed=3,
                            sandbox=Sandbox(SandboxConfig(seed=3, crowd_rate=0.3), clock=clock))
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    asyncio.run(simulate(settings, options, HOURS))
    return url


async def test_feedback_in_prompts_is_replayed_exactly(day: str) -> None:
    db = Database(day)
    try:
        rows = await recordings.load(db, RecordCodec(), "ada", START, START + HOURS * 3600)
        prompts = [r.body for r in rows if r.kind == "llm"]
        assert any(FEEDBACK_TEXT in m[1] for p in prompts for m in p["request"]["messages"])  # in the prompts then
        config = parse_agent_config(persona("ada"))
        report = await replay(db, RecordCodec(), ReplayRequest("ada", START, START + HOURS * 3600, config))
        assert report.differences == [], [(d.run.event.type, d.difference) for d in report.differences[:5]]
        assert report.llm["calls"] == report.llm["recorded"] > 5 and report.llm["changed_requests"] == 0
        assert report.missing_reads == 0 and report.not_replayed == {}
        sampled = [e for e in report.events if e.run.event.type == "engagement.sample" and (e.then.result or {}).get("sampled")]
        assert sampled and all(e.now.result == e.then.result for e in sampled)  # metrics and samples as read then

        # Without the recorded feedback the prompts would change: the recording is what makes it exact.
        feedback_reads = [r.id for r in rows if r.body.get("what") == "recent_memories"]
        async with db.transaction() as conn:
            await conn.execute(recordings_table.delete().where(recordings_table.c.id.in_(feedback_reads)))
        changed = await replay(db, RecordCodec(), ReplayRequest("ada", START, START + HOURS * 3600, config))
        assert changed.llm["changed_requests"] > 0
    finally:
        await db.close()


class Stream:
    """The X stream as the poll sees it (a dependency of the behaviour: the real one needs X)."""

    def __init__(self) -> None:
        self.covering, self.newest_id = True, "900"

    def covers(self, agent_id: str, since: float) -> bool:
        return self.covering

    def newest(self, agent_id: str) -> str | None:
        return self.newest_id


async def test_a_poll_the_stream_covered_is_replayed_as_covered(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'stream.db'}")
    await db.migrate()
    try:
        clock = VirtualClock(START)
        services = AgentServices(db=db, clock=clock)
        stream = Stream()
        services.mention_feed = stream
        config = parse_agent_config(persona("ada"))
        agent = AgentRuntime(config=config, social=DryRunClient("ada", "1", clock), llm=None,  # type: ignore[arg-type]
                             user_id="1", username="ada")
        await agent_rows.save_config(db, "ada", config.public_dict(), START)
        async with db.transaction() as conn:
            await agent_states.merge_states(conn, [("ada", {"last_poll_at": START - 60, "since_id": "500"})], START)
        behavior = MentionsBehavior(services)

        async def start_facts(agent_id: str) -> dict[str, Any]:
            state = await services.states.get(agent_id)
            return {"state": state.to_json(), "user_id": "1", "username": "ada"}

        recorder = Recorder(db, clock, RecordCodec(), start_facts=start_facts)
        handler = recorder.wrap(lambda event: behavior.on_poll(event, agent))
        results = []
        for i, covering in enumerate((True, False), start=1):
            clock.set(START + i * 60)
            stream.covering = covering
            hr = await handler(Event("mentions.poll", "ada", {"seq": i}, due_at=clock.now(), key=f"poll:{i}", id=i))
            assert hr is not None
            results.append(hr.result)
            async with db.transaction() as conn:
                await recordings.insert_batches(conn, [hr.recordings])
        assert results[0]["covered_by_stream"] and "covered_by_stream" not in results[1]

        report = await replay(db, RecordCodec(), ReplayRequest("ada", START, START + 600, config))
        assert [e.now.result for e in report.events] == [e.then.result for e in report.events] == results
        assert report.differences == [] and report.missing_reads == 0
    finally:
        await db.close()


async def test_metrics_lookups_fail_as_they_failed_then() -> None:
    social = ReplaySocial("ada", "1", VirtualClock(START))
    social.load([{"what": "metrics", "ids": ["1"], "unsupported": True},
                 {"what": "metrics", "ids": ["1"], "error": {"type": "RateLimited", "message": "x", "retry_after": 321.0}},
                 {"what": "metrics", "ids": ["1", "2"], "metrics": {"1": {"likes": 3, "impressions": None}}}])
    with pytest.raises(NotImplementedError):
        await social.get_metrics(["1"])
    with pytest.raises(RateLimited) as limited:
        await social.get_metrics(["1"])
    assert limited.value.retry_after == 321.0  # the next round is set from it
    found = await social.get_metrics(["1", "2"])
    assert set(found) == {"1"} and found["1"].likes == 3
    with pytest.raises(NotImplementedError):  # asked more than was recorded
        await social.get_metrics(["3"])
    assert social.missing == 1


async def test_an_unrecorded_memory_read_fails_loudly() -> None:
    memory = ReplayMemory("ada")
    assert await memory.add_memory("ada", Memory(content="x")) is None  # writes go nowhere
    assert await memory.recent_memories("ada", kind=FEEDBACK) == []  # nothing recorded: nothing recalled
    with pytest.raises(AttributeError, match=r"memory\.core_memories is a read the recording does not serve"):
        await memory.core_memories("ada")
    with pytest.raises(AttributeError, match=r"relationships\.list_for"):
        await memory.relationships.list_for("ada")
