"""API throughput: ``GET /agents`` against a bare Starlette endpoint running the same SQL with ``sqlite3``.

For each size (``--agents``: ``3`` is the example agents alone, a larger number adds generated
personas on the fake LLM up to it), in a process of its own: the engine (in-process sandbox,
temporary SQLite, a virtual clock) runs ``--hours`` virtual hours so that the agents have posts,
skipped posts and schedules, then stands still while its API is served by uvicorn on a loopback
port, in the engine's event loop as in ``puppet-engine run``.

The baseline is a bare Starlette app served the same way (uvicorn, same loop, same client), whose
endpoint runs the statements the engine's route runs (:data:`OVERVIEW_SQL`, :data:`SKIPS_SQL`, as
captured from SQLAlchemy: the bench prints the route's statements) with the standard ``sqlite3``
module on the same database file, reads the live status from the engine in memory, and returns
the same JSON (checked equal before timing). It has no authentication, validation or middleware:
the ratio is what the API costs on top of the query.

One httpx2 client with ``--concurrency`` workers sends ``--requests`` requests per round to each
server, alternating which goes first, ``--rounds`` rounds; requests/s is the median round, p50/p99
are over every request of every round. Requests per CPU second of the process (client, both
servers and the idle engine share it) are printed too: on a shared machine they move less than
wall time. ``/health`` is compared with a bare endpoint returning a
constant. Last, the ``asgi`` line: the CPU time per request of each app called directly as an ASGI
app in this process (no socket, no client, the least of several rounds), the steadiest measure of
what the API's own code costs on top of the bare endpoint.

    python bench/api.py [--agents 3,100,1000] [--limit 500] [--requests 200] [--rounds 3]
                        [--concurrency 16] [--hours 6] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import cProfile
import json
import os
import pstats
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LOG_LEVEL", "ERROR")
KEY = "bench-admin-key-0123456789"

# What GET /agents runs on SQLite (one process, no leases), as SQLAlchemy renders it: the page's
# overview (state, posts sent, next post due, definition error) and the finished scheduled posts
# among each agent's last ten (by their keys ``post:<agent>:<seq>``) for the skipped-posts warning.
OVERVIEW_SQL = (
    "SELECT agents.id, agents.state, (SELECT count(*) AS count_1 FROM actions "
    "WHERE actions.agent_id = agents.id AND actions.kind IN (?, ?) AND (actions.status || '') = ?) AS posts, "
    "(SELECT min(events.due_at + 0) AS min_1 FROM events "
    "WHERE events.agent_id = agents.id AND (events.type || '') = ? AND events.status = ?) AS next_due, "
    "agents.definition_error FROM agents WHERE agents.id IN ({marks})")
SKIPS_SQL = ('SELECT events."key", events.result FROM events '
             'WHERE events."key" IN (SELECT anon_1.value FROM json_each(?) AS anon_1) AND events.status = ?')
RECENT_POSTS = 10


def persona(i: int) -> dict[str, Any]:
    return {
        "id": f"agent-{i:05d}", "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["tea", "maps", "validators", "rain"]},
        "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 4},
                     "mention_poll_minutes": 60},
    }


def bare_app(engine: Any, db_path: str) -> Starlette:
    """``/health`` answering a constant, ``/agents`` the hand-written query on ``sqlite3``."""
    from puppet_engine.api.deps import mood_label
    from puppet_engine.storage.skips import SkipCount, post_skip

    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    manager = engine.manager

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def agents(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", 50))
        offset = int(request.query_params.get("offset", 0))
        ids = manager.known()
        chosen = ids[offset:offset + limit]
        rows = conn.execute(OVERVIEW_SQL.format(marks=", ".join("?" * len(chosen))),
                            ("post", "thread", "done", "post.due", "pending", *chosen)).fetchall()
        found = {}
        keys: dict[str, str] = {}
        for agent_id, state, posts, next_due, error in rows:
            state = json.loads(state) if state else {}
            found[agent_id] = (state, posts, next_due, json.loads(error) if error else None)
            seq = state.get("post_seq")
            seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
            keys.update({f"post:{agent_id}:{seq - k}": agent_id for k in range(RECENT_POSTS) if seq - k >= 1})
        skips: dict[str, SkipCount] = {}
        if keys:
            for key, result in conn.execute(SKIPS_SQL, (json.dumps(list(keys)), "done")):
                skips.setdefault(keys[key], SkipCount()).add(post_skip(json.loads(result) if result else None))
        owners = await engine.owners(chosen)
        items = []
        for agent_id in chosen:
            config = manager.config_of(agent_id)
            runtime = manager.agents.get(agent_id)
            status = manager.status(agent_id)
            state, posts, next_due, error = found.get(agent_id, ({}, 0, None, None))
            due = next_due if next_due is not None else state.get("next_post_at")
            last = state.get("last_post_at")
            item = {
                "id": agent_id, "name": config.name or agent_id, "description": config.description,
                "running": status.state == "running", "status": status.state, "status_reason": status.reason,
                "retry_at": status.retry_at, "username": runtime.username if runtime is not None else None,
                "llm_provider": config.llm_provider, "trading_enabled": config.trading_enabled,
                "mood": mood_label(state.get("mood")), "last_post_at": _num(last), "next_post_at": _num(due),
                "posts": posts or 0, "balance_sol": None, "owner": None, "owner_since": None,
                "skipped_posts": None, "warnings": [], "definition_error": error,
            }
            if agent_id in owners:
                item["owner"], item["owner_since"] = owners[agent_id]
            count = skips.get(agent_id)
            if count is not None:
                top = count.top(1)
                reason = top[0]["example"] if top else None
                item["skipped_posts"] = {"skipped": count.skipped, "recent": count.total, "reason": reason}
                if count.mostly_skipped:
                    item["warnings"] = [f"skipped {count.skipped} of its last {count.total} scheduled posts, "
                                        f"most often: {reason}"]
            items.append(item)
        return JSONResponse({"items": items, "total": len(ids), "limit": limit, "offset": offset})

    return Starlette(routes=[Route("/health", health), Route("/agents", agents)])


def _shape(statement: str) -> str:
    """A statement with its values as ``?`` (SQLite's trace shows them) and its lists of
    placeholders folded: ``IN (?, ?, ?)`` and ``IN ({marks})`` alike."""
    bare = re.sub(r"'(?:[^']|'')*'|(?<![\w.])\d+(?:\.\d+)?(?![\w.])", "?", " ".join(statement.split()))
    return re.sub(r"IN \((?:\?, )*\?\)|IN \(\{marks\}\)", "IN (...)", bare)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def cpu_seconds() -> float:
    """User + system CPU time of this process (client, servers and engine alike)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def hammer(client: httpx2.AsyncClient, url: str, total: int, concurrency: int,
                 ) -> tuple[float, float, list[float]]:
    """Requests per second (wall) and per CPU second of this process for ``total`` GETs of ``url``
    from ``concurrency`` workers, and each one's latency."""
    remaining = total
    errors = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            sent = time.perf_counter()
            response = await client.get(url)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                errors += 1

    started, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if errors:
        raise RuntimeError(f"{url}: {errors} of {total} requests failed")
    return total / elapsed, total / max(cpu, 1e-9), latencies


def summary(rates: list[float], cpu_rates: list[float], latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"rps": round(statistics.median(rates), 1), "cpu_rps": round(statistics.median(cpu_rates), 1),
            "p50_ms": round(1000 * statistics.median(ordered), 2),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2)}


async def compare(client: httpx2.AsyncClient, api_url: str, bare_url: str, args: argparse.Namespace,
                  requests: int, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    """Alternating rounds against both servers (warmed up first); median rate, pooled latencies."""
    for url in (api_url, bare_url):
        await hammer(client, url, min(50, requests), args.concurrency)
    rates: dict[str, list[float]] = {"api": [], "bare": []}
    cpu_rates: dict[str, list[float]] = {"api": [], "bare": []}
    times: dict[str, list[float]] = {"api": [], "bare": []}
    for round_ in range(args.rounds):
        order = [("bare", bare_url), ("api", api_url)]
        for name, url in order if round_ % 2 == 0 else reversed(order):
            if profiler is not None and name == "api":
                profiler.enable()
            rate, cpu_rate, latencies = await hammer(client, url, requests, args.concurrency)
            if profiler is not None and name == "api":
                profiler.disable()
            rates[name].append(rate)
            cpu_rates[name].append(cpu_rate)
            times[name] += latencies
    api = summary(rates["api"], cpu_rates["api"], times["api"])
    bare = summary(rates["bare"], cpu_rates["bare"], times["bare"])
    return {"api": api, "bare": bare, "ratio": round(api["rps"] / bare["rps"], 3),
            "cpu_ratio": round(api["cpu_rps"] / bare["cpu_rps"], 3),
            "round_ratios": [round(a / b, 3) for a, b in zip(rates["api"], rates["bare"], strict=True)]}


async def asgi_cpu(app: Any, path: str, requests: int, rounds: int) -> float:
    """CPU seconds per ``GET path`` of ``app`` called directly (no socket, no client): the least of
    ``rounds`` rounds of ``requests``, after one round to warm up."""
    route, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": route, "raw_path": route.encode(), "query_string": query.encode(),
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode())]}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    best = float("inf")
    for round_ in range(rounds + 1):
        started = time.process_time()
        for _ in range(requests):
            await app(dict(scope, state={}), receive, send)
        if round_:
            best = min(best, (time.process_time() - started) / requests)
    if set(statuses) != {200}:
        raise RuntimeError(f"{path}: answered {sorted(set(statuses))} in-process")
    return best


async def compare_asgi(api: Any, bare: Any, path: str, args: argparse.Namespace) -> dict[str, float]:
    """Both apps' CPU per request in-process (µs), alternating rounds; ratio = bare / API."""
    requests, rounds = max(10, args.requests // 4), 2 * args.rounds
    times: dict[str, list[float]] = {"api": [], "bare": []}
    for _ in range(rounds):
        for name, app in (("api", api), ("bare", bare)):
            times[name].append(await asgi_cpu(app, path, requests, 1))
    api_us, bare_us = 1e6 * min(times["api"]), 1e6 * min(times["bare"])
    return {"api_us": round(api_us, 1), "bare_us": round(bare_us, 1), "ratio": round(bare_us / api_us, 3)}


async def route_statements(engine: Any, app: Any, path: str) -> list[str]:
    """The statements one GET of ``path`` runs: through SQLAlchemy, or on the list's own SQLite
    connection (its trace shows the values); asked in-process, and only the request's own
    (the engine's loops have statements of their own)."""
    from sqlalchemy import event as sa_event

    statements: list[str] = []
    mine: contextvars.ContextVar[bool] = contextvars.ContextVar("mine", default=False)

    def seen(statement: str) -> None:
        if mine.get() and not statement.startswith("PRAGMA"):
            statements.append(" ".join(statement.split()))

    async def marked(scope: Any, receive: Any, send: Any) -> None:
        mine.set(True)
        await app(scope, receive, send)

    reader = getattr(app.state.ctx, "overviews", None)
    raw = reader.connection() if reader is not None and hasattr(reader, "connection") else None
    target = engine.db.engine.sync_engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen(statement)

    sa_event.listen(target, "before_cursor_execute", on_execute)
    if raw is not None:
        raw.set_trace_callback(seen)
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=marked), base_url="http://bench",
                                      headers={"Authorization": f"Bearer {KEY}"}) as client:
            assert (await client.get(path)).status_code == 200
    finally:
        sa_event.remove(target, "before_cursor_execute", on_execute)
        if raw is not None:
            raw.set_trace_callback(None)
    return statements


async def drive(engine: Any, until: float, step: float = 60.0) -> None:
    """Run the engine's events to ``until`` on its virtual clock, skipping idle stretches."""
    from puppet_engine.storage.repos import events as event_rows

    clock = engine.clock
    while True:
        await engine.events.run_until_idle()
        nxt = await event_rows.next_due_at(engine.db, engine.manager.owned())
        if nxt is None or nxt > until:
            break
        clock.set(min(until, max(nxt, clock.now()) + step))


async def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    from puppet_engine.api import KeyRing, create_app
    from puppet_engine.clock import VirtualClock
    from puppet_engine.engine import Engine, EngineOptions
    from puppet_engine.observability.logging import configure_logging
    from puppet_engine.persona import load_agents_dir, parse_agent_config
    from puppet_engine.sandbox import Sandbox, SandboxConfig
    from puppet_engine.serving import BackgroundServer
    from puppet_engine.settings import Settings

    configure_logging("ERROR", "console", stream=sys.stderr)  # stdout stays for the results
    with tempfile.TemporaryDirectory() as tmp:
        db_path = f"{tmp}/bench.db"
        clock = VirtualClock()
        settings = Settings(database_url=f"sqlite:///{db_path}", embedder="hashing",  # type: ignore[call-arg]
                            log_level="ERROR", _env_file=None)
        configs = load_agents_dir(ROOT / "agents")
        configs += [parse_agent_config(persona(i)) for i in range(max(0, n - len(configs)))]
        engine = Engine(settings, EngineOptions(agents=configs, sandbox=Sandbox(SandboxConfig(), clock=clock),
                                                clock=clock, seed=1))
        await engine.start()
        history_started = time.perf_counter()
        await drive(engine, clock.now() + args.hours * 3600)
        history_seconds = time.perf_counter() - history_started
        runner: asyncio.Task[None] | None = None
        app = create_app(engine, keys=KeyRing.parse(f"{KEY}:admin"))
        api = BackgroundServer(app)
        bare_asgi = bare_app(engine, db_path)
        bare = BackgroundServer(bare_asgi)
        await api.start()
        await bare.start()
        path = f"/agents?limit={args.limit}"
        limits = httpx2.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        profiler = cProfile.Profile() if args.profile else None
        try:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                          timeout=60) as client:
                statements = await route_statements(engine, app, path)
                answer = (await client.get(f"{api.url}{path}")).json()
                baseline = (await client.get(f"{bare.url}{path}")).json()
                if answer != baseline:
                    raise RuntimeError(f"the bare endpoint's answer differs from the API's:\n{answer}\n{baseline}")
                ours = [OVERVIEW_SQL, SKIPS_SQL]
                if not statements or [_shape(s) for s in statements] != [_shape(s) for s in ours[:len(statements)]]:
                    raise RuntimeError("the route's statements are not the bare endpoint's:\n" + "\n".join(statements))
                runner = asyncio.create_task(engine.run())  # the clock stands still: the agents stay quiet
                items = answer["items"]
                result: dict[str, Any] = {
                    "agents": len(configs), "listed": len(items), "limit": args.limit,
                    "posts": sum(a["posts"] for a in items),
                    "with_skips": sum(1 for a in items if a["skipped_posts"]),
                    "history_hours": args.hours, "history_seconds": round(history_seconds, 1),
                    "statements": statements, "requests": args.requests, "rounds": args.rounds,
                    "concurrency": args.concurrency,
                }
                result["agents_route"] = await compare(client, f"{api.url}{path}", f"{bare.url}{path}", args,
                                                       args.requests, profiler)
                result["health"] = await compare(client, f"{api.url}/health", f"{bare.url}/health", args,
                                                 args.requests * 2)
                for name, route in (("agents_route", path), ("health", "/health")):
                    result[name]["asgi"] = await compare_asgi(app, bare_asgi, route, args)
        finally:
            await api.stop()
            await bare.stop()
            await engine.stop()
            if runner is not None:
                await asyncio.wait_for(runner, timeout=30)
    if profiler is not None:
        result["profile"] = top_functions(profiler)
    return result


def top_functions(profiler: cProfile.Profile, top: int = 30) -> list[tuple[str, float, float]]:
    """The functions with the most cumulative and own time during the API's rounds."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(own for (_cc, _nc, own, _cum, _callers) in stats.values()) or 1.0
    rows = collections.Counter({f"{Path(f).name}:{line}:{name}": cum for (f, line, name), (_, _, _, cum, _)
                                in stats.items()})
    own = {f"{Path(f).name}:{line}:{name}": o for (f, line, name), (_, _, o, _, _) in stats.items()}
    return [(name, round(cum / total, 3), round(own[name] / total, 3)) for name, cum in rows.most_common(top)]


def report(r: dict[str, Any]) -> None:
    print(f"{r['agents']} agents ({r['listed']} listed with ?limit={r['limit']}, {r['posts']} posts, "
          f"{r['with_skips']} with skipped posts; {r['history_hours']:g} virtual hours of history), "
          f"{r['concurrency']} concurrent, {r['rounds']} rounds of {r['requests']} requests:")
    print(f"  route's statements: {len(r['statements'])}")
    for name, label in (("agents_route", "/agents"), ("health", "/health")):
        c = r[name]
        a, b = c["api"], c["bare"]
        print(f"  {label:<8} API {a['rps']:>7.1f} req/s p50 {a['p50_ms']:>6.2f} ms p99 {a['p99_ms']:>6.2f} ms | "
              f"bare {b['rps']:>7.1f} req/s p50 {b['p50_ms']:>6.2f} ms p99 {b['p99_ms']:>6.2f} ms | "
              f"ratio {c['ratio']:.2f}x (rounds {', '.join(f'{x:.2f}' for x in c['round_ratios'])})")
        print(f"  {'':<8} per CPU second: API {a['cpu_rps']:>7.1f} req | bare {b['cpu_rps']:>7.1f} req | "
              f"ratio {c['cpu_ratio']:.2f}x")
        if "asgi" in c:
            x = c["asgi"]
            print(f"  {'':<8} asgi, CPU per request: API {x['api_us']:>7.1f} us | bare {x['bare_us']:>7.1f} us | "
                  f"ratio {x['ratio']:.2f}x")
    for name, cum, own in r.get("profile", []):
        print(f"    {cum:6.1%} cum {own:6.1%} own  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default="3,100,1000", help="comma-separated sizes, each in its own process")
    parser.add_argument("--limit", type=int, default=500, help="page size asked for (the dashboard asks 500)")
    parser.add_argument("--requests", type=int, default=200, help="requests per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hours", type=float, default=6.0, help="virtual hours the agents act before timing")
    parser.add_argument("--profile", action="store_true", help="where the API's time goes (cProfile)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one size, in a process of its own
    args, _ = parser.parse_known_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(measure(args.child, args))))
        return
    results = []
    for size in [int(s) for s in args.agents.split(",") if s.strip()]:
        cmd = [sys.executable, __file__, "--child", str(size), "--limit", str(args.limit),
               "--requests", str(args.requests), "--rounds", str(args.rounds),
               "--concurrency", str(args.concurrency), "--hours", str(args.hours),
               *(["--profile"] if args.profile else [])]
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if not args.json:
            report(results[-1])
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"benchmark": "api", "results": results}))


if __name__ == "__main__":
    main()
