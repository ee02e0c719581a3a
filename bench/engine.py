"""Engine benchmark: N agents on the fake LLM and the in-process sandbox, and the bare queue.

For each size (``--agents``, plus 10,000 with ``--full``), in a fresh process of its own
so that memory figures are that size's, next to baselines measured in that process:

- **agents**: N personas with every behaviour (posting, mention polls, interactions,
  mood) on the fake LLM, the hashing embedder and the in-process sandbox, for
  ``--hours`` virtual hours (24). The virtual clock moves ``--step`` seconds at a time,
  so what falls due within a step runs concurrently (``--concurrency`` in flight), as
  on a busy wall clock. Reports start-up, events per second, time per event and the
  engine's **overhead** per event: its time outside calls to X and the LLM (prompts,
  validation, memory, the database, the outbox), p50/p99, memory per idle agent and
  peak RSS.
- **agents, one at a time**: the same personas (up to 300) with one event in flight,
  so an event's time is its own: the engine's overhead per event without queueing.
- **engine alone** (the queue): the event engine without agents or sandbox (claim, a
  handler doing nothing, commit with a follow-up, a state change and an outbox action
  every fourth event), always in a process of its own (``--full`` starts one per size, as
  ``--queue-only`` does): with each owned-agents filter (``running`` is what one
  ``puppet-engine run`` does: the row), on aiosqlite's threads (baseline), and one event at
  a time. Collector pauses (full collections, the longest) are reported with it.

Baselines: N bare asyncio tasks (bytes each) and a bare asyncio dispatch loop (no-op
events per second). ``--profile`` adds where the time of the agents run goes (cProfile,
by package).

    python bench/engine.py [--agents 1000] [--hours 24] [--concurrency 64] [--full] [--profile] [--json]
    python bench/engine.py --queue-only --agents 10000 [--postgres]   # the engine alone (a few minutes)
    python bench/engine.py --one-at-a-time --agents 1000              # overhead per event, p50 / p99
    python bench/engine.py --startup-only --agents 10000 [--sandbox-process] [--profile]   # start-up alone
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import json
import logging
import pstats
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Collection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx2
import structlog

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
)
from puppet_engine.events.engine import release_heap, settle_heap
from puppet_engine.observability import upstream
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import KEEP_ALIVE_SECONDS, run_main
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.leases import LeaseManager
from puppet_engine.storage.repos import events as event_rows

UNLOADED_AGENTS = 300


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


def percentiles(timings: list[float], prefix: str = "") -> dict[str, float]:
    timings = sorted(timings)
    if not timings:
        return {f"{prefix}p50_ms": 0.0, f"{prefix}p99_ms": 0.0}
    return {f"{prefix}p50_ms": 1000 * statistics.median(timings),
            f"{prefix}p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))]}


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


def make_engine(n: int, url: str, concurrency: int, sandbox_url: str | None = None) -> Engine:
    """``n`` personas on the fake LLM; X, Solana and Jupiter in the in-process sandbox, or the
    sandbox at ``sandbox_url`` (another process, see :class:`SandboxProcess`)."""
    clock = VirtualClock()
    settings = Settings(database_url=url, enable_metrics=False, log_level="ERROR", embedder="hashing",
                        engine_concurrency=concurrency, _env_file=None)
    configs = [parse_agent_config(persona(i)) for i in range(n)]
    if sandbox_url is not None:
        return Engine(settings, EngineOptions(agents=configs, clock=clock, seed=1, sandbox_url=sandbox_url))
    return Engine(settings, EngineOptions(agents=configs, clock=clock, seed=1,
                                          sandbox=Sandbox(SandboxConfig(), clock=clock)))


def serve_sandbox(port: int) -> None:
    """The sandbox on its own virtual clock, which ``POST /bench/clock {"now": t}`` moves."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    clock = VirtualClock()
    box = Sandbox(SandboxConfig(), clock=clock)

    async def set_clock(request: Request) -> JSONResponse:
        clock.set(float((await request.json())["now"]))
        return JSONResponse({"now": clock.now()})

    app = Starlette(routes=[Route("/bench/clock", set_clock, methods=["POST"]), Mount("/", app=box.app)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", timeout_keep_alive=KEEP_ALIVE_SECONDS)


class SandboxProcess:
    """The sandbox served by a process of its own, so this process's CPU time is the engine's."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-sandbox", str(port)],
                                     stdout=subprocess.DEVNULL)
        self.http = httpx2.AsyncClient(timeout=30)

    async def ready(self) -> None:
        for _ in range(600):
            try:
                if (await self.http.get(f"{self.url}/sandbox/health")).status_code < 500:
                    return
            except httpx2.TransportError:
                await asyncio.sleep(0.05)
        raise RuntimeError("the sandbox process did not answer")

    async def set_clock(self, now: float) -> None:
        (await self.http.post(f"{self.url}/bench/clock", json={"now": now})).raise_for_status()

    async def close(self) -> None:
        await self.http.aclose()
        self.proc.terminate()
        self.proc.wait(10)


class GcPauses:
    """Collector pauses while measuring (``with GcPauses() as gc_pauses``): how many full
    (oldest generation) collections ran, and the longest and total pause of any."""

    def __init__(self) -> None:
        self.full, self.longest, self.total, self._started = 0, 0.0, 0.0, 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.longest, self.total = max(self.longest, pause), self.total + pause
        self.full += info["generation"] == 2

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float]:
        return {"gc_full": self.full, "gc_longest_ms": 1000 * self.longest, "gc_total_ms": 1000 * self.total}


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(engine_events: EventEngine, db: Database, clock: VirtualClock, until: float, step: float,
                owned: Collection[str] | None = None, sandbox: SandboxProcess | None = None) -> None:
    """Run to ``until`` on the virtual clock, a ``step`` at a time, skipping idle stretches
    (moving an out-of-process sandbox's clock along)."""
    while True:
        await engine_events.run_until_idle()
        nxt = await event_rows.next_due_at(db, owned)
        if nxt is None or nxt > until:
            break
        clock.set(min(until, max(nxt, clock.now()) + step))
        if sandbox is not None:
            await sandbox.set_clock(clock.now())


async def agents_run(n: int, hours: float, step: float, concurrency: int, workdir: Path,
                     profile: bool = False, sandbox_process: bool = False) -> dict[str, Any]:
    warm = make_engine(5, f"sqlite:///{workdir / f'warm-{n}-{concurrency}.db'}", concurrency)  # imports, caches
    await warm.start()
    await warm.stop()
    gc.collect()
    rss_before = rss_bytes()
    sandbox = SandboxProcess() if sandbox_process else None
    if sandbox is not None:
        await sandbox.ready()
    engine = make_engine(n, f"sqlite:///{workdir / f'agents-{n}-{concurrency}.db'}", concurrency,
                         sandbox.url if sandbox is not None else None)
    started = time.perf_counter()
    startup_cpu = cpu_seconds()
    await engine.start()
    startup = time.perf_counter() - started
    startup_cpu = cpu_seconds() - startup_cpu
    gc.collect()
    per_agent = (rss_bytes() - rss_before) / n
    timings: list[float] = []
    waited: list[float] = []

    kinds: list[str] = []

    def observe(event: Event, _outcome: str, seconds: float) -> None:
        spent = upstream.spent()
        timings.append(seconds)
        waited.append(spent.seconds if spent is not None else 0.0)
        kinds.append(event.type)

    engine.events.observe(observe)
    clock = engine.clock
    assert isinstance(clock, VirtualClock)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    settle_heap()  # as EventEngine.run does once start-up is over
    with GcPauses() as pauses:
        started = time.perf_counter()
        cpu = cpu_seconds()
        await drive(engine.events, engine.db, clock, clock.now() + hours * 3600, step, engine.manager.owned(),
                    sandbox)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
    if profiler is not None:
        profiler.disable()
    await engine.stop()
    release_heap()
    if sandbox is not None:
        await sandbox.close()
    result: dict[str, Any] = {
        "events": len(timings), "events_per_second": len(timings) / elapsed if elapsed else 0.0,
        **percentiles(timings, "event_"),
        **percentiles([t - w for t, w in zip(timings, waited, strict=True)], "overhead_"),
        "upstream_share": sum(waited) / sum(timings) if timings else 0.0,
        "startup_seconds": startup, "startup_ms_per_agent": 1000 * startup / n, "startup_cpu_seconds": startup_cpu,
        "sandbox": "process" if sandbox_process else "in-process",
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "cpu_ms_per_event": 1000 * cpu / len(timings) if timings else 0.0,
        "engine_events_per_cpu_second": len(timings) / cpu if cpu else 0.0,
        "bytes_per_agent": per_agent, "wall_seconds": elapsed, **pauses.summary(),
        "overhead_by_type": by_type(kinds, [t - w for t, w in zip(timings, waited, strict=True)]),
    }
    if profiler is not None:
        result["profile"] = where_time_goes(profiler)
    return result


def by_type(kinds: list[str], overheads: list[float]) -> dict[str, dict[str, float]]:
    """Overhead p50 / p99 per event type, with each type's count (what a p99 is made of)."""
    grouped: dict[str, list[float]] = collections.defaultdict(list)
    for kind, overhead in zip(kinds, overheads, strict=True):
        grouped[kind].append(overhead)
    return {kind: {"events": len(values), **percentiles(values)} for kind, values in sorted(grouped.items())}


def where_time_goes(profiler: cProfile.Profile, top: int = 14) -> list[tuple[str, float]]:
    """Own (exclusive) time by package, as shares of the profiled run."""
    groups: collections.Counter[str] = collections.Counter()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (file, _line, name), (_cc, _nc, own, _cum, _callers) in stats.items():
        if "site-packages/" in file:
            key = file.split("site-packages/")[1].split("/")[0]
        elif "puppet_engine/" in file:
            key = "puppet_engine/" + "/".join(file.split("puppet_engine/")[1].split("/")[:2]).removesuffix(".py")
        elif file.startswith("~"):
            key = "C: " + (name.split("'")[1] if "'" in name else name)
        else:
            key = "python: " + Path(file).parent.name + "/" + Path(file).stem
        groups[key] += own
    total = sum(groups.values()) or 1.0
    return [(key, seconds / total) for key, seconds in groups.most_common(top)]


class NoopExecutor(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


async def queue_run(n: int, per_agent: int, concurrency: int, workdir: Path, *, inline: bool = True,
                    owned_filter: str = "running", url: str | None = None) -> dict[str, float]:
    """The event engine alone: chains of no-op events, as posting schedules are.

    ``owned_filter``: which agents the claims are limited to, as in ``puppet-engine run``:
    ``running`` (one process: its running agents), ``leases`` (several processes: the
    agents it holds a lease on, renewed every ``ttl / 3`` seconds under the claim lock as
    the engine does), or ``none`` (no filter at all: the baseline of what the filter costs).
    """
    db = Database(url or f"sqlite:///{Path(tempfile.mkdtemp(dir=workdir)) / 'queue.db'}", inline=inline)
    await db.migrate()
    clock = VirtualClock()
    executor = NoopExecutor()
    outbox = Outbox(db, clock, lambda _a: executor, rng=random.Random(1))
    running = frozenset(f"a{i}" for i in range(n))  # as the manager hands it out: one object until it changes
    leases = LeaseManager(db, clock, "bench") if owned_filter == "leases" else None
    owned: frozenset[str] | None = None if owned_filter == "none" else running

    def owned_agents() -> frozenset[str] | None:
        return owned

    events = EventEngine(db, clock, outbox, concurrency=concurrency, rng=random.Random(1),
                         owned_agents=owned_agents)
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
    if leases is not None:  # the first round takes every agent (one process): before the clock starts
        await leases.balance(running)
        owned = frozenset(leases.owned)
    await events.schedule_many([Event("tick", f"a{i}", {"seq": 1}, due_at=clock.now() + rng.uniform(0, 600),
                                      key=f"tick:a{i}:1") for i in range(n)])
    timings: list[float] = []
    events.observe(lambda _e, _o, seconds: timings.append(seconds))

    async def renew() -> None:  # Engine.rebalance: under the claim lock, every ttl / 3 (real) seconds
        nonlocal owned
        assert leases is not None
        while True:
            await asyncio.sleep(leases.ttl / 3)
            async with events.claim_lock:
                await leases.balance(running, events.busy_agents())
                if owned != leases.owned:
                    owned = frozenset(leases.owned)

    renewing = asyncio.create_task(renew()) if leases is not None else None
    settle_heap()  # as EventEngine.run does once start-up is over
    with GcPauses() as pauses:
        started, cpu = time.perf_counter(), cpu_seconds()
        await drive(events, db, clock, clock.now() + 10 * 86400, 60.0, None if owned is None else running)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    release_heap()
    if renewing is not None:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
    await db.close()
    return {"events": len(timings), "events_per_second": len(timings) / elapsed if elapsed else 0.0,
            "events_per_cpu_second": len(timings) / cpu if cpu else 0.0,
            **percentiles(timings, "event_"), "wall_seconds": elapsed, **pauses.summary()}


async def startup_run(n: int, concurrency: int, workdir: Path, profile: bool = False,
                      sandbox_process: bool = False) -> dict[str, Any]:
    """Start ``n`` agents (accounts, memories, schedules) and stop: wall and CPU seconds, and where
    the time goes with ``profile``. With ``sandbox_process`` the CPU seconds are the engine's alone."""
    sandbox = SandboxProcess() if sandbox_process else None
    try:
        if sandbox is not None:
            await sandbox.ready()
        url = sandbox.url if sandbox is not None else None
        warm = make_engine(5, f"sqlite:///{workdir / 'warm.db'}", concurrency, url)
        await warm.start()
        await warm.stop()
        engine = make_engine(n, f"sqlite:///{workdir / 'startup.db'}", concurrency, url)
        profiler = cProfile.Profile() if profile else None
        cpu, started = cpu_seconds(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await engine.start()
        if profiler is not None:
            profiler.disable()
        result: dict[str, Any] = {"startup_seconds": time.perf_counter() - started,
                                  "startup_cpu_seconds": cpu_seconds() - cpu,
                                  "sandbox": "process" if sandbox_process else "in-process"}
        scheduled = await event_rows.pending_types(engine.db, list(engine.manager.agents))
        result["agents_scheduled"] = sum(1 for types in scheduled.values() if types)
        await engine.stop()
    finally:
        if sandbox is not None:
            await sandbox.close()
    if profiler is not None:
        result["profile"] = where_time_goes(profiler)
    return result


FILTERS = ("none", "running", "leases")


async def queue_filters(n: int, concurrency: int, workdir: Path, postgres: bool = False,
                        rounds: int = 3) -> dict[str, Any]:
    """The queue with each owned-agents filter, in one process: running agents (one process),
    leases (several), none (the baseline: what the filter costs is the difference). With
    ``postgres``, on a PostgreSQL started by ``pgserver`` (a fresh database each)."""
    per_agent = max(2, 10_000 // n)
    server = pgserver_in(workdir) if postgres else None
    try:  # rounds in turn, the best of each kept: a busy machine slows a round, never speeds one up
        found: dict[str, Any] = {}
        for number, name in enumerate(FILTERS * rounds):
            url = None
            if server is not None:
                server.psql(f"CREATE DATABASE queue_{number};")
                url = str(server.get_uri(f"queue_{number}"))
            got = await queue_run(n, per_agent, concurrency, workdir, owned_filter=name, url=url)
            if name not in found or got["events_per_second"] > found[name]["events_per_second"]:
                found[name] = {**got, "events_per_cpu_second": max(got["events_per_cpu_second"],
                                                                   found.get(name, got)["events_per_cpu_second"])}
        return found
    finally:
        if server is not None:
            server.cleanup()


def pgserver_in(workdir: Path) -> Any:
    """A PostgreSQL of its own (the ``pgserver`` package of the dev extra)."""
    import pgserver

    return pgserver.get_server(workdir / "pg", cleanup_mode="stop")


async def engine_alone(n: int, concurrency: int, workdir: Path, postgres: bool = False) -> dict[str, Any]:
    """The event engine alone at ``n`` agents (no behaviours, no sandbox), as ``--queue-only``
    and ``--full`` both report it: the queue with each owned-agents filter (the ``running`` one
    is what ``puppet-engine run`` does in one process), and on SQLite also the same on
    aiosqlite's threads and one event at a time, beside a bare asyncio dispatch loop."""
    found: dict[str, Any] = {"queue_filters": await queue_filters(n, concurrency, workdir, postgres)}
    if not postgres:
        found["queue_aiosqlite"] = await queue_run(n, max(2, 10_000 // n), concurrency, workdir, inline=False)
        found["queue_unloaded"] = await queue_run(min(n, UNLOADED_AGENTS), 5, 1, workdir)
        found["noop_events_per_second"] = (await bare_tasks(min(n, 1000)))["noop_events_per_second"]
    return found


async def one_at_a_time(n: int, hours: float, step: float, workdir: Path) -> dict[str, Any]:
    """Every behaviour with one event in flight (up to 300 agents): the engine's overhead per event."""
    run = await agents_run(min(n, UNLOADED_AGENTS), min(hours, 6.0), step, 1, workdir)
    return {k: run[k] for k in ("events", "events_per_second", "event_p50_ms", "event_p99_ms", "overhead_p50_ms",
                                "overhead_p99_ms", "upstream_share", "gc_full", "gc_longest_ms", "gc_total_ms",
                                "overhead_by_type")}


async def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one size, in this process (the engine alone runs in a process of its own:
    see :func:`main`)."""
    if args.startup_only:
        with tempfile.TemporaryDirectory() as tmp:
            return {"agents": n, **await startup_run(n, args.concurrency, Path(tmp), args.profile,
                                                     args.sandbox_process)}
    if args.queue_only:
        with tempfile.TemporaryDirectory() as tmp:
            return {"agents": n, "database": "postgresql" if args.postgres else "sqlite",
                    **await engine_alone(n, args.concurrency, Path(tmp), args.postgres)}
    if args.one_at_a_time:
        with tempfile.TemporaryDirectory() as tmp:
            return {"agents": n, "unloaded": await one_at_a_time(n, args.hours, args.step, Path(tmp))}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = await bare_tasks(n)
        run = await agents_run(n, args.hours, args.step, args.concurrency, work, profile=args.profile,
                               sandbox_process=args.sandbox_process)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        unloaded = await one_at_a_time(n, args.hours, args.step, work)
    return {
        "agents": n, "hours": args.hours, "concurrency": args.concurrency, **run, "peak_rss_bytes": peak_rss,
        "unloaded": unloaded, "baseline": base,
        "ratio_events_per_second_vs_noop": run["events_per_second"] / base["noop_events_per_second"],
        "ratio_memory_per_agent_vs_bare_task": run["bytes_per_agent"] / base["bytes_per_task"],
    }


def report_filters(r: dict[str, Any]) -> None:
    f = r["queue_filters"]
    base, base_cpu = f["none"]["events_per_second"], f["none"]["events_per_cpu_second"]
    print(f"  queue by owned-agents filter ({r['agents']} agents, {r.get('database', 'sqlite')}, same process, "
          "best of 3 rounds in turn):")
    for name in FILTERS:
        q = f[name]
        print(f"    {name:8} {q['events_per_second']:7.0f} events/s ({q['events_per_second'] / base:.2f}x none), "
              f"{q['events_per_cpu_second']:7.0f} events per CPU second ({q['events_per_cpu_second'] / base_cpu:.2f}x)"
              f", p50 / p99 {q['event_p50_ms']:.2f} / {q['event_p99_ms']:.2f} ms, longest collector pause "
              f"{q['gc_longest_ms']:.1f} ms")


def report_engine_alone(r: dict[str, Any]) -> None:
    """The engine alone: the ``running`` filter is the row (one process running its agents)."""
    q = r["queue_filters"]["running"]
    if "queue_aiosqlite" in r:
        qa, one = r["queue_aiosqlite"], r["queue_unloaded"]
        print(f"  engine alone         {q['events_per_second']:9.0f} events/s, {q['events_per_cpu_second']:.0f} per CPU "
              f"second ({q['events_per_second'] / r['noop_events_per_second']:.4f}x no-op dispatch "
              f"{r['noop_events_per_second']:.0f}/s; {q['events_per_second'] / qa['events_per_second']:.1f}x the same on "
              f"aiosqlite threads, {qa['events_per_second']:.0f}/s), p50 / p99 {q['event_p50_ms']:.2f} / "
              f"{q['event_p99_ms']:.2f} ms")
        print(f"  engine alone, one at a time {one['event_p50_ms']:.2f} / {one['event_p99_ms']:.2f} ms p50 / p99 per "
              f"event ({one['events_per_second']:.0f} events/s; longest collector pause {one['gc_longest_ms']:.1f} ms)")
    report_filters(r)


def report_unloaded(u: dict[str, Any]) -> None:
    print(f"  one at a time        overhead p50 / p99 {u['overhead_p50_ms']:.2f} / {u['overhead_p99_ms']:.2f} ms "
          f"(the engine's own work per event; whole event {u['event_p50_ms']:.2f} / {u['event_p99_ms']:.2f} ms, "
          f"{100 * u['upstream_share']:.0f}% upstream; {u['events']} events, {u['gc_full']} full collections, "
          f"longest collector pause {u['gc_longest_ms']:.1f} ms)")
    print("    by type, overhead p50 / p99: " + "; ".join(
        f"{kind} {t['p50_ms']:.2f} / {t['p99_ms']:.2f} ms ({t['events']})" for kind, t in u["overhead_by_type"].items()))


def report(r: dict[str, Any]) -> None:
    if "startup_seconds" in r and "events" not in r:
        print(f"{r['agents']} agents: start-up {r['startup_seconds']:.1f} s wall, {r['startup_cpu_seconds']:.1f} s CPU "
              f"({1000 * r['startup_seconds'] / r['agents']:.2f} ms per agent; {r['agents_scheduled']} with schedules; "
              f"sandbox {r.get('sandbox', 'in-process')}: "
              f"{'the engine process alone' if r.get('sandbox') == 'process' else 'its CPU counted'})")
        for name, share in r.get("profile", []):
            print(f"    {100 * share:5.1f}%  {name}")
        return
    if "events" not in r:
        if "unloaded" in r:
            print(f"{r['agents']} agents, every behaviour:")
            report_unloaded(r["unloaded"])
        if "queue_filters" in r:
            print(f"{r['agents']} agents, the event engine alone (a process of its own):")
            report_engine_alone(r)
        return
    b = r["baseline"]
    print(f"{r['agents']} agents, {r['hours']:g} virtual hours, {r['concurrency']} in flight: "
          f"{r['events']} events in {r['wall_seconds']:.1f}s")
    print(f"  startup              {r['startup_seconds']:9.1f} s  ({r['startup_ms_per_agent']:.2f} ms per agent)")
    print(f"  events/s             {r['events_per_second']:9.0f}    "
          f"({r['ratio_events_per_second_vs_noop']:.4f}x bare no-op dispatch {b['noop_events_per_second']:.0f}/s)")
    print(f"  per event p50 / p99  {r['event_p50_ms']:9.2f} / {r['event_p99_ms']:.2f} ms (claimed to done, queueing "
          f"included); overhead {r['overhead_p50_ms']:.2f} / {r['overhead_p99_ms']:.2f} ms; "
          f"{100 * r['upstream_share']:.0f}% waiting on X and the LLM")
    report_unloaded(r["unloaded"])
    print(f"  engine CPU           {r['cpu_ms_per_event']:9.2f} ms per event ({r['engine_events_per_cpu_second']:.0f} "
          f"events per CPU second; sandbox {r['sandbox']}{', its CPU not counted' if r['sandbox'] == 'process' else ''}; "
          f"{r.get('loop', 'asyncio')} loop)")
    print(f"  memory per agent     {r['bytes_per_agent'] / 1024:9.1f} KiB "
          f"({r['ratio_memory_per_agent_vs_bare_task']:.1f}x a bare task of {b['bytes_per_task']:.0f} B); "
          f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB")
    if "queue_filters" in r:
        report_engine_alone(r)
    for name, share in r.get("profile", []):
        print(f"    {100 * share:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours of the agents run")
    parser.add_argument("--step", type=float, default=60.0, help="virtual seconds the clock moves at a time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--full", action="store_true", help="also run 10,000 agents (about 40 minutes)")
    parser.add_argument("--profile", action="store_true", help="where the agents run's time goes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--queue-only", action="store_true",
                        help="only the queue with each owned-agents filter (none, running, leases)")
    parser.add_argument("--postgres", action="store_true", help="with --queue-only: on PostgreSQL (pgserver)")
    parser.add_argument("--sandbox-process", action="store_true",
                        help="serve the sandbox from a process of its own: CPU per event is the engine's alone")
    parser.add_argument("--startup-only", action="store_true", help="only start the agents (and --profile it)")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="only every behaviour with one event in flight (up to 300 agents): overhead p50/p99")
    parser.add_argument("--serve-sandbox", type=int, help=argparse.SUPPRESS)  # the sandbox process, on this port
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one size, in a process of its own
    args, _ = parser.parse_known_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox)
        return
    if args.child is not None:
        # With the sandbox apart, the engine runs as `puppet-engine run` does: on uvloop where installed.
        run = run_main if args.sandbox_process else asyncio.run
        print(json.dumps(run(measure(args.child, args))))
        return
    sizes = [args.agents] + ([10_000] if args.full and args.agents != 10_000 else [])
    results = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--hours", str(args.hours), "--step", str(args.step),
               "--concurrency", str(args.concurrency), *(["--profile"] if args.profile else []),
               *(["--queue-only"] if args.queue_only else []), *(["--postgres"] if args.postgres else []),
               *(["--sandbox-process"] if args.sandbox_process else []),
               *(["--startup-only"] if args.startup_only else []),
               *(["--one-at-a-time"] if args.one_at_a_time else [])]
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if not (args.queue_only or args.startup_only or args.one_at_a_time):
            # The engine alone in a process of its own, exactly as --queue-only measures it: not
            # after the agents run, whose heap and leftovers would be measured with it.
            alone = subprocess.run([*cmd[:4], "--concurrency", str(args.concurrency), "--queue-only"], check=True,
                                   stdout=subprocess.PIPE, text=True)
            results[-1].update({k: v for k, v in json.loads(alone.stdout.strip().splitlines()[-1]).items()
                                if k != "agents"})
        if not args.json:
            report(results[-1])
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"benchmark": "engine", "results": results}))


if __name__ == "__main__":
    main()
