"""Mentions end to end against the X sandbox: answered once, across restarts and crashes."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import actions, mentions

HOUR = 3600.0


def persona(agent_id: str, **patterns: float) -> dict:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
        "behavior": {
            "post_frequency": {"min_hours_between_posts": 20, "max_hours_between_posts": 30},
            "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0,
                                     "quote_tweet_probability": 0.0, **patterns},
            "mention_poll_minutes": 1,
        },
    }


def make_engine(url: str, sandbox: Sandbox, *agents: dict) -> Engine:
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    return Engine(settings, EngineOptions(agents=[parse_agent_config(a) for a in agents], clock=sandbox.clock,
                                          seed=2, sandbox=sandbox))


async def run_for(engine: Engine, clock: VirtualClock, seconds: float) -> None:
    await engine.run_until(clock.now() + seconds)


async def admin(engine: Engine, method: str, path: str, **kwargs):
    response = await engine.wiring.http.request(method, f"{engine.wiring.sandbox_url}/sandbox/x{path}", **kwargs)
    response.raise_for_status()
    return response.json()


async def replies_to(engine: Engine, username: str, tweet_id: str) -> list[dict]:
    body = await admin(engine, "GET", "/tweets", params={"username": username})
    tweets = body.get("data", body.get("tweets", body)) if isinstance(body, dict) else body
    return [t for t in tweets if {"type": "replied_to", "id": tweet_id} in t.get("referenced_tweets", [])]


async def test_a_question_gets_exactly_one_reply_in_the_thread(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=1), clock=clock)
    engine = make_engine(sqlite_url, sandbox, persona("ada", reply_probability=0.0))
    await engine.start()
    await admin(engine, "POST", "/accounts", json={"username": "alice"})
    posted = await admin(engine, "POST", "/tweets", json={"username": "alice",
                                                           "text": "@ada what do validators dream about?"})
    tweet_id = posted["data"]["id"] if "data" in posted else posted["id"]
    await run_for(engine, clock, 10 * 60)
    assert len(await replies_to(engine, "ada", tweet_id)) == 1  # a direct question is always answered
    await run_for(engine, clock, 10 * 60)  # more polls: nothing new
    assert len(await replies_to(engine, "ada", tweet_id)) == 1
    async with engine.db.connect() as conn:
        decision = (await conn.execute(sa.select(mentions.c.decision))).scalar()
    assert decision == "reply"
    await engine.stop()


async def test_restart_and_crash_mid_send_never_duplicate_a_reply(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=1), clock=clock)
    await sandbox.start()
    engine = make_engine(sqlite_url, sandbox, persona("bo"))
    await engine.start()
    await admin(engine, "POST", "/accounts", json={"username": "carol"})
    posted = await admin(engine, "POST", "/tweets", json={"username": "carol", "text": "hey @bo nice tea"})
    tweet_id = posted["data"]["id"] if "data" in posted else posted["id"]
    await run_for(engine, clock, 5 * 60)
    assert len(await replies_to(engine, "bo", tweet_id)) == 1
    # Pretend the process died after X accepted the reply but before it was recorded.
    async with engine.db.transaction() as conn:
        await conn.execute(actions.update().where(actions.c.kind == "reply").values(status="sending"))
    engine.options.sandbox = None  # keep the sandbox (and what it recorded) alive across the restart
    await engine.stop()

    again = make_engine(sqlite_url, sandbox, persona("bo"))
    await again.start()
    await run_for(again, clock, 5 * 60)
    assert len(await replies_to(again, "bo", tweet_id)) == 1
    async with again.db.connect() as conn:
        row = (await conn.execute(sa.select(actions.c.status, actions.c.result).where(actions.c.kind == "reply"))).one()
    assert row.status == "done" and row.result.get("reconciled") is True
    await again.stop()


async def test_agents_reply_to_each_other_only_up_to_the_depth_limit(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=1), clock=clock)
    engine = make_engine(sqlite_url, sandbox, persona("ann", max_reply_depth=2), persona("ben", max_reply_depth=2))
    await engine.start()
    await admin(engine, "POST", "/tweets", json={"username": "ann", "text": "@ben do you like tea?"})
    await run_for(engine, clock, 60 * 60)
    replies = 0
    for name in ("ann", "ben"):
        body = await admin(engine, "GET", "/tweets", params={"username": name})
        replies += sum(any(r["type"] == "replied_to" for r in t.get("referenced_tweets", [])) for t in body["data"])
    async with engine.db.connect() as conn:
        decisions = sorted(r[0] for r in (await conn.execute(sa.select(mentions.c.decision))))
    # ann's opener (depth 1) is answered by ben (depth 2); ann then stops the chain.
    assert replies == 1, decisions
    assert decisions == ["reply", "skip:depth"]
    await engine.stop()
