"""A test rig for reliability tests: an engine and the sandbox on one virtual clock.

The engine runs in this event loop. Its clock is a view of the sandbox's virtual
clock that knows when the engine itself is waiting (a client's back-off, a rate-limit
window): :meth:`Rig.run_for` then moves time on, so a retry after "8 seconds" takes
no real time, while background sandbox timers (the crowd) never drag time along.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

from puppet_engine.clock import Clock, VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.settings import Settings
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.tables import actions, events, mentions

HOUR = 3600.0


class EngineClock(Clock):
    """The sandbox's virtual time, with a record of who in the engine is sleeping until when."""

    def __init__(self, base: VirtualClock) -> None:
        self.base = base
        self.deadlines: list[float] = []

    def now(self) -> float:
        return self.base.now()

    async def sleep(self, seconds: float) -> None:
        deadline = self.base.now() + max(0.0, seconds)
        self.deadlines.append(deadline)
        try:
            await self.base.sleep(seconds)
        finally:
            self.deadlines.remove(deadline)


def persona(agent_id: str, *, provider: str = "openai", poll_minutes: float = 1.0, post_hours: float = 20.0,
            **extra: Any) -> dict[str, Any]:
    """An agent that answers every mention; posts rarely unless ``post_hours`` is small."""
    data: dict[str, Any] = {
        "id": agent_id, "name": agent_id.title(), "llm_provider": provider,
        "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
        "behavior": {
            "post_frequency": {"min_hours_between_posts": post_hours, "max_hours_between_posts": post_hours * 1.5},
            "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0,
                                     "quote_tweet_probability": 0.0},
            "content_preferences": {"max_thread_length": 1},
            "mention_poll_minutes": poll_minutes,
        },
    }
    data.update(extra)
    return data


@dataclass
class Rig:
    engine: Engine
    sandbox: Sandbox
    clock: VirtualClock
    engine_clock: EngineClock
    url: str
    http: httpx2.AsyncClient
    server: Any = None
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    # -- time ------------------------------------------------------------------------

    async def run_for(self, seconds: float) -> None:
        """Process everything due in the next ``seconds`` of virtual time."""
        until = self.clock.now() + seconds
        while True:
            await self._until_idle()
            due = [await event_rows.next_due_at(self.engine.db, self.engine.manager.owned()), await self._next_action(),
                   min(self.engine_clock.deadlines, default=None)]  # e.g. an agent waiting to start again
            nxt = min((d for d in due if d is not None), default=None)
            if nxt is None or nxt > until:
                break
            self.clock.set(max(nxt, self.clock.now()))
            await asyncio.sleep(0.005)  # let what just woke up run
        self.clock.set(until)

    async def _next_action(self) -> float | None:
        """When the earliest pending outbox action may be sent (after its back-off)."""
        rows = await self.rows(sa.select(sa.func.min(actions.c.not_before))
                               .where(actions.c.status.in_(("pending", "unknown"))))
        return max(float(rows[0][0]), self.clock.now() + 1.0) if rows and rows[0][0] is not None else None

    async def _until_idle(self) -> None:
        await pumped(self.engine.events.run_until_idle(), self.clock, self.engine_clock)

    # -- the sandbox's admin surface -------------------------------------------------------

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.url}/sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    async def fault(self, **spec: Any) -> None:
        await self.admin("POST", "/faults", json=spec)

    async def clear_faults(self, service: str | None = None) -> None:
        await self.admin("DELETE", "/faults", params={"service": service} if service else None)

    async def mention(self, author: str, text: str, reply_to: str | None = None) -> str:
        body = {"username": author, "text": text, **({"reply_to": reply_to} if reply_to else {})}
        return str((await self.admin("POST", "/x/tweets", json=body))["data"]["id"])

    async def tweets_of(self, username: str) -> list[dict[str, Any]]:
        return list((await self.admin("GET", "/x/tweets", params={"username": username}))["data"])

    async def replies_to(self, username: str, tweet_id: str) -> list[dict[str, Any]]:
        return [t for t in await self.tweets_of(username)
                if {"type": "replied_to", "id": tweet_id} in t.get("referenced_tweets", [])]

    async def x_stats(self) -> dict[str, int]:
        return dict((await self.admin("GET", "/x/stats"))["responses"])

    # -- the database ------------------------------------------------------------------

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.db.connect() as conn:
            return list((await conn.execute(query)).fetchall())

    async def decisions(self, agent_id: str) -> dict[str, str | None]:
        rows = await self.rows(sa.select(mentions.c.tweet_id, mentions.c.decision)
                               .where(mentions.c.agent_id == agent_id))
        return {r[0]: r[1] for r in rows}

    async def action_statuses(self, kind: str | None = None) -> dict[str, str]:
        q = sa.select(actions.c.key, actions.c.status)
        if kind is not None:
            q = q.where(actions.c.kind == kind)
        return {r[0]: r[1] for r in await self.rows(q)}

    async def event_statuses(self) -> dict[str, int]:
        rows = await self.rows(sa.select(events.c.status, sa.func.count()).group_by(events.c.status))
        return {r[0]: r[1] for r in rows}


async def pumped(work: Any, clock: VirtualClock, engine_clock: EngineClock) -> Any:
    """Await ``work``; whenever the engine sleeps on its clock meanwhile, move time to the wake-up."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.005)
        if not task.done() and engine_clock.deadlines:
            clock.set(min(engine_clock.deadlines))
    return task.result()


def settings_for(url: str, **overrides: Any) -> Settings:
    # No history retention job: its hourly sleep on the engine clock would be the earliest deadline
    # whenever the engine is busy, and ``pumped`` would move time to it as if the work waited for it.
    values: dict[str, Any] = {"database_url": url, "embedder": "hashing", "llm_max_retries": 0,
                              "llm_timeout_seconds": 5.0, "log_level": "WARNING", "history_retention_days": 0,
                              **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def rig(tmp_path: Path, *agents: dict[str, Any], loopback: bool = False, seed: int = 3,
              sandbox_extra: dict[str, Any] | None = None, x_timeout: float | None = None,
              openai_key: str = "sk-sandbox", faults: list[dict[str, Any]] | None = None,
              **settings: Any) -> AsyncIterator[Rig]:
    """A started engine with ``agents`` against a sandbox, in process (ASGI) or on a loopback port.

    ``faults`` are armed before the engine starts.

    Loopback is for timeouts: an ASGI transport has none, a socket does. ``x_timeout``
    then sets the engine's HTTP timeout (X and the chain; the LLM SDK uses
    ``llm_timeout_seconds``).
    """
    clock = VirtualClock()
    engine_clock = EngineClock(clock)
    sandbox = Sandbox(SandboxConfig(seed=seed, openai_key=openai_key, extra=dict(sandbox_extra or {})), clock=clock)
    for spec in faults or []:  # armed before the engine starts (a dependency down at start-up)
        sandbox.faults.add(FaultSpec(**spec))
    server = None
    configs = [parse_agent_config(a) for a in agents]
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    if loopback:
        from puppet_engine.serving import BackgroundServer

        server = BackgroundServer(sandbox.app)
        await server.start()
        options = EngineOptions(agents=configs, clock=engine_clock, seed=seed, sandbox_url=server.url)
    else:
        options = EngineOptions(agents=configs, clock=engine_clock, seed=seed, sandbox=sandbox)
    engine = Engine(settings_for(url, **settings), options)
    try:
        await pumped(engine.start(), clock, engine_clock)
        assert engine.wiring.http is not None and engine.wiring.sandbox_url is not None
        if x_timeout is not None:
            engine.wiring.http.timeout = httpx2.Timeout(x_timeout)
        yield Rig(engine, sandbox, clock, engine_clock, engine.wiring.sandbox_url, engine.wiring.http, server)
    finally:
        await engine.stop()
        if server is not None:
            await server.stop()
