"""Agents read each other's posts and like and quote them on X; relationships grow."""

from __future__ import annotations

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine
from puppet_engine.sandbox import Sandbox, SandboxConfig

from .test_mention_replies import HOUR, admin, make_engine, persona, run_for


async def _ann_and_ben_ten_hours_on(sqlite_url: str) -> tuple[Engine, Sandbox]:
    """ann posts every one to two hours; ben likes and quotes whatever he reads; ten hours run."""
    sandbox = Sandbox(SandboxConfig(seed=5), clock=VirtualClock())
    ann = persona("ann")
    ann["behavior"]["post_frequency"] = {"min_hours_between_posts": 1, "max_hours_between_posts": 2}
    ben = persona("ben", like_probability=1.0, quote_tweet_probability=1.0)
    engine = make_engine(sqlite_url, sandbox, ann, ben)
    await engine.start()
    await run_for(engine, sandbox.clock, 10 * HOUR)  # ben's interaction rounds come every ~3 hours
    return engine, sandbox


async def test_an_agent_likes_and_quotes_what_a_peer_posted(sqlite_url: str) -> None:
    engine, _ = await _ann_and_ben_ten_hours_on(sqlite_url)
    ann_posts = (await admin(engine, "GET", "/tweets", params={"username": "ann"}))["data"]
    ben_posts = (await admin(engine, "GET", "/tweets", params={"username": "ben"}))["data"]
    rel = await engine.manager.agents["ben"].memory.relationships.get("ben", "ann")
    remembered = await engine.manager.agents["ben"].memory.list_memories("ben", kind="post", limit=1000)
    await engine.stop()

    own = [t for t in ann_posts if not t.get("referenced_tweets")]
    assert own, "ann posted"
    liked = [t for t in own if t["public_metrics"]["like_count"] >= 1]
    quoted = {ref["id"] for t in ben_posts for ref in t.get("referenced_tweets", []) if ref["type"] == "quoted"}
    assert liked and quoted and quoted <= {t["id"] for t in own}
    assert {t["id"] for t in liked} & quoted  # the same posts were liked and quoted
    assert rel is not None and rel.familiarity > 0
    quotes = {t["id"]: t["text"] for t in ben_posts if t.get("referenced_tweets")}
    kept = {m.metadata["external_id"]: m.content for m in remembered if m.metadata["action_key"].startswith("quote:")}
    assert kept == quotes  # every quote sent is remembered, once, with its text


async def test_quotes_of_one_round_share_one_read_of_what_the_agent_wrote_before(sqlite_url: str) -> None:
    from puppet_engine.agents.behaviors.posting import compose, written_before
    from puppet_engine.content.prompts import PromptContext

    engine, sandbox = await _ann_and_ben_ten_hours_on(sqlite_url)
    agent = engine.manager.agents["ben"]
    before = await written_before(engine.services, agent)
    assert before.recent and before.posted  # ben has quoted: what a next quote must not repeat
    for n in range(5):
        context = PromptContext(purpose="quote", thread=[("ann", f"rain over the maps, day {n}")], replying_to="ann",
                                now=sandbox.clock.now(), seed=n)
        shared = await compose(engine.services, agent, context, before)
        assert shared == await compose(engine.services, agent, context)  # as reading it afresh gives
    await engine.stop()
