"""Faults injected through ``/sandbox/faults``: the engine degrades, never crashes, and recovers.

Each test runs agents on a virtual clock against the sandbox, breaks one dependency
(429 storms, a share of 5xx, timeouts, a 5-minute LLM outage, an X outage, an RPC
outage in the middle of a trade), then checks that nothing was lost or sent twice, that
no request went out that a known rate limit forbade (the sandbox's own X limiter never
answered 429), and that the agents are back to normal within one poll interval.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from puppet_engine.storage.tables import events

from .helpers import Rig, persona, pumped, rig

POLL = 60.0  # mention_poll_minutes 1


QUESTIONS = [
    "how do you brew {t} when the kettle is cold?", "what would a validator say about {t}?",
    "is {t} better at dawn or at midnight?", "who taught you everything about {t}?",
    "would you trade a week of {t} for one good map?", "why does {t} feel slower on Mondays?",
    "can {t} survive a rainy weekend in Lisbon?", "which book about {t} changed your mind?",
]
TOPICS = ["oolong", "sourdough", "lighthouses", "compasses", "origami", "glaciers", "chess", "bees",
          "comets", "violins", "kites", "moss"]


async def ask(r: Rig, author: str, agent: str, n: int, topic: str = "") -> list[str]:
    """``n`` varied questions from ``n`` different accounts (so no two replies need to look alike)."""
    ids = []
    for i in range(n):
        seed = len(author) * 7 + i + len(topic)
        text = QUESTIONS[seed % len(QUESTIONS)].format(t=topic or TOPICS[(seed * 5) % len(TOPICS)])
        ids.append(await r.mention(f"{author}{i}", f"@{agent} {text}"))
    return ids


async def assert_answered_once(r: Rig, agent: str, tweet_ids: list[str], *, at_least: float = 1.0) -> None:
    """Every mention has exactly one reply, or none and a recorded skip (output rules refused the text)."""
    decisions = await r.decisions(agent)
    answered = 0
    for tweet_id in tweet_ids:
        replies = await r.replies_to(agent, tweet_id)
        decision = decisions.get(tweet_id)
        assert decision is not None, f"mention {tweet_id} was never recorded"
        if decision == "reply":
            assert len(replies) == 1, (tweet_id, [t["text"] for t in replies])
            answered += 1
        else:
            assert decision == "skip:ValidationFailed" and not replies, (tweet_id, decision, replies)
    assert answered >= at_least * len(tweet_ids), (answered, len(tweet_ids), decisions)


async def assert_healthy(r: Rig) -> None:
    """No crash, nothing failed, no 429 from the sandbox's own limiter (only injected ones)."""
    statuses = await r.event_statuses()
    assert statuses.get("failed", 0) == 0, await r.rows(sa.select(events.c.type, events.c.error)
                                                       .where(events.c.status == "failed"))
    assert statuses.get("running", 0) == 0
    assert "failed" not in (await r.action_statuses()).values(), await r.action_statuses()
    assert "429" not in await r.x_stats(), await r.x_stats()


async def test_a_429_storm_on_x_waits_out_the_window_and_loses_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("ivy")) as r:
        await r.run_for(2 * 60)
        await r.fault(service="x", status=429, count=40)
        asked = await ask(r, "storm_a", "ivy", 4)
        await r.run_for(15 * 60)
        assert (await r.admin("GET", "/faults"))["faults"] == []  # the storm is over: all 40 were served
        await assert_answered_once(r, "ivy", asked)
        late = await ask(r, "storm_b", "ivy", 1, "rain")
        await r.run_for(POLL + 10)  # back to normal within one poll interval
        await assert_answered_once(r, "ivy", late)
        await assert_healthy(r)


async def test_one_call_in_five_failing_with_5xx_costs_nothing_but_time(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("jude", post_hours=0.05)) as r:
        await r.run_for(60)
        asked: list[str] = []
        injected = 0
        for round_ in range(12):
            asked += await ask(r, f"flaky_{round_}_", "jude", 2, TOPICS[round_])
            total = sum((await r.x_stats()).values())
            calls = len((await r.admin("GET", "/openai/calls", params={"limit": 500}))["calls"])
            want = (total + calls) // 4 - injected  # keeps injected ≈ 20% of what the engine sends
            for service, status in (("x", 503), ("openai", 500)):
                if want > 0:
                    await r.fault(service=service, status=status, count=max(1, want // 2))
            injected += max(0, want)
            await r.run_for(2 * 60)
        await r.clear_faults()
        await r.run_for(5 * 60)
        assert injected >= 10
        await assert_answered_once(r, "jude", asked, at_least=0.8)
        posts = [t for t in await r.tweets_of("jude") if not t.get("referenced_tweets")]
        assert len(posts) >= 3  # it kept posting through it
        await assert_healthy(r)


async def test_x_timeouts_never_duplicate_a_reply(tmp_path: Path) -> None:
    # On a socket, a slow answer is a timeout for the client, while the sandbox still
    # creates the tweet afterwards: the retried post must be recognised, not repeated.
    async with rig(tmp_path, persona("kai"), loopback=True, x_timeout=0.3) as r:
        await r.run_for(60)
        asked = await ask(r, "slow_a", "kai", 3)
        await r.fault(service="x", path="/2/tweets", method="POST", kind="latency", latency_ms=600, count=4)
        await r.fault(service="x", path="/2/users/*", method="GET", kind="latency", latency_ms=900, count=2)
        await r.run_for(POLL + 5)
        await asyncio.sleep(1.0)  # real time: the slow requests the client gave up on land now
        await r.run_for(10 * 60)
        await assert_answered_once(r, "kai", asked)
        kai = await r.tweets_of("kai")
        assert len({t["text"] for t in kai}) == len(kai)
        # A timed-out post landed anyway; its retry was refused as a duplicate and recognised as ours.
        assert (await r.x_stats()).get("403", 0) >= 1
        await assert_healthy(r)


async def test_a_five_minute_llm_outage_keeps_reading_mentions_and_answers_after(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("lux", post_hours=0.05), llm_breaker_cooldown_seconds=30) as r:
        await r.run_for(2 * 60)
        await r.fault(service="openai", status=503, count=100_000)
        during = await ask(r, "outage_a", "lux", 3)
        await r.run_for(5 * 60)
        decisions = await r.decisions("lux")
        assert set(during) <= set(decisions)  # mentions were read and recorded during the outage
        assert [await r.replies_to("lux", t) for t in during] == [[], [], []]
        skipped = await r.rows(sa.select(events.c.result).where(events.c.type == "post.due",
                                                                 events.c.status == "done"))
        assert any("llm unavailable" in str(row[0]) for row in skipped)  # posts were skipped, not failed
        [outage] = (await r.admin("GET", "/faults"))["faults"]
        await r.clear_faults("openai")
        after = await ask(r, "outage_b", "lux", 1, "rain")
        await r.run_for(POLL + 10)
        await assert_answered_once(r, "lux", after)  # back to normal within one poll interval
        await r.run_for(20 * 60)
        await assert_answered_once(r, "lux", during)  # and what came in during the outage is answered
        # The circuit breaker kept the engine from hammering the dead LLM: a few trial calls per cooldown.
        assert 0 < outage["hits"] <= 30, outage
        await assert_healthy(r)


async def test_an_x_outage_queues_posts_and_replies_and_resumes(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("mo", post_hours=0.05)) as r:
        await r.run_for(60)
        asked = await ask(r, "queue_a", "mo", 2)
        await r.run_for(POLL + 5)
        await r.fault(service="x", path="/2/tweets", method="POST", status=503, count=100_000)
        more = await ask(r, "queue_b", "mo", 2)
        await r.run_for(20 * 60)  # X refuses every post for 20 minutes
        waiting = await r.action_statuses()
        assert "pending" in waiting.values() and "failed" not in waiting.values(), waiting
        await r.clear_faults("x")
        await r.run_for(POLL + 10)
        statuses = await r.action_statuses()
        assert set(statuses.values()) == {"done"}, statuses  # everything queued went out
        await assert_answered_once(r, "mo", asked + more)
        posts = [t for t in await r.tweets_of("mo") if not t.get("referenced_tweets")]
        assert len({t["text"] for t in posts}) == len(posts)
        await assert_healthy(r)


def trader(agent_id: str) -> dict:
    """A sandbox trader that never trades on its own: trades come from the test (an operator trade)."""
    return persona(agent_id, solana_integration={"trading_enabled": True, "network": "sandbox",
                                                 "trade_safety": {"max_trade_amount_sol": 0.05,
                                                                  "max_slippage_percent": 5.0}},
                   behavior={"post_frequency": {"min_hours_between_posts": 20, "max_hours_between_posts": 30},
                             "mention_poll_minutes": 1,
                             "trading_behavior": {"trading_frequency": {"min_hours_between_trades": 20,
                                                                        "max_hours_between_trades": 30,
                                                                        "random_probability": 0.0},
                                                  "trade_decision_factors": [],
                                                  "allowed_tokens": {"always_tradable": ["SOL", "PUPPET"]}}})


async def operator_trade(r: Rig, agent_id: str, key: str) -> None:
    from puppet_engine.events import Event

    await r.engine.events.schedule(Event("trade.manual", agent_id, {"input": "SOL", "output": "PUPPET",
                                                                     "amount": 0.02}, key=key))


async def rpc(r: Rig, method: str, params: list) -> dict:
    response = await r.http.post(f"{r.url}/solana", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                          "params": params})
    return response.json()["result"]


async def test_rpc_outage_in_the_middle_of_a_trade_lands_it_exactly_once(tmp_path: Path) -> None:
    async with rig(tmp_path, trader("tess")) as r:
        await r.run_for(30)
        wallet = r.engine.manager.agents["tess"].trader.wallet.address
        before = (await rpc(r, "getBalance", [wallet]))["value"]
        # The swap answer is slow; while it is on its way the RPC goes down: the simulation
        # still passes, the send and the first confirmation polls fail.
        await r.fault(service="jupiter", path="/swap/v1/swap", method="POST", kind="latency", latency_ms=300)
        await operator_trade(r, "tess", "op-1")
        running = asyncio.ensure_future(r.run_for(60))
        while (await r.admin("GET", "/faults"))["faults"] and not running.done():
            await asyncio.sleep(0.01)
        await r.fault(service="solana", kind="latency", latency_ms=1)  # the simulation goes through
        await r.fault(service="solana", status=503, count=6)
        await running
        assert (await r.admin("GET", "/faults"))["faults"] == []  # the outage was met, and is over
        trades = await r.rows(sa.text("SELECT key, status, signature FROM trades"))
        assert len(trades) == 1 and trades[0].status == "confirmed", trades
        [status] = (await rpc(r, "getSignatureStatuses", [[trades[0].signature],
                                                          {"searchTransactionHistory": True}]))["value"]
        assert status is not None and status["err"] is None
        assert (await rpc(r, "getBalance", [wallet]))["value"] < before  # it traded, once
        assert set((await r.action_statuses("trade")).values()) == {"done"}
        await assert_healthy(r)


async def test_jupiter_down_means_no_trade_and_nothing_half_done(tmp_path: Path) -> None:
    async with rig(tmp_path, trader("uma")) as r:
        await r.run_for(30)
        await r.fault(service="jupiter", status=503, count=100_000)
        await operator_trade(r, "uma", "op-2")  # waits: an outage shorter than 10 minutes is waited out
        await r.run_for(60)
        trades = await r.rows(sa.text("SELECT key, status, signature, error FROM trades"))
        assert all(t.signature is None for t in trades), trades  # nothing signed, nothing sent
        asked = await ask(r, "still_here", "uma", 1)  # the agent itself carries on
        await r.run_for(POLL + 10)
        await assert_answered_once(r, "uma", asked)
        await r.clear_faults("jupiter")
        await r.run_for(60)
        confirmed = await r.rows(sa.text("SELECT key FROM trades WHERE status = 'confirmed'"))
        assert [row.key for row in confirmed] == ["manual-trade:uma:op-2"]  # once, after Jupiter came back
        await r.fault(service="jupiter", status=503, count=100_000)
        await operator_trade(r, "uma", "op-3")  # a longer outage: the trade is dropped, never made late
        await r.run_for(15 * 60)
        await r.clear_faults("jupiter")
        await r.run_for(5 * 60)
        statuses = await r.action_statuses("trade")
        assert statuses == {"manual-trade:uma:op-2": "done", "manual-trade:uma:op-3": "failed"}, statuses
        assert len(await r.rows(sa.text("SELECT key FROM trades WHERE signature IS NOT NULL"))) == 1
        events = await r.event_statuses()
        assert events.get("failed", 0) == 0 and events.get("running", 0) == 0


async def test_x_down_at_start_up_starts_the_engine_and_the_agents_once_it_is_back(tmp_path: Path) -> None:
    down = [{"service": "x", "status": 503, "count": 100_000}]  # every X call fails
    async with rig(tmp_path, persona("nia"), persona("oz"), faults=down) as r:
        assert r.engine.manager.running == set()  # started anyway, waiting for X
        await r.run_for(3 * 60)
        await r.clear_faults("x")  # X is back
        for _ in range(10):  # each agent starts at its next try (15 s, 30 s, … after the first)
            if r.engine.manager.running == {"nia", "oz"}:
                break
            await r.run_for(60)
        assert r.engine.manager.running == {"nia", "oz"}
        asked = await ask(r, "startup_a", "nia", 1) + await ask(r, "startup_b", "oz", 1)
        await r.run_for(15 * 60)  # room for a poll stretched while the timeline was quiet
        await assert_answered_once(r, "nia", asked[:1])
        await assert_answered_once(r, "oz", asked[1:])
        await assert_healthy(r)


async def test_a_send_interrupted_while_x_is_down_is_reconciled_once_x_is_back(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("pia")) as r:
        await r.run_for(60)
        asked = await ask(r, "unsure_a", "pia", 1)
        await r.run_for(POLL + 5)
        await assert_answered_once(r, "pia", asked)
        # As if the process had died after X took the reply but before it was recorded,
        # and came back while X cannot be asked what was posted.
        async with r.engine.db.transaction() as conn:
            await conn.execute(sa.text("UPDATE actions SET status = 'sending' WHERE kind = 'reply'"))
        await r.fault(service="x", method="GET", path="/2/users/*", status=503, count=12)
        await pumped(r.engine.outbox.recover(), r.clock, r.engine_clock)
        await r.run_for(10 * 60)
        statuses = await r.action_statuses("reply")
        assert set(statuses.values()) == {"done"}, statuses
        await assert_answered_once(r, "pia", asked)  # found, not sent again


async def test_a_repeat_of_an_older_post_is_refused_not_taken_for_ours(tmp_path: Path) -> None:
    from puppet_engine.events import ActionSpec, records

    async with rig(tmp_path, persona("quin")) as r:
        await r.run_for(60)
        first = await r.mention("quin", "tea at dawn, maps at noon")  # an older post of quin's
        await r.run_for(60)
        # Another action with the very same words (validation would normally stop it): X
        # refuses it as a duplicate, and the outbox must not take the old tweet for its own.
        async with r.engine.db.transaction() as conn:
            await records.insert_action(conn, ActionSpec("post:quin:repeat", "quin", "post",
                                                       {"text": "tea at dawn, maps at noon"}), None, r.clock.now())
        await r.run_for(60)
        [row] = await r.rows(sa.text("SELECT status, external_id FROM actions WHERE key = 'post:quin:repeat'"))
        assert row.status == "failed" and row.external_id != first, row
        assert [t["id"] for t in await r.tweets_of("quin") if t["text"] == "tea at dawn, maps at noon"] == [first]


async def test_an_account_at_its_posting_limit_keeps_reading_and_sends_when_the_window_opens(tmp_path: Path) -> None:
    """X allows an account so many posts per window: once the engine knows the window is spent,
    a reply waits in the outbox for the reset (the agent goes on reading and deciding its mentions,
    and a stop is not held up by a send asleep in the client), then goes out exactly once."""
    async with rig(tmp_path, persona("kit")) as r:
        await r.run_for(60)
        await r.admin("POST", "/x/rate-limits", json={"profile": "payg", "limits": {
            "POST /2/tweets": {"user": 3, "app": 1000, "window": 900}}})
        first = await ask(r, "busy_a", "kit", 6)
        await r.run_for(3 * 60)
        replies = await r.action_statuses("reply")
        assert 1 <= list(replies.values()).count("done") <= 3, replies  # the window's 3 posts (its own post too)
        assert set(replies.values()) == {"done", "pending"}, replies  # waiting in the outbox, not in a send
        later = await ask(r, "busy_b", "kit", 2, "rain")
        await r.run_for(POLL + 10)
        decided = await r.decisions("kit")
        assert all(decided.get(t) == "reply" for t in later), decided  # still reading while the sends wait
        await r.run_for(45 * 60)  # 8 replies at 3 posts a window: three windows
        await assert_answered_once(r, "kit", first + later)
        await assert_healthy(r)
