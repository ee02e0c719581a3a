"""``puppet-engine simulate``: the real engine on a virtual clock, as fast as the machine allows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos import outbox, trades
from puppet_engine.storage.skips import skip_totals
from puppet_engine.wiring import build_sandbox

HOUR = 3600.0


@dataclass
class SimulationReport:
    """Per agent: the counts (``posts``, ``replies``, ``trades``, ``quotes``, ``likes``, ``events``,
    ``failed_events``), then why some did not happen: ``mentions`` (mentions decided),
    ``posts_skipped`` / ``replies_skipped`` with ``post_skip_reasons`` / ``reply_skip_reasons``
    (``[{"reason", "count", "example"}]``, most common first) and ``start_error`` (why the agent
    never started, else ``None``)."""

    virtual_hours: float
    agents: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"agents": self.agents, "virtual_hours": self.virtual_hours}


async def simulate(settings: Settings, options: EngineOptions, hours: float,
                   progress: Callable[[float], None] | None = None, crowd_rate: float = 0.0) -> SimulationReport:
    """Run ``hours`` of virtual time; ``progress(fraction)`` is called as time advances."""
    clock = options.clock if isinstance(options.clock, VirtualClock) else VirtualClock()
    options.clock = clock
    if options.sandbox is None and options.sandbox_url is None:
        options.sandbox = build_sandbox(seed=options.seed or 7, crowd_rate=crowd_rate, clock=clock)
    settings = settings.model_copy(update={"watch_agents": False})  # virtual hours: the files are read once
    engine = Engine(settings, options)
    start = clock.now()
    end = start + hours * HOUR
    await engine.start()
    try:
        await engine.run_until(end, (lambda now: progress((now - start) / (end - start))) if progress else None)
        if progress:
            progress(1.0)
        report = await summarize(engine.db, list(engine.manager.agents), hours)
        for agent_id, counts in report.agents.items():
            error = engine.manager.start_errors.get(agent_id)
            if error is None and agent_id not in engine.manager.running:
                error = "not running at the end of the simulation"
            counts["start_error"] = error
    finally:
        await engine.stop()
    return report


async def summarize(db: Database, agent_ids: list[str], hours: float) -> SimulationReport:
    per: dict[str, dict[str, Any]] = {
        a: {"posts": 0, "replies": 0, "trades": 0, "events": 0, "failed_events": 0, "quotes": 0, "likes": 0}
        for a in agent_ids
    }
    for agent_id, kind, n in await outbox.done_counts(db):
        if agent_id not in per:
            continue
        if kind in ("post", "thread"):
            per[agent_id]["posts"] += n
        elif kind == "reply":
            per[agent_id]["replies"] += n
        elif kind in ("quote", "like"):
            per[agent_id][f"{kind}s"] += n
    for event_agent, status, n in await event_rows.finished_counts(db):
        if event_agent in per:
            per[event_agent]["events"] += n
            if status == "failed":
                per[event_agent]["failed_events"] += n
    for agent_id, n in (await trades.confirmed_counts(db)).items():
        if agent_id in per:
            per[agent_id]["trades"] += n
    async with db.connect() as conn:
        skips = await skip_totals(conn, list(per))
    for agent_id, totals in skips.items():
        per[agent_id].update(
            mentions=totals.replies.total, posts_skipped=totals.posts.skipped,
            post_skip_reasons=totals.posts.top(), replies_skipped=totals.replies.skipped,
            reply_skip_reasons=totals.replies.top(), start_error=None)
    return SimulationReport(virtual_hours=hours, agents=per)
