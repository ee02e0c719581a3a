"""Folding an agent's facts into its state: the projection the current tables hold, at any moment.

:func:`fold` replays facts in order (``baseline`` first when there is one) into a
:class:`Projection`: ``agents.state``, relationships, config version, lifecycle, balances,
the latest trades and skips. :func:`rebuild` does it for an agent's whole history and can
write the result back over ``agents.state`` and ``relationships`` (the current tables are a
cache of the facts: a test rebuilds them and compares).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from puppet_engine.storage import Database
from puppet_engine.storage.repos import facts as fact_rows

RELATIONSHIP_DEFAULTS = {"sentiment": 0.0, "familiarity": 0.0, "trust": 0.5, "notes": "", "interactions": 0}
KEEP_TRADES = 20  # the latest trades a projection keeps (each one's latest status)


@dataclass
class Projection:
    """What an agent was, as its facts tell it up to some moment."""

    state: dict[str, Any] = field(default_factory=dict)
    relationships: dict[str, dict[str, Any]] = field(default_factory=dict)  # other → row (without agent_id)
    config: dict[str, Any] | None = None  # {"version", "source", "by", "at"}
    lifecycle: dict[str, Any] | None = None  # {"status", "by", "at"}
    balances: dict[str, Any] | None = None  # {"sol", "tokens", "at"}
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → latest fact payload (+ "at")
    skips: list[dict[str, Any]] = field(default_factory=list)  # the latest skips, newest last
    memories_added: dict[str, float] = field(default_factory=dict)  # memory id → when it was added
    memories_forgotten: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → what was kept
    facts: int = 0
    last_at: float | None = None

    def apply(self, row: dict[str, Any]) -> None:
        """One fact (a ``facts`` row) on top of what is known."""
        kind, payload, at = row["kind"], row["payload"] or {}, row["at"]
        self.facts += 1
        self.last_at = at
        if kind == "state":
            self.state.update(payload)
        elif kind == "relationship":
            self._relationship(payload, at)
        elif kind == "config":
            self.config = {**payload, "at": at}
        elif kind == "lifecycle":
            self.lifecycle = {**payload, "at": at}
        elif kind == "balances":
            self.balances = {**payload, "at": at}
        elif kind == "trade":
            key = str(payload.get("key"))
            self.trades.pop(key, None)  # re-inserted: newest last
            self.trades[key] = {**payload, "at": at}
            while len(self.trades) > KEEP_TRADES:
                self.trades.pop(next(iter(self.trades)))
        elif kind == "skip":
            self.skips = [*self.skips[-(KEEP_TRADES - 1):], {**payload, "at": at, "cause": row.get("cause")}]
        elif kind == "memory_added":
            self.memories_added[payload["id"]] = at
        elif kind == "memory_forgotten":
            self._forgotten(payload, at)
        elif kind == "baseline":
            self.state = dict(payload.get("state") or {})
            self.relationships = {r["other"]: {**RELATIONSHIP_DEFAULTS, **r} for r in payload.get("relationships", [])}
            if payload.get("config_version") is not None:
                self.config = {"version": payload["config_version"], "source": "baseline", "by": None, "at": at}
            for key in ("lifecycle", "balances"):
                if payload.get(key):
                    setattr(self, key, payload[key])

    def _relationship(self, payload: dict[str, Any], at: float) -> None:
        if payload.get("cleared"):
            self.relationships.clear()
            return
        other = payload["other"]
        if payload.get("deleted"):
            self.relationships.pop(other, None)
            return
        rel = self.relationships.setdefault(other, {"other": other, **RELATIONSHIP_DEFAULTS})
        rel.update(payload)
        rel["updated_at"] = at

    def _forgotten(self, payload: dict[str, Any], at: float) -> None:
        self.memories_added.pop(payload["id"], None)
        self.memories_forgotten[payload["id"]] = {**payload, "at": at}

    def baseline(self) -> dict[str, Any]:
        """The ``baseline`` fact's payload that stands for everything folded so far (retention)."""
        return {"state": self.state, "relationships": list(self.relationships.values()),
                "config_version": (self.config or {}).get("version"), "lifecycle": self.lifecycle,
                "balances": self.balances}


def fold(rows: Iterable[dict[str, Any]], into: Projection | None = None) -> Projection:
    """The projection of ``rows`` (facts, oldest first)."""
    projection = into or Projection()
    for row in rows:
        projection.apply(row)
    return projection


async def project(db: Database, agent_id: str, at: float | None = None) -> Projection:
    """The agent's projection from its facts up to ``at`` (all of them with ``None``)."""
    return fold(await fact_rows.of_agent(db, agent_id, until=at))


async def rebuild(db: Database, agent_id: str, *, write: bool = False, now: float = 0.0) -> Projection:
    """Rebuild the agent's projection from all its facts; with ``write``, replace ``agents.state``
    and its relationships with it (the engine must not run that agent meanwhile)."""
    projection = await project(db, agent_id)
    if write:
        await fact_rows.write_projection(db, agent_id, projection.state,
                                         list(projection.relationships.values()), now)
    return projection
