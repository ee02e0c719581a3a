"""API throughput: requests/s on /health and /agents against a bare Starlette app, same run.

The engine (example agents, in-process sandbox, temp SQLite) and its API are served by
uvicorn on a loopback port, inside the engine's event loop as in ``puppet-engine run``.
The baseline is a bare Starlette app answering the same paths with canned JSON of the
same shape, served the same way. One httpx2 client with ``--concurrency`` workers sends
``--requests`` requests per endpoint to each; the ratio says what the API costs.

    python bench/api.py [--requests 2000] [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LOG_LEVEL", "ERROR")
KEY = "bench-admin-key-0123456789"


def bare_app(agents_page: dict[str, Any]) -> Starlette:
    async def health(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def agents(request: Any) -> JSONResponse:
        return JSONResponse(agents_page)

    return Starlette(routes=[Route("/health", health), Route("/agents", agents)])


async def hammer(client: httpx2.AsyncClient, url: str, total: int, concurrency: int) -> float:
    """Requests per second for ``total`` GETs of ``url`` from ``concurrency`` workers."""
    remaining = total
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            response = await client.get(url)
            if response.status_code != 200:
                errors += 1

    for _ in range(min(50, total)):  # warm-up: connections, caches
        await client.get(url)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{url}: {errors} of {total} requests failed")
    return total / elapsed


async def run(requests: int, concurrency: int) -> dict[str, Any]:
    from puppet_engine.api import KeyRing, create_app
    from puppet_engine.engine import Engine, EngineOptions
    from puppet_engine.observability.logging import configure_logging
    from puppet_engine.persona import load_agents_dir
    from puppet_engine.sandbox import Sandbox, SandboxConfig
    from puppet_engine.serving import BackgroundServer
    from puppet_engine.settings import Settings

    configure_logging("ERROR", "console", stream=sys.stderr)  # stdout stays for the results
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", embedder="hashing",  # type: ignore[call-arg]
                            log_level="ERROR", _env_file=None)
        engine = Engine(settings, EngineOptions(agents=load_agents_dir(ROOT / "agents"),
                                                sandbox=Sandbox(SandboxConfig()), seed=1))
        await engine.start()
        runner = asyncio.create_task(engine.run())
        api = BackgroundServer(create_app(engine, keys=KeyRing.parse(f"{KEY}:admin")))
        await api.start()
        headers = {"Authorization": f"Bearer {KEY}"}
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        try:
            async with httpx2.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
                page = (await client.get(f"{api.url}/agents")).json()
                bare = BackgroundServer(bare_app(page))
                await bare.start()
                try:
                    result: dict[str, Any] = {"benchmark": "api", "requests": requests, "concurrency": concurrency}
                    for path in ("/health", "/agents"):
                        bare_rps = await hammer(client, f"{bare.url}{path}", requests, concurrency)
                        api_rps = await hammer(client, f"{api.url}{path}", requests, concurrency)
                        name = path.strip("/")
                        result[name] = {"api_rps": round(api_rps, 1), "bare_rps": round(bare_rps, 1),
                                        "ratio": round(api_rps / bare_rps, 3)}
                finally:
                    await bare.stop()
        finally:
            await api.stop()
            await engine.stop()
            await asyncio.wait_for(runner, timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint and server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args, _ = parser.parse_known_args()
    result = asyncio.run(run(args.requests, args.concurrency))
    if args.json:
        print(json.dumps(result))
        return
    for name in ("health", "agents"):
        r = result[name]
        print(f"/{name:<7} API {r['api_rps']:>8.1f} req/s   bare Starlette {r['bare_rps']:>8.1f} req/s   "
              f"ratio {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
