"""Agents' persisted state (``agents.state``: mood, cursors, sequence numbers), read from memory.

Every handler reads its agent's state, and only the process that owns an agent writes
it (through the event engine's commits, which report here once committed, or through
:meth:`AgentStates.merge`). So the state is read from the database once — in bulk at
start-up — and kept in step with every write after that: a handler's read costs a dict
copy instead of a query. An agent gained from another process (lease takeover) is
read again (:meth:`AgentStates.forget`). Readers that may look at any agent, such as
the API, read the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage import Database
from puppet_engine.storage.tables import agents

_CHUNK = 500


class AgentStates:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, dict[str, Any]] = {}

    async def get(self, agent_id: str) -> dict[str, Any]:
        """The agent's state (a copy: change it through a handler result or :meth:`merge`)."""
        state = self._known.get(agent_id)
        if state is None:
            async with self.db.connect() as conn:
                row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
            if row is None:
                return {}  # not registered yet: nothing to keep
            state = self._known[agent_id] = dict(row[0] or {})
        return dict(state)

    async def preload(self, agent_ids: Iterable[str]) -> None:
        """Read the state of many agents in a few queries (start-up)."""
        wanted = [a for a in agent_ids if a not in self._known]
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start:start + _CHUNK]
            async with self.db.connect() as conn:
                rows = await conn.execute(sa.select(agents.c.id, agents.c.state).where(agents.c.id.in_(part)))
                for agent_id, state in rows:
                    self._known[agent_id] = dict(state or {})

    def committed(self, agent_id: str, changes: dict[str, Any]) -> None:
        """``changes`` were merged into the agent's row: do the same here.

        Values go through JSON, as in the database, so a read gives back what a query would.
        """
        state = self._known.get(agent_id)
        if state is not None and changes:
            state.update(json.loads(json.dumps(changes)))

    async def merge(self, agent_id: str, changes: dict[str, Any], now: float) -> None:
        """Merge ``changes`` into the agent's persisted state, outside any event."""
        from puppet_engine.events import queue

        async with self.db.transaction() as conn:
            await queue.merge_agent_state(conn, agent_id, changes, now)
        self.committed(agent_id, changes)

    def forget(self, agent_ids: Iterable[str] | None = None) -> None:
        """Read these agents (all, with ``None``) from the database again next time."""
        if agent_ids is None:
            self._known.clear()
            return
        for agent_id in agent_ids:
            self._known.pop(agent_id, None)
