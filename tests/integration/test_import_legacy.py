"""``puppet-engine import-legacy``: the original engine's data/ comes in once, and its handled mentions stay handled.

The fixtures in tests/data/legacy-data/data are in the original's on-disk format (its memory
manager's ``JSON.stringify`` of ``coreMemories``, ``recentEvents``, ``recentPosts``,
``relationships``, ``longTermMemories``, ``tweetHistory``; ``processed_tweets.json`` an array of
tweet ids); ``coby-agent.json`` and ``processed_tweets.json`` are the original repository's own.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx2
import sqlalchemy as sa
from typer.testing import CliRunner

from puppet_engine.agents.legacy import IMPORTED_DECISION, import_legacy
from puppet_engine.cli import app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.memory import build_memory_store
from puppet_engine.persona import load_agent_file, parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.tables import events, mentions

DATA = Path(__file__).resolve().parents[1] / "data"
LEGACY = DATA / "legacy-data" / "data"
CORPUS = DATA / "agents-corpus"
PROCESSED = json.loads((LEGACY / "processed_tweets.json").read_text())


def agents_dir(tmp_path: Path, *ids: str) -> Path:
    target = tmp_path / "agents"
    target.mkdir()
    for agent_id in ids:
        shutil.copy(CORPUS / f"{agent_id}.json", target / f"{agent_id}.json")
    return target


def invoke(url: str, *args: str):
    return CliRunner().invoke(app, ["import-legacy", *args, "--database-url", url],
                              env={"EMBEDDER": "hashing", "MEMORY_ENCRYPTION_KEY": ""})


async def open_store(url: str):
    db = Database(url)
    await db.migrate()
    return db, build_memory_store(Settings(database_url=url, embedder="hashing", _env_file=None), db)  # type: ignore[call-arg]


def test_import_twice_adds_everything_once_and_names_the_unreadable_file(tmp_path: Path, sqlite_url: str) -> None:
    agents = agents_dir(tmp_path, "claudia-agent", "coby-agent", "test-grok-agent")
    first = invoke(sqlite_url, str(LEGACY), "--agents", str(agents))
    # test-grok-agent.json was cut short mid-write: named with its place, the rest imported.
    assert first.exit_code == 1
    assert f"{LEGACY / 'memories' / 'test-grok-agent.json'}: line 1 column 701: not valid JSON" in first.output
    assert "file skipped" in first.output
    claudia = next(line for line in first.output.splitlines() if line.startswith("claudia-agent:"))
    # 4 core, 2 events, 3 posts (tweetHistory repeats 2 of recentPosts), 2 long-term (general, interaction).
    assert "4 core" in claudia and "2 event" in claudia and "3 post" in claudia and "2 knowledge" in claudia
    assert "relationships 2 new" in claudia and f"handled mentions {len(PROCESSED)} new" in claudia
    assert f"processed tweet ids: {len(PROCESSED)}" in first.output
    asyncio.run(check_first_import(sqlite_url))

    second = invoke(sqlite_url, str(LEGACY), "--agents", str(agents))
    claudia = next(line for line in second.output.splitlines() if line.startswith("claudia-agent:"))
    assert "no new memories (11 already there)" in claudia
    assert "relationships 0 new, 2 already there" in claudia and "handled mentions 0 new" in claudia
    asyncio.run(check_second_import(sqlite_url, agents))


async def check_first_import(sqlite_url: str) -> None:
    db, store = await open_store(sqlite_url)
    try:
        assert await store.count("claudia-agent") == 11
        posts = sorted(m.content for m in await store.list_memories("claudia-agent", kind="post"))
        assert posts[0] == "gm to everyone except the void"  # the post text, not 'I posted: "…"'
        assert "reality glitched again at the coffee machine. it dispensed soup." in posts
        soup = next(m for m in await store.list_memories("claudia-agent", kind="post") if "soup" in m.content)
        assert soup.metadata["tweet_id"] == "1919759021205377043"
        assert soup.created_at == 1746540131.402  # 2025-05-06T14:02:11.402Z
        found = await store.search_memories("claudia-agent", "mempool outage sleep", limit=3)
        assert any("mempool" in s.memory.content for s in found)  # embedded: searchable
        coby = await store.relationships.get("claudia-agent", "coby-agent")
        assert coby is not None and (coby.sentiment, coby.familiarity, coby.trust) == (0.6, 0.8, 0.5)
        assert "chaotic but loyal" in coby.notes and "the great mempool outage" in coby.notes
        frog = await store.relationships.get("claudia-agent", "frogillius")
        assert frog is not None and frog.notes == "keeps asking me to buy his token"
        for agent_id in ("claudia-agent", "coby-agent", "test-grok-agent"):  # processed ids are global
            async with db.connect() as conn:
                decisions = dict((await conn.execute(sa.select(mentions.c.tweet_id, mentions.c.decision)
                                                     .where(mentions.c.agent_id == agent_id))).all())
            assert decisions == dict.fromkeys(PROCESSED, IMPORTED_DECISION)
    finally:
        await store.close()
        await db.close()


async def check_second_import(sqlite_url: str, agents: Path) -> None:
    db, store = await open_store(sqlite_url)
    try:
        assert await store.count("claudia-agent") == 11
        async with db.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(mentions))).scalar() == 3 * len(PROCESSED)
            keyed = (await conn.execute(sa.select(sa.func.count()).select_from(events)
                                        .where(events.c.type == "mention.received"))).scalar()
            assert keyed == 3 * len(PROCESSED)
        # The engine seeding the agent file's initial_memory afterwards adds none of the imported core memories.
        config = load_agent_file(agents / "claudia-agent.json").config
        added = await store.seed_initial("claudia-agent", config.initial_memory)
        assert added == len(set(config.initial_memory.core_memories)) - 4
    finally:
        await store.close()
        await db.close()


def test_unknown_agents_and_a_wrong_directory_are_named(tmp_path: Path, sqlite_url: str) -> None:
    agents = agents_dir(tmp_path, "coby-agent")
    result = invoke(sqlite_url, str(LEGACY.parent), "--agents", str(agents))  # the project root is accepted too
    assert result.exit_code == 1
    assert "claudia-agent.json: agentId: no agent file has the id 'claudia-agent' (known: coby-agent)" in result.output
    assert "coby-agent: no new memories" in result.output  # its real memory file is empty
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(sqlite_url, str(empty), "--agents", str(agents))
    assert result.exit_code == 1
    assert f"{empty}: no memories/ directory and no processed_tweets.json" in " ".join(result.output.split())
    bad = tmp_path / "bad"
    (bad / "memories").mkdir(parents=True)
    (bad / "processed_tweets.json").write_text('["1", "two"]')
    (bad / "memories" / "coby-agent.json").write_text(json.dumps(
        {"agentId": "coby-agent", "coreMemories": [{"content": 12}], "recentEvents": "x",
         "longTermMemories": [{"content": "kept", "type": "general"}]}))
    result = invoke(sqlite_url, str(bad), "--agents", str(agents))
    assert result.exit_code == 1
    assert "coby-agent.json: coreMemories[0].content: expected a non-empty string, got 12; skipped" in result.output
    assert "coby-agent.json: recentEvents: expected a list, got str; section skipped" in result.output
    assert "processed_tweets.json: [1]: expected a tweet id (digits), got 'two'; no mention ids imported" in result.output
    assert "coby-agent: 1 knowledge" in result.output


async def test_a_mention_the_old_engine_handled_is_not_answered_again(tmp_path: Path, sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=3), clock=clock)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url="http://sandbox") as x:
        await x.post("/sandbox/x/accounts", json={"username": "claudia_agent"})  # its sandbox account
        ids = []
        for text in ("@claudia_agent what is in the soup?", "@claudia_agent what is in the mempool?"):
            posted = await x.post("/sandbox/x/tweets", json={"username": "dora", "text": text})
            ids.append(posted.json()["data"]["id"])
    old, new = ids
    data = tmp_path / "data"
    shutil.copytree(LEGACY, data)
    (data / "processed_tweets.json").write_text(json.dumps([*PROCESSED, old]))
    db, store = await open_store(sqlite_url)
    try:
        report = await import_legacy(data, store, db, agent_ids=["claudia-agent"])
    finally:
        await store.close()
        await db.close()
    assert report.agents["claudia-agent"].handled_mentions_added == len(PROCESSED) + 1

    config = json.loads((CORPUS / "claudia-agent.json").read_text())
    config["llm_provider"] = "fake"  # the file otherwise as its author wrote it
    settings = Settings(database_url=sqlite_url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(config)], clock=clock, seed=2, sandbox=sandbox))
    await engine.start()
    try:
        await engine.run_until(clock.now() + 20 * 60)
        body = (await engine.wiring.http.get(f"{engine.wiring.sandbox_url}/sandbox/x/tweets",
                                             params={"username": "claudia_agent"})).json()
        replied_to = {r["id"] for t in body["data"] for r in t.get("referenced_tweets", []) if r["type"] == "replied_to"}
        assert new in replied_to  # a new question is answered as usual
        assert old not in replied_to  # the one the old engine handled is not
        async with engine.db.connect() as conn:
            decisions = dict((await conn.execute(sa.select(mentions.c.tweet_id, mentions.c.decision)
                                                 .where(mentions.c.tweet_id.in_(ids)))).all())
        assert decisions == {old: IMPORTED_DECISION, new: "reply"}
        # The imported memories are there for the agent's replies.
        assert await engine.wiring.memory.count("claudia-agent", "post") >= 3
    finally:
        await engine.stop()


async def test_import_on_postgresql_is_idempotent_too(pg_url: str) -> None:
    db, store = await open_store(pg_url)
    try:
        first = await import_legacy(LEGACY, store, db, agent_ids=["claudia-agent", "coby-agent"])
        again = await import_legacy(LEGACY, store, db, agent_ids=["claudia-agent", "coby-agent"])
        assert sum(first.agents["claudia-agent"].added.values()) == 11
        assert first.agents["coby-agent"].handled_mentions_added == len(PROCESSED)
        assert sum(again.agents["claudia-agent"].added.values()) == 0 and again.agents["claudia-agent"].existing == 11
        assert again.agents["coby-agent"].handled_mentions_added == 0
        assert await store.count("claudia-agent") == 11
    finally:
        await store.close()
        await db.close()
