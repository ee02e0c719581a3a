"""Real agent files against the sandbox: short length settings never mute an agent, and no
generated post (scheduled, reply, trade announcement) repeats one X would refuse."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from structlog.testing import capture_logs

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, events, mentions
from puppet_engine.twitter.text import weighted_length

from .test_mention_replies import make_engine, run_for
from .test_trading_agent import trader

HOUR = 3600.0
TINY = {  # as a user writes it, in the original format; under simulate "openai" is the sandbox's OpenAI API
    "id": "tiny", "name": "Tiny", "llm_provider": "openai",
    "personality": {"traits": ["dry", "curious"], "interests": ["validators", "tea", "old maps"],
                    "speaking_style": "short"},
    "behavior": {"post_frequency": {"min_hours_between_posts": 0.25, "max_hours_between_posts": 0.5},
                 "interaction_patterns": {"reply_probability": 1.0},
                 "content_preferences": {"typical_post_length": 7, "max_post_length": 20}},
}
LEADING_HANDLES = re.compile(r"^(?:@\w+\s+)+")


async def test_a_tiny_maximum_posts_and_replies_within_it_for_a_whole_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    report = await simulate(settings, EngineOptions(agents=[parse_agent_config(TINY)], seed=3), hours=24,
                            crowd_rate=0.05)
    db = Database(url)
    async with db.connect() as conn:
        sent = (await conn.execute(sa.select(actions.c.kind, actions.c.payload, actions.c.status)
                                   .where(actions.c.agent_id == "tiny"))).fetchall()
        due = [r[0] or {} for r in await conn.execute(sa.select(events.c.result).where(events.c.type == "post.due"))]
        decisions = Counter(r[0] for r in await conn.execute(sa.select(mentions.c.decision)))
    await db.close()
    posts = [p["text"] for kind, p, _ in sent if kind == "post"]
    replies = [p["text"] for kind, p, _ in sent if kind == "reply"]
    assert report.agents["tiny"]["posts"] == len(posts) and not any(kind == "thread" for kind, _, _ in sent)
    assert len(posts) >= 0.9 * 48, (len(posts), [r.get("skipped") for r in due if "skipped" in r][:3])  # 24 h / 30 min
    assert all(weighted_length(t) <= 20 for t in posts), [t for t in posts if weighted_length(t) > 20]
    assert sum(decisions.values()) >= 20, "the crowd mentioned the agent"
    assert decisions["reply"] >= 0.9 * sum(decisions.values()), decisions
    assert len(replies) == decisions["reply"]
    for text in replies:  # the handle being answered does not count against the author's maximum
        assert LEADING_HANDLES.match(text) and weighted_length(LEADING_HANDLES.sub("", text)) <= 20, text
    assert all(status == "done" for _, _, status in sent), Counter(status for _, _, status in sent)


def busy_trader() -> dict:
    data = trader("ledgy")
    data["personality"]["interests"] = ["markets", "tea"]
    data["solana_integration"]["trade_safety"]["max_trade_amount_sol"] = 0.01
    data["agent_kit_integration"]["autonomy_rules"] = {"max_daily_trades": 1000, "max_single_trade_amount_sol": 0.01}
    data["behavior"]["trading_behavior"] = {
        "trading_frequency": {"min_hours_between_trades": 0.1, "max_hours_between_trades": 0.2,
                              "random_probability": 1.0},
        "trade_decision_factors": ["trending_tokens", "top_gainers", "random_selection"],
        "trade_tweet_probability": 1.0,
        "allowed_tokens": {"always_tradable": ["SOL", "USDC", "PUPPET", "STRNG", "WOOF", "GLITCH"]},
    }
    return data


async def test_trade_announcements_say_what_was_traded_and_never_repeat(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, Sandbox(SandboxConfig(seed=11), clock=clock), busy_trader())
    await engine.start()
    await run_for(engine, clock, 5 * HOUR)
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(actions.c.key, actions.c.kind, actions.c.payload, actions.c.status,
                                             actions.c.result, actions.c.error))).fetchall()
    await engine.stop()
    trades = {r.key: r.result for r in rows if r.kind == "trade" and (r.result or {}).get("status") == "confirmed"}
    announced = {r.key: r for r in rows if r.key.startswith("tradepost:")}
    assert len(trades) >= 15, "a trader with random_probability 1 trades every 6-12 minutes"
    sides = Counter()
    for trade in trades.values():
        post = announced[f"tradepost:ledgy:{trade['key']}"]  # trade_tweet_probability 1: every trade announced
        assert post.status == "done", post.error  # X refused none of them as duplicate content
        text = post.payload["text"].lower()
        sold, got = trade["input_symbol"], trade["output_symbol"]
        side = "bought" if sold == "SOL" else "sold" if got == "SOL" else "swapped"
        sides[side] += 1
        assert side in text, (text, sold, got)
        assert sold.lower() in text and got.lower() in text, (text, sold, got)  # what for what
        assert re.search(r"\d", text), text  # and how much
    assert sides["bought"] and sides["sold"], sides  # both directions occurred, each said as it was
    texts = [r.payload["text"] for r in announced.values()]
    assert len(set(texts)) == len(texts)
    assert not any(r.status == "failed" for r in rows), [(r.key, r.error) for r in rows if r.status == "failed"]


async def test_an_agent_whose_posts_keep_being_skipped_is_reported_once(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=2), clock=clock)
    quiet = {**TINY, "behavior": {**TINY["behavior"], "interaction_patterns": {"reply_probability": 0.0}}}
    engine = make_engine(sqlite_url, sandbox, quiet)
    await engine.start()
    faults = await engine.wiring.http.post(f"{engine.wiring.sandbox_url}/sandbox/faults", json={
        "service": "openai", "path": "/v1/chat/completions", "status": 500, "count": 10_000})
    faults.raise_for_status()
    with capture_logs() as logs:
        await run_for(engine, clock, 4 * HOUR)
    async with engine.db.connect() as conn:
        skipped = [r[0]["skipped"] for r in await conn.execute(sa.select(events.c.result).where(
            events.c.type == "post.due", events.c.status == "done")) if "skipped" in (r[0] or {})]
    await engine.stop()
    assert len(skipped) >= 6 and all(s.startswith("llm unavailable") for s in skipped)  # the reason, as recorded
    warned = [e for e in logs if e["event"] == "posts_keep_being_skipped"]
    assert len(warned) == 1, warned  # once per streak, not once per skip
    assert warned[0]["agent_id"] == "tiny" and warned[0]["most_common_reason"].startswith("llm unavailable")
