"""Engine benchmark: N agents on the fake LLM and the in-process sandbox, then the bare queue.

Two runs per size, each next to a baseline measured in the same process:

- **agents**: N personas with every behaviour (posting, mention polls, interactions, mood)
  on the fake LLM, the hashing embedder and the in-process sandbox, for some virtual
  hours. The virtual clock moves in steps (``--step``, 60 virtual seconds), so what is due
  within a step runs concurrently, as it would on a busy wall clock. Reports startup time,
  events per second, time per event (p50/p99: claim-to-done in the engine, including the
  behaviours, fake LLM and sandbox calls), memory per idle agent.
- **queue**: the event engine alone (claim, handler, commit with a follow-up, a state change
  and an outbox action every fourth event) with handlers that do nothing: the engine's own
  overhead per event, at ``--concurrency`` (throughput) and one event at a time (latency).

``--full`` adds 10,000 agents (for fewer virtual hours: as many events as 1,000 agents make).

Baselines: N bare asyncio tasks (bytes each) and a bare asyncio dispatch loop (no-op
events per second).

    python bench/engine.py [--agents 1000] [--hours 6] [--concurrency 64] [--full] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Collection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import structlog

from puppet_engine.agents.config import parse_agent_config
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.events import (
    Action,
    ActionExecutor,
    ActionOutcome,
    ActionSpec,
    Event,
    EventEngine,
    HandlerResult,
    Outbox,
    queue,
)
from puppet_engine.settings import Settings
from puppet_engine.storage import Database


def persona(i: int) -> dict:
    return {
        "id": f"agent-{i:05d}", "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["tea", "maps", "validators", "rain"]},
        "behavior": {"post_frequency": {"min_hours_between_posts": 3, "max_hours_between_posts": 12},
                     "mention_poll_minutes": 30},
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def percentiles(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    if not timings:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {"p50_ms": 1000 * statistics.median(timings), "p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))]}


async def bare_tasks(n: int) -> dict[str, float]:
    """Baseline: n idle asyncio tasks (memory each) and a bare dispatch loop (no-op events/s)."""
    gc.collect()
    tracemalloc.start()
    gate = asyncio.Event()
    tasks = [asyncio.create_task(gate.wait()) for _ in range(n)]
    await asyncio.sleep(0)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gate.set()
    await asyncio.gather(*tasks)
    queue_: asyncio.Queue[int] = asyncio.Queue()
    count = max(n * 10, 10_000)
    start = time.perf_counter()
    for i in range(count):
        queue_.put_nowait(i)
    while not queue_.empty():
        queue_.get_nowait()
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    return {"bytes_per_task": current / n, "noop_events_per_second": count / elapsed}


def make_engine(n: int, url: str, concurrency: int) -> Engine:
    from puppet_engine.sandbox import Sandbox, SandboxConfig

    clock = VirtualClock()
    settings = Settings(database_url=url, enable_metrics=False, log_level="ERROR", embedder="hashing",
                        engine_concurrency=concurrency, _env_file=None)
    configs = [parse_agent_config(persona(i)) for i in range(n)]
    return Engine(settings, EngineOptions(agents=configs, clock=clock, seed=1,
                                          sandbox=Sandbox(SandboxConfig(), clock=clock)))


async def drive(engine_events: EventEngine, db: Database, clock: VirtualClock, until: float, step: float,
                owned: Collection[str] | None = None) -> None:
    """Run to ``until`` on the virtual clock, a ``step`` at a time, skipping idle stretches."""
    while True:
        await engine_events.run_until_idle()
        nxt = await queue.next_due_at(db, owned)
        if nxt is None or nxt > until:
            break
        clock.set(min(until, max(nxt, clock.now()) + step))


async def agents_run(n: int, hours: float, step: float, concurrency: int, workdir: Path) -> dict[str, float]:
    warm = make_engine(5, f"sqlite:///{workdir / f'warm-{n}.db'}", concurrency)  # imports, caches
    await warm.start()
    await warm.stop()
    gc.collect()
    rss_before = rss_bytes()
    engine = make_engine(n, f"sqlite:///{workdir / f'agents-{n}.db'}", concurrency)
    started = time.perf_counter()
    await engine.start()
    startup = time.perf_counter() - started
    gc.collect()
    per_agent = (rss_bytes() - rss_before) / n
    timings: list[float] = []
    engine.events.observe(lambda _e, _o, seconds: timings.append(seconds))
    clock = engine.clock
    assert isinstance(clock, VirtualClock)
    started = time.perf_counter()
    await drive(engine.events, engine.db, clock, clock.now() + hours * 3600, step, engine.manager.owned())
    elapsed = time.perf_counter() - started
    await engine.stop()
    return {
        "events": len(timings), "events_per_second": len(timings) / elapsed if elapsed else 0.0,
        **{f"event_{k}": v for k, v in percentiles(timings).items()},
        "startup_seconds": startup, "startup_ms_per_agent": 1000 * startup / n,
        "bytes_per_agent": per_agent, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_seconds": elapsed,
    }


class NoopExecutor(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


async def queue_run(n: int, per_agent: int, concurrency: int, workdir: Path) -> dict[str, float]:
    """The event engine alone: chains of no-op events, as posting schedules are."""
    db = Database(f"sqlite:///{Path(tempfile.mkdtemp(dir=workdir)) / 'queue.db'}")
    await db.migrate()
    clock = VirtualClock()
    executor = NoopExecutor()
    outbox = Outbox(db, clock, lambda _a: executor, rng=random.Random(1))
    events = EventEngine(db, clock, outbox, concurrency=concurrency, rng=random.Random(1))
    rng = random.Random(2)

    async def step(event: Event) -> HandlerResult:
        seq = int(event.payload["seq"])
        follow = [] if seq >= per_agent else [Event("tick", event.agent_id, {"seq": seq + 1},
                                                    due_at=clock.now() + rng.uniform(60, 600),
                                                    key=f"tick:{event.agent_id}:{seq + 1}")]
        acts = [ActionSpec(key=f"act:{event.agent_id}:{seq}", agent_id=event.agent_id or "", kind="post")] \
            if seq % 4 == 0 else []
        return HandlerResult(result={"seq": seq}, follow_ups=follow, actions=acts, state={"seq": seq})

    events.register("tick", step)
    from puppet_engine.storage.tables import agents

    async with db.transaction() as conn:
        await conn.execute(agents.insert(), [{"id": f"a{i}", "config": {}, "state": {}, "enabled": True, "version": 1,
                                              "created_at": 0, "updated_at": 0} for i in range(n)])
    await events.schedule_many([Event("tick", f"a{i}", {"seq": 1}, due_at=clock.now() + rng.uniform(0, 600),
                                      key=f"tick:a{i}:1") for i in range(n)])
    timings: list[float] = []
    events.observe(lambda _e, _o, seconds: timings.append(seconds))
    started = time.perf_counter()
    await drive(events, db, clock, clock.now() + 10 * 86400, 60.0)
    elapsed = time.perf_counter() - started
    await db.close()
    return {"events": len(timings), "events_per_second": len(timings) / elapsed if elapsed else 0.0,
            **{f"event_{k}": v for k, v in percentiles(timings).items()}, "wall_seconds": elapsed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=6.0, help="virtual hours of the agents run")
    parser.add_argument("--step", type=float, default=60.0, help="virtual seconds the clock moves at a time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--full", action="store_true", help="also run 10,000 agents")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [args.agents] + ([10_000] if args.full and args.agents != 10_000 else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            base = await bare_tasks(n)
            hours = args.hours * min(1.0, 1000 / n)  # 10,000 agents: as many events as 1,000 make
            run = await agents_run(n, hours, args.step, args.concurrency, Path(tmp))
            bare_queue = await queue_run(n, max(2, 10_000 // n), args.concurrency, Path(tmp))
            one_by_one = await queue_run(min(n, 300), 5, 1, Path(tmp))
            results.append({
                "agents": n, "hours": hours, **run, "queue": bare_queue, "queue_unloaded": one_by_one,
                "baseline": base,
                "ratio_events_per_second_vs_noop": run["events_per_second"] / base["noop_events_per_second"],
                "ratio_queue_events_per_second_vs_noop":
                    bare_queue["events_per_second"] / base["noop_events_per_second"],
                "ratio_memory_per_agent_vs_bare_task": run["bytes_per_agent"] / base["bytes_per_task"],
            })
            if not args.json:
                report(results[-1])
                sys.stdout.flush()
    if args.json:
        print(json.dumps({"benchmark": "engine", "results": results}))


def report(r: dict) -> None:
    q, b = r["queue"], r["baseline"]
    print(f"{r['agents']} agents, {r['hours']:g} virtual hours: {r['events']} events in {r['wall_seconds']:.1f}s")
    print(f"  startup             {r['startup_seconds']:10.1f} s  ({r['startup_ms_per_agent']:.2f} ms per agent)")
    print(f"  events/s            {r['events_per_second']:10.0f}   "
          f"({r['ratio_events_per_second_vs_noop']:.4f}x bare no-op dispatch {b['noop_events_per_second']:.0f}/s)")
    print(f"  per event p50 / p99 {r['event_p50_ms']:8.2f} ms / {r['event_p99_ms']:.2f} ms")
    print(f"  memory per agent    {r['bytes_per_agent'] / 1024:10.1f} KiB "
          f"({r['ratio_memory_per_agent_vs_bare_task']:.1f}x a bare task of {b['bytes_per_task']:.0f} B)")
    print(f"  max RSS             {r['max_rss_mb']:10.0f} MiB")
    print(f"  queue alone         {q['events_per_second']:10.0f} events/s "
          f"({r['ratio_queue_events_per_second_vs_noop']:.4f}x no-op), "
          f"p50 / p99 {q['event_p50_ms']:.2f} / {q['event_p99_ms']:.2f} ms ({q['events']} events)")
    u = r["queue_unloaded"]
    print(f"  queue, one at a time {u['event_p50_ms']:7.2f} ms p50 / {u['event_p99_ms']:.2f} ms p99 per event "
          f"({u['events_per_second']:.0f} events/s)")


if __name__ == "__main__":
    asyncio.run(main())
