"""Engine benchmark: N agents on the fake LLM and the in-process sandbox, 24 virtual hours.

Prints events per second, engine overhead per event (p50/p99: everything the engine
does per event — claim, handler, commit, outbox — the fake LLM and dry sandbox calls
cost next to nothing), peak memory and memory per agent, each next to a baseline
measured in the same process: N bare asyncio tasks (memory per task) and a bare
asyncio dispatch loop (no-op events per second).

    python bench/engine.py [--agents 1000] [--hours 24] [--full] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from puppet_engine.agents.config import parse_agent_config  # noqa: E402
from puppet_engine.clock import VirtualClock  # noqa: E402
from puppet_engine.engine import Engine, EngineOptions  # noqa: E402
from puppet_engine.events import queue  # noqa: E402
from puppet_engine.settings import Settings  # noqa: E402


def persona(i: int) -> dict:
    return {
        "id": f"agent-{i:05d}", "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["tea", "maps", "validators", "rain"]},
        "behavior": {"post_frequency": {"min_hours_between_posts": 3, "max_hours_between_posts": 12},
                     "mention_poll_minutes": 30},
    }


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
    count = n * 10
    start = time.perf_counter()
    for i in range(count):
        queue_.put_nowait(i)
    while not queue_.empty():
        queue_.get_nowait()
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    return {"bytes_per_task": current / n, "noop_events_per_second": count / elapsed}


async def engine_run(n: int, hours: float, workdir: Path) -> dict[str, float]:
    from puppet_engine.sandbox import Sandbox, SandboxConfig

    clock = VirtualClock()
    settings = Settings(database_url=f"sqlite:///{workdir / f'bench-{n}.db'}", enable_metrics=False,
                        log_level="ERROR", engine_concurrency=64, _env_file=None)  # type: ignore[call-arg]
    configs = [parse_agent_config(persona(i)) for i in range(n)]
    gc.collect()
    tracemalloc.start()
    engine = Engine(settings, EngineOptions(agents=configs, clock=clock, seed=1,
                                            sandbox=Sandbox(SandboxConfig(), clock=clock)))
    await engine.start()
    per_agent = tracemalloc.get_traced_memory()[0] / n
    timings: list[float] = []
    engine.events.observe(lambda _e, _o, seconds: timings.append(seconds))
    end = clock.now() + hours * 3600
    started = time.perf_counter()
    while True:
        await engine.events.run_until_idle()
        nxt = await queue.next_due_at(engine.db, engine.manager.owned())
        if nxt is None or nxt > end:
            break
        clock.set(max(nxt, clock.now()))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await engine.stop()
    timings.sort()
    return {
        "events": len(timings),
        "events_per_second": len(timings) / elapsed if elapsed else 0.0,
        "overhead_p50_ms": 1000 * statistics.median(timings) if timings else 0.0,
        "overhead_p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))] if timings else 0.0,
        "bytes_per_agent": per_agent,
        "peak_traced_mb": peak / 2**20,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_seconds": elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--full", action="store_true", help="also run 10,000 agents")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [args.agents] + ([10_000] if args.full and args.agents != 10_000 else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            base = await bare_tasks(n)
            run = await engine_run(n, args.hours, Path(tmp))
            results.append({
                "agents": n, "hours": args.hours, **run, "baseline": base,
                "ratio_events_per_second_vs_noop": run["events_per_second"] / base["noop_events_per_second"],
                "ratio_memory_per_agent_vs_bare_task": run["bytes_per_agent"] / base["bytes_per_task"],
            })
    if args.json:
        print(json.dumps({"benchmark": "engine", "results": results}))
        return
    for r in results:
        print(f"{r['agents']} agents, {r['hours']:g} virtual hours: {r['events']} events in {r['wall_seconds']:.1f}s")
        print(f"  events/s            {r['events_per_second']:10.0f}   ({r['ratio_events_per_second_vs_noop']:.4f}x bare no-op dispatch {r['baseline']['noop_events_per_second']:.0f}/s)")
        print(f"  overhead p50 / p99  {r['overhead_p50_ms']:8.2f} ms / {r['overhead_p99_ms']:.2f} ms")
        print(f"  memory per agent    {r['bytes_per_agent'] / 1024:10.1f} KiB ({r['ratio_memory_per_agent_vs_bare_task']:.1f}x a bare task of {r['baseline']['bytes_per_task']:.0f} B)")
        print(f"  peak traced memory  {r['peak_traced_mb']:10.1f} MiB, max RSS {r['max_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
