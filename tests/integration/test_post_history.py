"""What every generated post is checked against, read in one statement: the same texts as the
agent's latest posts and its posts of X's duplicate window read apart."""

from __future__ import annotations

import random

import pytest

from puppet_engine.agents.runtime import own_tweets_since, post_history, recent_post_texts
from puppet_engine.events import ActionSpec
from puppet_engine.events.records import insert_action
from puppet_engine.storage import Database
from puppet_engine.storage.repos import outbox

DAY = 86_400.0
NOW = 1_700_000_000.0


@pytest.fixture
def db(either_database: Database) -> Database:
    return either_database


async def record_history(db: Database, agent_id: str, count: int, rng: random.Random) -> None:
    """``count`` actions of every kind over three days, some failed, in no particular order of time."""
    async with db.transaction() as conn:
        for i in range(count):
            kind = rng.choice(["post", "post", "reply", "quote", "thread", "like"])
            payload = {"parts": [f"{agent_id} part {i}a", f"part {i}b"]} if kind == "thread" else \
                {"tweet_id": str(i)} if kind == "like" else {"text": f"{agent_id} says {i}" if i % 9 else ""}
            at = NOW - rng.uniform(0, 3 * DAY)
            action_id = await insert_action(conn, ActionSpec(f"{agent_id}:{i}", agent_id, kind, payload), None, at)
            if rng.random() < 0.15:
                assert action_id is not None
                await outbox.update_action(conn, action_id, at, status="failed", error="refused")


@pytest.mark.parametrize("count", [0, 7, 60])
async def test_post_history_is_the_latest_posts_and_the_duplicate_window(db: Database, count: int) -> None:
    rng = random.Random(count)
    await record_history(db, "ada", count, rng)
    await record_history(db, "bob", 40, rng)  # another agent's posts are never read
    for since in (NOW - DAY, NOW - 2 * DAY, NOW - 4 * DAY, NOW + 1):
        assert await post_history(db, "ada", since) == (
            await recent_post_texts(db, "ada"), await own_tweets_since(db, "ada", since))
        assert await post_history(db, "ada", since, recent=5, limit=3) == (
            await recent_post_texts(db, "ada", 5), await own_tweets_since(db, "ada", since, 3))
