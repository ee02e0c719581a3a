"""Startup benchmark: time from launching ``puppet-engine run`` to its API answering /health.

Baseline, measured in the same run: launching a bare uvicorn server with a one-route
Starlette app, in the same Python, until it answers.

    python bench/startup.py [--runs 3] [--json]
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


def time_until_ready(cmd: list[str], port: int, env: dict[str, str], timeout: float = 60.0) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before answering")
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    return time.perf_counter() - start
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
    engine_times, bare_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            port = free_port()
            bare_times.append(time_until_ready([sys.executable, "-c", BARE_APP, str(port)], port, dict(os.environ)))
            port = free_port()
            env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp}/startup-{i}.db", PUPPET_API_KEYS="bench:admin",
                       LOG_LEVEL="ERROR")
            cmd = [sys.executable, "-m", "puppet_engine.cli", "run", "--agents", str(ROOT / "agents"),
                   "--port", str(port)]
            engine_times.append(time_until_ready(cmd, port, env))
    engine, bare = statistics.median(engine_times), statistics.median(bare_times)
    result = {"benchmark": "startup", "engine_seconds": engine, "bare_uvicorn_seconds": bare,
              "ratio": engine / bare, "runs": args.runs}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"puppet-engine run → /health: {engine:.2f}s (median of {args.runs})")
        print(f"bare uvicorn app  → /health: {bare:.2f}s   ratio {engine / bare:.2f}x")


if __name__ == "__main__":
    main()
