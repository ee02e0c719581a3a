"""An agent's state at any moment: what it felt, knew, planned and held, and what happened around.

:func:`state_at` folds the agent's facts up to the moment (``history.projection``) and adds
what the other tables say of that moment: the memories it had (those stored then and not yet
forgotten, and with a ``query`` the ones a search would have found among them, ranked as the
memory store ranks), and the events handled just before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from puppet_engine.agents.mood import Mood
from puppet_engine.history.projection import project
from puppet_engine.history.times import show_time
from puppet_engine.memory.base import RankingWeights
from puppet_engine.memory.embeddings.base import normalize_rows
from puppet_engine.memory.store import unpack
from puppet_engine.storage import Database
from puppet_engine.storage.repos import facts as fact_rows

AROUND_SECONDS = 30 * 60.0  # the events shown on each side of the moment
AROUND_LIMIT = 10  # at most this many on each side
SCHEDULE_KEYS = ("next_post_at", "last_post_at", "next_trade_check_at", "last_trade_check_at", "last_poll_at",
                 "last_interact_at")


async def state_at(db: Database, agent_id: str, at: float, *, store: Any | None = None,
                   query: str | None = None, limit: int = 5, around: float = AROUND_SECONDS) -> dict[str, Any]:
    """The agent's state at ``at`` (epoch seconds) as a JSON-ready dict; times are UTC ISO.

    ``store`` (a memory store: its embedder, cipher and ranking) is needed for ``query``.
    ``known`` is false when no fact of the agent is that old (nothing to tell).
    """
    projection = await project(db, agent_id, at)
    memories = await _memories_then(db, agent_id, at)
    found = None
    if query:
        if store is None:
            raise ValueError("a memory query needs the memory store")
        found = await _search(store, agent_id, memories, query, at, limit)
    before = [e for e in await fact_rows.events_between(db, agent_id, at - around, at) if not _idle(e)]
    after = [e for e in await fact_rows.events_between(db, agent_id, at + 1e-6, at + around) if not _idle(e)]
    return {
        "agent_id": agent_id,
        "at": show_time(at),
        "known": projection.facts > 0,
        "mood": _mood(projection.state.get("mood")),
        "relationships": sorted(({k: v for k, v in r.items() if k != "updated_at"}
                                 for r in projection.relationships.values()),
                                key=lambda r: (-r["familiarity"], r["other"])),
        "config": _timed(projection.config),
        "lifecycle": _timed(projection.lifecycle),
        "schedule": {key: show_time(projection.state.get(key)) for key in SCHEDULE_KEYS},
        "balances": _timed(projection.balances),
        "trades": [_timed(t) for t in list(projection.trades.values())[-5:]],
        "skips": [_timed(s) for s in projection.skips[-5:]],
        "memories": {"count": len(memories), "query": query,
                     "found": found},
        "state": projection.state,
        "events_before": [_event(e) for e in before[-AROUND_LIMIT:]],
        "events_after": [_event(e) for e in after[:AROUND_LIMIT]],
    }


def _idle(event: dict[str, Any]) -> bool:
    """A mention poll that found nothing: left out of the events around a moment."""
    return event["type"] == "mentions.poll" and event["status"] == "done" and not (event["result"] or {}).get(
        "received")


def _mood(stored: Any) -> dict[str, Any] | None:
    if not isinstance(stored, dict):
        return None
    mood = Mood.from_state(stored)
    return {**mood.to_state(), "label": mood.label()}


def _timed(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {**value, "at": show_time(value.get("at")) if isinstance(value.get("at"), float | int) else value.get("at")}


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "type": row["type"], "status": row["status"],
            "at": show_time(row["finished_at"] if row["finished_at"] is not None else row["due_at"]),
            "result": row["result"], "error": row["error"]}


async def _memories_then(db: Database, agent_id: str, at: float) -> list[dict[str, Any]]:
    """The memories the agent had at ``at``: stored by then (and not added later under an older
    time, as imports are) plus those forgotten since; content only as stored (maybe ciphertext)."""
    later = set(await _added_after(db, agent_id, at))
    kept = [m for m in await fact_rows.memories_until(db, agent_id, at, full=True) if m["id"] not in later]
    for row in await fact_rows.of_agent(db, agent_id, since=at, kinds=["memory_forgotten"]):
        payload = row["payload"]
        if "id" in payload and payload["created_at"] <= at and payload["id"] not in later:
            kept.append({**payload, "embedding": None, "forgotten_at": row["at"]})
    return kept


async def _added_after(db: Database, agent_id: str, at: float) -> list[str]:
    rows = await fact_rows.of_agent(db, agent_id, since=at, kinds=["memory_added"])
    return [r["payload"]["id"] for r in rows]


async def _search(store: Any, agent_id: str, memories: list[dict[str, Any]], query: str, at: float,
                  limit: int) -> list[dict[str, Any]]:
    """What the store's search would have found for ``query`` among ``memories`` at ``at``:
    the most similar candidates, ordered by similarity plus importance and recency then."""
    if not memories:
        return []
    texts = [_content(store, agent_id, m) for m in memories]
    missing = [i for i, m in enumerate(memories) if m.get("embedding") is None]
    vectors = np.zeros((len(memories), store.embedder.dim), dtype=np.float32)
    for i, m in enumerate(memories):
        if m.get("embedding") is not None:
            vectors[i] = unpack(m["embedding"])
    if missing:
        vectors[missing] = await store.embedder.embed([texts[i] for i in missing])
    vectors = normalize_rows(vectors)
    wanted = normalize_rows((await store.embedder.embed_one(query)).reshape(1, -1))[0]
    similarity = vectors @ wanted
    weights: RankingWeights = getattr(store, "weights", RankingWeights())
    candidates = np.argsort(-similarity)[:weights.candidates(limit)]
    bonus = weights.bonus(np.array([memories[i]["importance"] for i in candidates]),
                          np.array([memories[i]["created_at"] for i in candidates]), at)
    scores = similarity[candidates] + bonus
    order = [candidates[j] for j in np.argsort(-scores, kind="stable")[:limit]]
    score_of = dict(zip(candidates.tolist(), scores.tolist(), strict=True))
    return [{"id": memories[i]["id"], "kind": memories[i]["kind"], "content": texts[i],
             "created_at": show_time(memories[i]["created_at"]), "score": round(float(score_of[int(i)]), 4),
             "similarity": round(float(similarity[i]), 4),
             "forgotten_at": show_time(memories[i].get("forgotten_at"))} for i in order]


def _content(store: Any, agent_id: str, memory: dict[str, Any]) -> str:
    if not memory.get("encrypted"):
        return str(memory["content"])
    if store.cipher is None:
        return "(encrypted: set MEMORY_ENCRYPTION_KEY to read it)"
    return str(store.cipher.decrypt(memory["content"], agent_id=agent_id, memory_id=memory["id"]))
