"""Mentions through X's filtered stream: real engines against the sandbox on loopback.

Delivery and rule sync as agents start and stop; a stalled, refused and dropped stream falls
back to since_id polls that catch up, with every mention received exactly once; a restart
catches up what arrived while the engine was down; with two engines on one database only
one holds the connection, and mentions for the other's agents reach it through the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from api_helpers import eventually, example_configs, running_engine

from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import events, role_leases

STREAM = "/2/tweets/search/stream"


@asynccontextmanager
async def sandbox_server() -> AsyncIterator[tuple[Sandbox, str, httpx2.AsyncClient]]:
    sandbox = Sandbox(SandboxConfig(seed=9, extra={"x_stream_keepalive": 0.25}))
    server = BackgroundServer(sandbox.app)
    await server.start()
    try:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/sandbox/x/accounts", json={"username": "fan"})
            yield sandbox, server.url, http
    finally:
        await server.stop()


def _engine(url: str, database_url: str, owner: str, **settings: Any) -> Engine:
    values = {"database_url": database_url, "embedder": "hashing", "mention_poll_seconds": 600.0,
              "lease_ttl_seconds": 3.0, **settings}
    configs = [c for c in example_configs() if c.id in ("coby", "nova")]
    return Engine(Settings(_env_file=None, **values),  # type: ignore[call-arg]
                  EngineOptions(agents=configs, sandbox_url=url, seed=5, owner=owner))


@asynccontextmanager
async def engine_on(url: str, database_url: str, owner: str = "node-a", **settings: Any) -> AsyncIterator[Engine]:
    engine = _engine(url, database_url, owner, **settings)
    async with running_engine(engine):
        feed = engine.mention_stream
        if feed is not None and feed.stream is not None:  # tests: notice a stall in 1 s, retry fast
            feed.stream.stall_seconds = 1.0
            feed.stream.backoff.scale = 0.02
        yield engine


def _hub(sandbox: Sandbox) -> Any:
    return sandbox.service("x").stream


def _rule_tags(sandbox: Sandbox) -> set[str]:
    return {r.tag for rules in _hub(sandbox).rules.values() for r in rules.values()}


async def _mention(http: httpx2.AsyncClient, text: str) -> str:
    r = await http.post("/sandbox/x/tweets", json={"username": "fan", "text": text})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


async def _received(engine: Engine, agent_id: str) -> dict[str, dict[str, Any]]:
    """tweet id → the payload of its one mention.received event (the key makes it one)."""
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(events.c.key, events.c.payload, events.c.owner, events.c.status)
                                   .where(events.c.type == "mention.received", events.c.agent_id == agent_id))).all()
    found: dict[str, dict[str, Any]] = {}
    for key, payload, owner, status in rows:
        parts = key.split(":")
        if len(parts) == 3:  # mention:<agent>:<tweet> (deferrals have a suffix)
            assert parts[2] not in found, f"two events for {parts[2]}"
            found[parts[2]] = {**payload, "_owner": owner, "_status": status}
    return found


async def test_stream_delivers_mentions_and_rules_follow_agents(tmp_path: Path) -> None:
    async with sandbox_server() as (sandbox, url, http):
        async with engine_on(url, f"sqlite:///{tmp_path / 'e.db'}") as engine:
            feed = engine.mention_stream
            assert feed is not None
            await eventually(lambda: _live(feed))
            assert _rule_tags(sandbox) == {"puppet:agent:coby", "puppet:agent:nova"}
            tweet = await _mention(http, "@coby what do you think of the market today?")
            got = await eventually(lambda: _received(engine, "coby"))
            assert got[tweet]["via"] == "stream"
            # answered: the reply went out through the outbox
            await eventually(lambda: _replied(http, tweet))

            await engine.manager.stop_agent("nova")
            await eventually(lambda: _async(_rule_tags(sandbox) == {"puppet:agent:coby"}))
            await engine.manager.start_agent("nova")
            await eventually(lambda: _async(_rule_tags(sandbox) == {"puppet:agent:coby", "puppet:agent:nova"}))
            # rules nobody owns are removed at start: a stale one left by an earlier run goes
        stale = (await http.post("/x/2/tweets/search/stream/rules", json={"add": [{"value": "@ghost", "tag": "old"}]},
                                 headers={"Authorization": f"Bearer {_app_bearer(sandbox)}"}))
        assert stale.status_code == 201, stale.text
        async with engine_on(url, f"sqlite:///{tmp_path / 'e.db'}") as engine:
            await eventually(lambda: _live(engine.mention_stream))
            assert "old" not in _rule_tags(sandbox)


async def test_grouped_rules_route_a_post_to_the_agents_it_mentions(tmp_path: Path) -> None:
    async with (sandbox_server() as (sandbox, url, http),
                engine_on(url, f"sqlite:///{tmp_path / 'e.db'}", x_stream_max_rules=1) as engine):
        await eventually(lambda: _live(engine.mention_stream))
        (rule,) = [r for rules in _hub(sandbox).rules.values() for r in rules.values()]
        assert rule.tag == "puppet:group:1" and rule.value.count(" OR ") == 1
        tweet = await _mention(http, "@nova only you, is that right?")
        got = await eventually(lambda: _received(engine, "nova"))
        assert got[tweet]["via"] == "stream"
        await asyncio.sleep(0.5)
        assert tweet not in await _received(engine, "coby")


async def test_auto_mode_polls_when_the_access_level_has_no_filtered_stream(tmp_path: Path) -> None:
    async with sandbox_server() as (sandbox, url, http):
        sandbox.service("x").limits.set_profile("basic")  # Basic: no filtered stream
        async with engine_on(url, f"sqlite:///{tmp_path / 'e.db'}", mention_poll_seconds=1.0) as engine:
            feed = engine.mention_stream
            assert feed is not None
            await eventually(lambda: _async(sandbox.service("x").stats.get("403", 0) >= 1))
            tweet = await _mention(http, "@coby anyone home?")
            got = await eventually(lambda: _received(engine, "coby"))
            assert got[tweet]["via"] == "poll"
            assert not feed.holder and feed.live_since is None and not _hub(sandbox).connections


async def test_stall_refusal_and_drop_fall_back_to_polls_without_loss_or_doubles(tmp_path: Path) -> None:
    async with sandbox_server() as (sandbox, url, http):
        database_url = f"sqlite:///{tmp_path / 'e.db'}"
        sent: list[str] = []
        async with engine_on(url, database_url) as engine:
            feed = engine.mention_stream
            assert feed is not None
            await eventually(lambda: _live(feed))
            await eventually(lambda: _polls_caught_up(engine))  # else the catch-up poll may read it first
            sent.append(await _mention(http, "@coby hello there, first one"))
            await eventually(lambda: _has(engine, sent))

            # Stalled (silent, then refused twice on reconnect): a post meanwhile is lost to the stream.
            await http.post("/sandbox/faults", json={"service": "x", "path": STREAM, "kind": "stall"})
            await http.post("/sandbox/faults", json={"service": "x", "path": STREAM, "status": 503, "count": 2})
            await asyncio.sleep(0.2)
            sent.append(await _mention(http, "@coby are you still there? second"))
            await eventually(lambda: _async(feed.live_since is None))  # stall noticed: down
            await eventually(lambda: _has(engine, sent))  # a since_id poll caught it up
            await eventually(lambda: _live(feed))  # back after the refusals

            # Dropped: reconnects at once; a post around the drop arrives once, by stream or poll.
            await http.post("/sandbox/faults", json={"service": "x", "path": STREAM, "kind": "drop"})
            sent.append(await _mention(http, "@coby third, around a drop"))
            await eventually(lambda: _has(engine, sent))
            await eventually(lambda: _live(feed))
            await eventually(lambda: _polls_caught_up(engine))
            sent.append(await _mention(http, "@coby fourth, stream again"))
            await eventually(lambda: _has(engine, sent))

        # While no engine runs, a mention arrives: the restart's since_id poll catches it up.
        sent.append(await _mention(http, "@coby fifth, while you were away"))
        async with engine_on(url, database_url) as engine:
            got = await eventually(lambda: _has(engine, sent))
        assert got[sent[1]]["via"] == "poll" and got[sent[4]]["via"] == "poll"
        assert got[sent[0]]["via"] == "stream" and got[sent[3]]["via"] == "stream"
        replies = [t for t in sandbox.service("x").state.tweets.values() if t.ref("replied_to") in sent]
        per_mention = {m: sum(1 for t in replies if t.ref("replied_to") == m) for m in sent}
        assert all(n <= 1 for n in per_mention.values()), per_mention


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database shared by the engines of a test: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'e.db'}"
    return str(request.getfixturevalue("pg_url"))


async def test_two_engines_one_stream_connection(database_url: str) -> None:
    async with sandbox_server() as (sandbox, url, http):
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(engine_on(url, database_url, "node-a", engine_leases=True))
            b = await stack.enter_async_context(engine_on(url, database_url, "node-b", engine_leases=True))
            engines = {"node-a": a, "node-b": b}
            await eventually(lambda: _async(a.leases is not None and b.leases is not None
                                            and len(a.leases.owned) == 1 and len(b.leases.owned) == 1))
            holder = await eventually(lambda: _holder(a))
            other = engines["node-b" if holder == "node-a" else "node-a"]
            await eventually(lambda: _async(len(_hub(sandbox).connections) == 1))
            assert engines[holder].mention_stream.holder and not other.mention_stream.holder
            assert sandbox.service("x").stats.get("429", 0) == 0  # the other never tried to connect
            # A mention of the agent the non-holder owns: streamed by the holder, claimed by its owner.
            assert other.leases is not None
            (owned_elsewhere,) = other.leases.owned
            tweet = await _mention(http, f"@{owned_elsewhere} hello from the crowd?")
            got = await eventually(lambda: _done(other, owned_elsewhere, tweet))
            assert got["via"] == "stream" and got["_owner"] == other.owner
            # The holder goes away: the other takes the role and opens the one connection.
            await stack.aclose()
        async with engine_on(url, database_url, "node-c", engine_leases=True) as c:
            await eventually(lambda: _live(c.mention_stream))
            assert len(_hub(sandbox).connections) == 1


async def _async(value: Any) -> Any:
    return value


async def _live(feed: Any) -> bool:
    return feed is not None and feed.live_since is not None


async def _polls_caught_up(engine: Engine) -> bool:
    """The stream is up and its catch-up polls have run: none is still being brought forward,
    due or running, so a mention posted now can only arrive through the stream (the next poll
    is mention_poll_seconds away)."""
    if any(getattr(t.get_coro(), "__qualname__", "") == "MentionStream._published" for t in asyncio.all_tasks()):
        return False
    async with engine.db.connect() as conn:
        busy = (await conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "mentions.poll",
            (events.c.status == "running") | ((events.c.status == "pending")
                                              & (events.c.due_at <= engine.clock.now() + 60))))).scalar()
    return busy == 0


async def _has(engine: Engine, tweet_ids: list[str]) -> dict[str, dict[str, Any]] | None:
    got = await _received(engine, "coby")
    return got if all(t in got for t in tweet_ids) else None


async def _done(engine: Engine, agent_id: str, tweet_id: str) -> dict[str, Any] | None:
    got = (await _received(engine, agent_id)).get(tweet_id)
    return got if got is not None and got["_status"] == "done" else None


async def _replied(http: httpx2.AsyncClient, tweet_id: str) -> bool:
    tweets = (await http.get("/sandbox/x/tweets")).json()
    return any(tweet_id in str(t.get("referenced_tweets", "")) for t in tweets.get("tweets", tweets.get("data", [])))


async def _holder(engine: Engine) -> str | None:
    async with engine.db.connect() as conn:
        row = (await conn.execute(sa.select(role_leases.c.owner, role_leases.c.live_since))).first()
    return row.owner if row is not None and row.live_since is not None else None


def _app_bearer(sandbox: Sandbox) -> str:
    account = sandbox.service("x").state.account_by_username("puppet_stream")
    return str(account.bearer_token)
