"""An outcome's actions recorded in one statement are the rows that one insert each would write."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from puppet_engine.events import ActionSpec
from puppet_engine.events.records import insert_action, insert_actions
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, review_items

NOW = 1_700_000_000.0


def specs(prefix: str) -> list[tuple[ActionSpec, int | None]]:
    held = {"category": "quote", "reasons": ["new account"], "context": {"why": "test"}, "expires_at": None,
            "on_expire": "drop", "notify": False}
    return [
        (ActionSpec(f"{prefix}like:1", "ada", "like", {"tweet_id": "1"}), 7),
        (ActionSpec(f"{prefix}quote:1", "ada", "quote", {"text": "so true", "quote": "1"}, review=held), 7),
        (ActionSpec(f"{prefix}old", "ada", "post", {"text": "recorded before"}), 8),  # its key exists already
        (ActionSpec(f"{prefix}like:2", "ada", "like", {"tweet_id": "2"}), None),
    ]


async def recorded(db: Database, prefix: str) -> list[tuple]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(actions).where(actions.c.key.like(f"{prefix}%"))
                                   .order_by(actions.c.id))).mappings().all()
        items = (await conn.execute(sa.select(review_items.c.action_id, review_items.c.category,
                                              review_items.c.reasons))).all()
    held = {action_id: (category, list(reasons)) for action_id, category, reasons in items}
    return [(r["key"].removeprefix(prefix), r["kind"], r["payload"], r["status"], r["attempts"], r["not_before"],
             r["event_id"], r["created_at"], r["updated_at"], held.get(r["id"])) for r in rows]


@pytest.fixture
def db(either_database: Database) -> Database:
    return either_database


async def test_actions_of_distinct_keys_in_one_statement_are_recorded_as_one_by_one(db: Database) -> None:
    for prefix in ("one:", "batch:"):
        async with db.transaction() as conn:
            await insert_action(conn, ActionSpec(f"{prefix}old", "ada", "post", {"text": "first"}), 1, NOW - 60)
    async with db.transaction() as conn:
        one = [await insert_action(conn, spec, event_id, NOW, sending=True) for spec, event_id in specs("one:")]
    async with db.transaction() as conn:
        batch = await insert_actions(conn, specs("batch:"), NOW, sending=True)
    assert [i is None for i in batch] == [i is None for i in one] == [False, False, True, False]
    assert await recorded(db, "batch:") == await recorded(db, "one:")
    assert [row[3] for row in await recorded(db, "batch:")] == ["pending", "sending", "awaiting_review", "sending"]


async def test_a_key_twice_in_one_outcome_is_recorded_once_by_the_first(db: Database) -> None:
    twice = [(ActionSpec("k", "ada", "like", {"tweet_id": "1"}), 1), (ActionSpec("k", "ada", "like", {"tweet_id": "2"}), 1)]
    async with db.transaction() as conn:
        first, second = await insert_actions(conn, twice, NOW, sending=True)
    assert first is not None and second is None
    assert [row[2] for row in await recorded(db, "k")] == [{"tweet_id": "1"}]
