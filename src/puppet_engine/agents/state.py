"""Agents' persisted state (``agents.state``: mood, cursors, sequence numbers), typed, read from memory.

:class:`AgentState` is the typed view of the stored JSON object; its shape in the database
is unchanged (the object read is kept as it is, keys the fields do not name included), so
rows written before it load as they are.

Every handler reads its agent's state, and only the process that owns an agent writes
it (through the event engine's commits, which report here once committed, or through
:meth:`AgentStates.merge`). So the state is read from the database once — in bulk at
start-up — and kept in step with every write after that: a handler's read costs nothing
(the state is immutable, so the cached object itself is handed out). An agent gained from
another process (lease takeover) is read again (:meth:`AgentStates.forget`). Readers that
may look at any agent, such as the API, read the database (:meth:`AgentStates.stored`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage import Database
from puppet_engine.storage.group_commit import GroupCommitter
from puppet_engine.storage.repos import agent_states, facts


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent's state. Change it through a handler result's ``state`` or :meth:`AgentStates.merge`
    (both take the changed keys: the stored names below)."""

    mood: dict[str, Any] | None = None  # agents.mood.Mood.to_state()
    x_account: dict[str, Any] | None = None  # {"id", "username"} of the connected X account
    # mention polls
    since_id: str | None = None  # the newest mention seen: the next poll asks for newer ones
    poll_seq: int = 0
    last_poll_at: float | None = None
    idle_polls: int = 0  # polls in a row that found nothing (the poll interval backs off)
    # posting, interactions, trading
    post_seq: int = 0
    last_post_at: float | None = None
    next_post_at: float | None = None
    last_interact_at: float | None = None
    trade_seq: int = 0
    last_trade_check_at: float | None = None
    next_trade_check_at: float | None = None
    post_skip_streak: int = 0  # scheduled posts skipped in a row (warned about once per streak)
    post_skip_reasons: list[list[Any]] = field(default_factory=list)  # [reason, count] pairs of the streak
    # engagement (agents/engagement.py): peak hours learnt from it (opt-in), last pruning of its samples
    learned_peak_hours: list[int] | None = None
    engagement_pruned_at: float | None = None
    stored: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the JSON object as read

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> AgentState:
        """The state stored as ``data`` (any JSON object: missing keys take their defaults,
        keys not named here are kept)."""
        data = data or {}
        return cls(**{name: data[name] for name in _FIELDS if name in data}, stored=data)

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object, as it is in the database (a copy)."""
        return dict(self.stored)

    def merged(self, changes: dict[str, Any]) -> AgentState:
        """This state with ``changes`` (stored names → values) applied."""
        return AgentState.from_json({**self.stored, **changes})


_FIELDS = tuple(f.name for f in fields(AgentState) if f.name != "stored")


class AgentStates:
    """The owned agents' states, read once and kept in step with every write."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, AgentState] = {}
        # Merges asked for together (thousands of agents connecting at start-up) share a commit.
        self._merges: GroupCommitter[_Merge, None] = GroupCommitter(db, _write_merges)

    async def get(self, agent_id: str) -> AgentState:
        """The agent's state (immutable: change it through a handler result or :meth:`merge`)."""
        state = self._known.get(agent_id)
        if state is None:
            stored = await agent_states.read_state(self.db, agent_id)
            if stored is None:
                return AgentState()  # not registered yet: nothing to keep
            state = self._known[agent_id] = AgentState.from_json(stored)
        return state

    async def stored(self, agent_id: str) -> AgentState | None:
        """The agent's state as the database has it now (any agent, owned or not; ``None``
        when it is not registered)."""
        stored = await agent_states.read_state(self.db, agent_id)
        return None if stored is None else AgentState.from_json(stored)

    async def preload(self, agent_ids: Iterable[str]) -> None:
        """Read the state of many agents in a few queries (start-up)."""
        wanted = [a for a in agent_ids if a not in self._known]
        for agent_id, stored in (await agent_states.read_states(self.db, wanted)).items():
            self._known[agent_id] = AgentState.from_json(stored)

    def committed(self, agent_id: str, changes: dict[str, Any]) -> None:
        """``changes`` were merged into the agent's row: do the same here.

        Values go through JSON, as in the database, so a read gives back what a query would.
        """
        state = self._known.get(agent_id)
        if state is not None and changes:
            self._known[agent_id] = state.merged(json.loads(json.dumps(changes)))

    async def merge(self, agent_id: str, changes: dict[str, Any], now: float) -> None:
        """Merge ``changes`` (stored names → values) into the agent's persisted state, outside any event.

        Returns once committed; merges asked for at the same time share one transaction.
        """
        fact = facts.fact(agent_id, "state", changes, now)  # here: its cause is this task's event
        write = asyncio.ensure_future(self._merges.write((agent_id, changes, now, fact)))
        # Kept in memory once committed, even when this caller is cancelled while it waits.
        write.add_done_callback(
            lambda w: None if w.cancelled() or w.exception() is not None else self.committed(agent_id, changes))
        await asyncio.shield(write)

    def forget(self, agent_ids: Iterable[str] | None = None) -> None:
        """Read these agents (all, with ``None``) from the database again next time."""
        if agent_ids is None:
            self._known.clear()
            return
        for agent_id in agent_ids:
            self._known.pop(agent_id, None)


_Merge = tuple[str, dict[str, Any], float, dict[str, Any]]  # agent id, changes, when, its history fact


async def _write_merges(conn: AsyncConnection, merges: list[_Merge]) -> list[None]:
    """A group of merges in one transaction: each agent's, in order, as one change."""
    combined: dict[str, tuple[dict[str, Any], float]] = {}
    for agent_id, changes, now, _ in merges:
        earlier = combined.get(agent_id)
        combined[agent_id] = ({**earlier[0], **changes} if earlier else changes, now)
    for at in dict.fromkeys(now for _, now in combined.values()):  # usually a single time
        await agent_states.merge_states(conn, [(a, c) for a, (c, now) in combined.items() if now == at], at)
    await facts.insert(conn, [fact for *_, fact in merges])
    return [None] * len(merges)
