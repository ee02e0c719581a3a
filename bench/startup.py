"""Startup benchmark: time from launching ``puppet-engine run`` to its API answering /health,
and on to every example agent running (``/status``), with the embedder ``EMBEDDER`` names.

Baseline, measured in the same run: launching a bare uvicorn server with a one-route
Starlette app, in the same Python, until it answers.

    python bench/startup.py [--runs 3] [--json]          # EMBEDDER=local: the MiniLM model
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn, sys
app = Starlette(routes=[Route("/health", lambda r: JSONResponse({"status": "ok"}))])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _all_running(port: int, key: str) -> bool:
    status = httpx2.get(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {key}"}, timeout=0.5)
    agents = status.json()["agents"] if status.status_code == 200 else {}
    return bool(agents.get("total")) and agents["running"] == agents["total"]


def time_until_ready(cmd: list[str], port: int, env: dict[str, str], timeout: float = 60.0,
                     key: str | None = None) -> tuple[float, float | None]:
    """Seconds until /health answers, and (with an API ``key``) until every agent runs."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    healthy: float | None = None
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before answering")
            try:
                if healthy is None and httpx2.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    healthy = time.perf_counter() - start
                    if key is None:
                        return healthy, None
                if healthy is not None and key is not None and _all_running(port, key):
                    return healthy, time.perf_counter() - start
            except httpx2.TransportError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"not ready after {timeout}s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args, _ = parser.parse_known_args()
    engine_times, running_times, bare_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            port = free_port()
            bare_times.append(time_until_ready([sys.executable, "-c", BARE_APP, str(port)], port, dict(os.environ))[0])
            port = free_port()
            env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp}/startup-{i}.db", PUPPET_API_KEYS="bench:admin",
                       LOG_LEVEL="ERROR")
            cmd = [sys.executable, "-m", "puppet_engine.cli", "run", "--agents", str(ROOT / "agents"),
                   "--port", str(port)]
            healthy, running = time_until_ready(cmd, port, env, key="bench")
            engine_times.append(healthy)
            running_times.append(running or 0.0)
    engine, bare = statistics.median(engine_times), statistics.median(bare_times)
    running = statistics.median(running_times)
    result = {"benchmark": "startup", "engine_seconds": engine, "bare_uvicorn_seconds": bare,
              "ratio": engine / bare, "all_agents_running_seconds": running,
              "running_after_health_seconds": running - engine,
              "embedder": os.environ.get("EMBEDDER", "auto"), "runs": args.runs}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"puppet-engine run → /health: {engine:.2f}s (median of {args.runs})")
        print(f"bare uvicorn app  → /health: {bare:.2f}s   ratio {engine / bare:.2f}x")
        print(f"every agent running: {running:.2f}s ({running - engine:.2f}s after /health, "
              f"EMBEDDER={result['embedder']})")


if __name__ == "__main__":
    main()
