"""Where ``engagement.sample`` keeps its samples, and the reads of them it decides on, recorded for replay.

The behaviour reads the agent's tracked posts, the samples an earlier attempt of the event
took, and the sample history its effects are judged on; it writes samples and prunes old
ones (the count is part of its result). :class:`EngagementStore` does that on the database
and, while an event is recorded (:mod:`puppet_engine.events.recording`), notes each read
with its answer; a replay serves those answers instead
(:class:`puppet_engine.replay.clients.ReplayEngagement`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from puppet_engine.events.recording import capturing, note
from puppet_engine.storage import Database
from puppet_engine.storage.repos import engagement as repo
from puppet_engine.storage.repos.engagement import Sample, TrackedPost


def tracked_json(post: TrackedPost) -> dict[str, Any]:
    return {"post_id": post.post_id, "posted_at": post.posted_at, "text": post.text, "taken": sorted(post.taken)}


def tracked_from_json(data: dict[str, Any]) -> TrackedPost:
    return TrackedPost(str(data["post_id"]), float(data["posted_at"]), str(data.get("text", "")),
                       frozenset(int(s) for s in data.get("taken", ())))


def sample_from_json(data: dict[str, Any]) -> Sample:
    return Sample(**data)


def _samples_json(found: Sequence[Sample]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) for s in found]


class EngagementStore:
    """The engagement samples of the agents' posts (``storage.repos.engagement``), reads recorded."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def tracked_posts(self, agent_id: str, since: float) -> list[TrackedPost]:
        found = await repo.tracked_posts(self.db, agent_id, since)
        if capturing():
            note("read", {"what": "engagement_posts", "posts": [tracked_json(p) for p in found]})
        return found

    async def taken_by(self, event_key: str) -> list[Sample]:
        found = await repo.taken_by(self.db, event_key)
        if capturing():
            note("read", {"what": "engagement_taken", "samples": _samples_json(found)})
        return found

    async def samples(self, agent_id: str, since: float) -> list[Sample]:
        found = await repo.samples(self.db, agent_id, since)
        if capturing():
            note("read", {"what": "engagement_history", "samples": _samples_json(found)})
        return found

    async def record(self, samples: Sequence[Sample], event_key: str) -> None:
        await repo.record(self.db, samples, event_key)

    async def prune(self, agent_id: str, before: float) -> int:
        pruned = await repo.prune(self.db, agent_id, before)
        if capturing():  # a write, but its count is part of the decision's result
            note("read", {"what": "engagement_pruned", "rows": pruned})
        return pruned
