"""Mention → reply latency and X read calls, filtered stream vs polling, on the wall clock.

For each mode (``--modes stream,poll``), a fresh sandbox on a loopback port (the stream is a
real HTTP stream) and a fresh engine with ``--agents`` personas (the example agent ``coby``
under other ids and handles) on the sandbox LLM, ``MENTION_POLL_SECONDS=--poll-seconds``
(60, the default), ``X_MENTIONS_MODE`` set to the mode. After the agents are up (and the
stream is live), crowd accounts post questions to random agents (``--every`` seconds apart)
for ``--minutes``, then the run waits ``--grace`` seconds for late replies. Reported:

- latency from a mention's creation to the agent's reply on X (the sandbox's timestamps),
  p50/p95/max, and how many mentions got no reply in the run;
- X read calls made in the measured stretch, by endpoint (counted at the sandbox's door),
  and per agent-hour. The stream's connection counts as one read call per connect.

    python bench/mentions.py [--agents 20] [--minutes 4] [--every 5] [--poll-seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings

REPO = Path(__file__).resolve().parents[1]
_ID = re.compile(r"/\d{3,}")


class ReadCounter:
    """ASGI wrapper counting the X API's GET calls by path template (ids replaced by :id)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: collections.Counter[str] = collections.Counter()
        self.counting = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.counting and scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith("/x/2/"):
            self.counts[_ID.sub("/:id", scope["path"][2:])] += 1
        await self.app(scope, receive, send)


def _configs(n: int) -> list[Any]:
    base = json.loads((REPO / "agents" / "coby.json").read_text())
    base.pop("solana_integration", None)
    configs = []
    for i in range(n):
        data = dict(base, id=f"bench{i:03d}", name=f"Bench {i}")
        behavior = {k: v for k, v in base.get("behavior", {}).items() if k != "mention_poll_minutes"}
        data["behavior"] = dict(behavior, post_frequency={"min_hours_between_posts": 6,
                                                          "max_hours_between_posts": 12})
        configs.append(parse_agent_config(data, source=f"bench/{i}"))
    return configs


async def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("engine not ready in time")
        await asyncio.sleep(0.1)


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    sandbox = Sandbox(SandboxConfig(seed=13))
    counter = ReadCounter(sandbox.app)
    server = BackgroundServer(counter)
    await server.start()
    x = sandbox.service("x")
    configs = _configs(args.agents)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp}/bench.db",  # type: ignore[call-arg]
                            embedder="hashing", x_mentions_mode=mode, mention_poll_seconds=args.poll_seconds,
                            log_level="WARNING")
        engine = Engine(settings, EngineOptions(agents=configs, sandbox_url=server.url, seed=2))
        await engine.start()
        runner = asyncio.create_task(engine.run())
        try:
            await _wait(lambda: len(engine.manager.running) == len(configs), 120)
            if mode == "stream":
                await _wait(lambda: engine.mention_stream is not None and engine.mention_stream.live_since, 60)
            await asyncio.sleep(5)  # the first polls of the start-up are not the steady state
            counter.counting, started = True, time.monotonic()
            rng = random.Random(7)
            fans = [x.state.create_account(f"fan{i}", None, sandbox.clock.now()) for i in range(10)]
            sent: list[str] = []
            while time.monotonic() - started < args.minutes * 60:
                target = rng.choice(configs).id
                tweet = x.state.create_tweet(rng.choice(fans), f"@{target} what is on your mind today, "
                                             f"friend #{len(sent)}?", sandbox.clock.now())
                sent.append(tweet.id)
                await asyncio.sleep(args.every)
            measured = time.monotonic() - started
            counter.counting = False
            await asyncio.sleep(args.grace)

        finally:
            await engine.stop()
            await asyncio.wait_for(runner, 60)
            await server.stop()
    replies = {t.ref("replied_to"): t for t in x.state.tweets.values() if t.ref("replied_to") in set(sent)}
    latencies = sorted(replies[m].created_at - x.state.tweets[m].created_at for m in sent if m in replies)
    reads = sum(counter.counts.values())
    agent_hours = args.agents * measured / 3600
    return {"mode": mode, "agents": args.agents, "mentions": len(sent), "replied": len(latencies),
            "latency_p50_s": _pct(latencies, 50), "latency_p95_s": _pct(latencies, 95),
            "latency_max_s": round(latencies[-1], 2) if latencies else None,
            "measured_s": round(measured, 1), "x_reads": reads, "x_reads_per_agent_hour": round(reads / agent_hours, 2),
            "reads_by_endpoint": dict(counter.counts.most_common())}


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between crowd mentions")
    parser.add_argument("--poll-seconds", type=float, default=60.0)
    parser.add_argument("--grace", type=float, default=60.0, help="seconds to wait for late replies")
    parser.add_argument("--modes", default="stream,poll")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = [await run_mode(mode, args) for mode in args.modes.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['mode']:>6}: {r['replied']}/{r['mentions']} replied; latency p50 {r['latency_p50_s']} s, "
              f"p95 {r['latency_p95_s']} s, max {r['latency_max_s']} s; X reads {r['x_reads']} in "
              f"{r['measured_s']} s = {r['x_reads_per_agent_hour']} per agent-hour {r['reads_by_endpoint']}")


if __name__ == "__main__":
    asyncio.run(main())
