"""Calls to X and Jupiter per agent-hour, with and without the read caches (``READ_CACHE``).

The example agents (``agents/``: posting, replies to a sandbox crowd's mentions with their
thread context, trading on Jupiter) plus ``--extra`` generated traders, run as
``puppet-engine simulate`` runs them: the real engine on a virtual clock against the
in-process sandbox, ``--hours`` virtual hours, crowd mentions at ``--crowd-rate`` per
minute. Every request leaving the engine is counted by endpoint where it leaves (the
shared HTTP client), from the end of start-up. Both runs use the same seed, each in a process of its own; the
report is calls per agent-hour for each, by endpoint, and the saving.

    python bench/reads.py [--hours 24] [--crowd-rate 0.5] [--extra 12] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import structlog

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import load_agents_dir, parse_agent_config
from puppet_engine.settings import Settings
from puppet_engine.wiring import build_sandbox

REPO = Path(__file__).resolve().parents[1]
IDS = re.compile(r"/(?:\d{3,}|[1-9A-HJ-NP-Za-km-z]{32,44})(?=/|$)")  # tweet/user ids, addresses: one endpoint


def trader(i: int) -> dict[str, Any]:
    return {
        "id": f"trader-{i:03d}", "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["tokens", "charts"]},
        "behavior": {"post_frequency": {"min_hours_between_posts": 3, "max_hours_between_posts": 8},
                     "mention_poll_minutes": 15},
        "solana_integration": {"network": "mainnet-beta", "trading_enabled": True},
    }


def endpoint(method: str, path: str) -> str:
    return f"{method} {IDS.sub('/:id', path)}"


async def run(cached: bool, hours: float, crowd_rate: float, extra: int, seed: int) -> dict[str, Any]:
    clock = VirtualClock()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'reads.db'}", enable_metrics=True,
                            log_level="ERROR", embedder="hashing", read_cache=cached, _env_file=None)
        configs = load_agents_dir(REPO / "agents") + [parse_agent_config(trader(i)) for i in range(extra)]
        sandbox = build_sandbox(seed=seed, crowd_rate=crowd_rate, clock=clock)
        engine = Engine(settings, EngineOptions(agents=configs, clock=clock, seed=seed, sandbox=sandbox))
        calls: collections.Counter[str] = collections.Counter()

        async def count(request: Any) -> None:
            path = request.url.path
            if "/sandbox/" not in path:
                calls[endpoint(request.method, path)] += 1

        await engine.start()  # start-up reads (who am I, wallets) are not counted: the run's steady state is
        assert engine.wiring.http is not None
        engine.wiring.http.event_hooks["request"].append(count)
        await engine.run_until(clock.now() + hours * 3600)
        agents = len(engine.manager.running)
        metrics = engine.metrics
        await engine.stop()
    lookups = {}
    for cache in ("x_user_by_id", "x_user_by_username", "x_tweet", "jupiter_price"):
        lookups[cache] = {result: metrics.registry.get_sample_value(
            "puppet_cache_requests_total", {"cache": cache, "result": result}) or 0.0 for result in ("hit", "miss")}
    x = sum(n for name, n in calls.items() if " /x/" in name)  # the LLM (/openai) and RPC (/solana) apart
    jupiter = sum(n for name, n in calls.items() if "/jupiter/" in name)
    agent_hours = agents * hours
    return {"cached": cached, "agents": agents, "hours": hours, "calls": dict(calls.most_common()),
            "x_per_agent_hour": x / agent_hours, "jupiter_per_agent_hour": jupiter / agent_hours,
            "lookups": lookups}


def report(off: dict[str, Any], on: dict[str, Any]) -> None:
    print(f"{on['agents']} agents, {on['hours']:g} virtual hours (calls per agent-hour, without → with the caches)")
    for name in ("x", "jupiter"):
        before, after = off[f"{name}_per_agent_hour"], on[f"{name}_per_agent_hour"]
        saved = 100 * (1 - after / before) if before else 0.0
        print(f"  {name:8} {before:8.2f} → {after:8.2f}   ({saved:.0f}% fewer)")
    print("  by endpoint (whole run):")
    for call in sorted(set(off["calls"]) | set(on["calls"]), key=lambda c: -off["calls"].get(c, 0)):
        print(f"    {off['calls'].get(call, 0):6} → {on['calls'].get(call, 0):6}  {call}")
    print("  cache lookups (hit / miss): " + "; ".join(
        f"{cache} {v['hit']:.0f} / {v['miss']:.0f}" for cache, v in on["lookups"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--crowd-rate", type=float, default=0.5, help="crowd mentions per virtual minute")
    parser.add_argument("--extra", type=int, default=12, help="generated trading agents beside the examples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.disable(logging.WARNING)
    if args.child:
        print(json.dumps(asyncio.run(run(args.child == "on", args.hours, args.crowd_rate, args.extra, args.seed))))
        return
    results = {}
    for mode in ("off", "on"):
        cmd = [sys.executable, __file__, "--child", mode, "--hours", str(args.hours), "--crowd-rate",
               str(args.crowd_rate), "--extra", str(args.extra), "--seed", str(args.seed)]
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps({"benchmark": "reads", "results": results}))
    else:
        report(results["off"], results["on"])


if __name__ == "__main__":
    main()
