"""Several `puppet-engine run` processes on one PostgreSQL share agents, survive a SIGKILL, never post twice.

Real processes all the way: a sandbox served by `puppet-engine sandbox`, two engines
started by `puppet-engine run` on a fresh (unmigrated) database — so their migrations
race too — with 3-second leases. Both must own agents; one is killed while a post of
its is on the wire; the other takes its agents over once their leases lapse, reconciles
the interrupted post and carries on. Every tweet the sandbox holds matches exactly one
action the engines recorded as done, and no agent repeats a text. One agent trades on
the sandbox chain every few seconds: every trade has one row and one signature, and
the chain agrees with what each row says.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa

from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, engine_nodes, leases, trades

pytestmark = pytest.mark.postgres

TTL = 3.0
TRADER = "sharedtrader"
AGENTS = [*(f"shared{i}" for i in range(5)), TRADER]
CLI = [sys.executable, "-m", "puppet_engine.cli"]
POSTED_KINDS = ("post", "reply", "quote", "thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_agents(directory: Path) -> None:
    directory.mkdir()
    for i, agent_id in enumerate(AGENTS):
        persona: dict = {
            "id": agent_id, "name": f"Shared {i}", "llm_provider": "fake",
            "personality": {"traits": ["curious", "dry"],
                            "interests": [*["tea", "maps", "validators", "rain"][i % 4:], "ledgers"]},
            "behavior": {"post_frequency": {"min_hours_between_posts": 0.002, "max_hours_between_posts": 0.004},
                         "mention_poll_minutes": 0.05},
        }
        if agent_id == TRADER:  # looks at the market every 4-7 s and always finds something to buy
            persona["solana_integration"] = {
                "trading_enabled": True, "network": "sandbox",
                "trade_safety": {"max_trade_amount_sol": 0.01, "min_wallet_balance_sol": 0.5,
                                 "max_slippage_percent": 5.0}}
            persona["agent_kit_integration"] = {"enabled": True, "autonomy_rules": {
                "max_daily_trades": 100_000, "max_single_trade_amount_sol": 0.01}}
            persona["behavior"]["trading_behavior"] = {
                "trading_frequency": {"min_hours_between_trades": 0.001, "max_hours_between_trades": 0.002,
                                      "random_probability": 1.0},
                "trade_decision_factors": ["random_selection"], "trade_tweet_probability": 0.0,
                "allowed_tokens": {"always_tradable": ["SOL", "USDC", "PUPPET", "STRNG", "WOOF"]}}
        (directory / f"{agent_id}.json").write_text(json.dumps(persona))


def spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(CLI + args, stdout=out, stderr=subprocess.STDOUT, env=env)


async def wait_for(check, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


async def lease_owners(db: Database) -> dict[str, str]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(leases.c.agent_id, leases.c.owner))).fetchall()
    return {r.agent_id: r.owner for r in rows}


async def test_two_processes_share_agents_and_take_over_a_killed_one(pg_server, tmp_path: Path) -> None:
    url = pg_server.new_database(migrated=False)
    agents_dir = tmp_path / "agents"
    write_agents(agents_dir)
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": url, "LEASE_TTL_SECONDS": str(TTL), "EMBEDDER": "hashing",
           "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "ENABLE_METRICS": "false"}
    for name in ("TWITTER_API_KEY", "OPENAI_API_KEY", "GROK_API_KEY", "XAI_API_KEY"):
        env.pop(name, None)
    procs: list[subprocess.Popen[bytes]] = []
    db = Database(url)
    try:
        procs.append(spawn(["sandbox", "--port", str(port)], tmp_path / "sandbox.log", env))
        async with httpx2.AsyncClient(base_url=sandbox_url, timeout=5) as http:

            async def sandbox_up() -> bool:
                try:
                    return (await http.get("/sandbox/x/accounts")).status_code == 200
                except httpx2.TransportError:
                    return False

            await wait_for(sandbox_up, 30, "the sandbox")
            run = ["run", "--agents", str(agents_dir), "--sandbox-url", sandbox_url, "--no-api"]
            a = spawn(run, tmp_path / "engine-a.log", env)
            b = spawn(run, tmp_path / "engine-b.log", env)
            procs += [a, b]

            seen: list[Counter[str]] = []

            async def fair_split() -> dict[str, str] | None:
                """Three agents each (the first engine up may take all six, then hands three back)."""
                for p in (a, b):
                    assert p.poll() is None, f"an engine exited early:\n{_tail(tmp_path)}"
                try:
                    owners = await lease_owners(db)
                except Exception:  # tables not migrated yet
                    return None
                seen.append(Counter(owners.values()))
                return owners if len(owners) == len(AGENTS) and sorted(seen[-1].values()) == [3, 3] else None

            try:
                owners = await wait_for(fair_split, 40, "both engines to own three agents each")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last split seen: {seen[-1:]}\n{_tail(tmp_path)}") from None

            async def every_agent_posted() -> bool:
                async with db.connect() as conn:
                    done = (await conn.execute(sa.select(actions.c.agent_id).where(
                        actions.c.status == "done", actions.c.kind.in_(POSTED_KINDS)))).fetchall()
                return {r.agent_id for r in done} == set(AGENTS)

            await wait_for(every_agent_posted, 40, "a post from every agent, under both engines")

            # Kill one engine in the middle of a send: posts now take 1.5 s to reach X.
            async with db.connect() as conn:
                nodes = (await conn.execute(sa.select(engine_nodes.c.id))).scalars().all()
            assert len(nodes) == 2
            slow = {"service": "x", "method": "POST", "path": "/2/tweets", "kind": "latency", "latency_ms": 1500,
                    "count": 1000}
            assert (await http.post("/sandbox/faults", json=slow)).status_code == 201

            async def a_send_under_way() -> str | None:
                async with db.connect() as conn:
                    return (await conn.execute(sa.select(actions.c.agent_id).where(
                        actions.c.status == "sending", actions.c.kind.in_(POSTED_KINDS)))).scalars().first()

            in_flight = await wait_for(a_send_under_way, 40, "a post being sent", interval=0.05)
            owners = await lease_owners(db)
            victim_owner = owners[in_flight]
            victim = await _process_of(db, victim_owner, a, b, tmp_path)
            survivor = b if victim is a else a
            orphans = {agent for agent, owner in owners.items() if owner == victim_owner}
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            killed_at, killed_wall = time.monotonic(), time.time()

            async def survivor_owns_all() -> bool:
                assert survivor.poll() is None, f"the surviving engine exited:\n{_tail(tmp_path)}"
                current = await lease_owners(db)
                return len(current) == len(AGENTS) and len(set(current.values())) == 1 \
                    and victim_owner not in current.values()

            await wait_for(survivor_owns_all, TTL + TTL / 3 + 8, "the survivor to take the agents over")
            took = time.monotonic() - killed_at
            await http.delete("/sandbox/faults")

            # The orphans live on under the survivor: each posts again.
            async with db.connect() as conn:
                before = dict((await conn.execute(sa.select(actions.c.agent_id, sa.func.max(actions.c.id)).where(
                    actions.c.status == "done", actions.c.kind.in_(POSTED_KINDS)).group_by(actions.c.agent_id)))
                    .fetchall())

            async def orphans_post_again() -> bool:
                async with db.connect() as conn:
                    rows = (await conn.execute(sa.select(actions.c.agent_id, sa.func.max(actions.c.id)).where(
                        actions.c.status == "done", actions.c.kind.in_(POSTED_KINDS))
                        .group_by(actions.c.agent_id))).fetchall()
                latest = dict(rows)
                return all(latest.get(agent, 0) > before.get(agent, 0) for agent in orphans)

            await wait_for(orphans_post_again, 30, "the taken-over agents to post again")

            async def traded_after_the_kill() -> bool:
                async with db.connect() as conn:
                    return bool((await conn.execute(sa.select(sa.func.count()).select_from(trades).where(
                        trades.c.status == "confirmed", trades.c.created_at > killed_wall))).scalar())

            await wait_for(traded_after_the_kill, 40, "a trade confirmed after the kill")
            survivor.send_signal(signal.SIGTERM)
            survivor.wait(20)
            await _check_trades(db, http)

            async with db.connect() as conn:
                done = (await conn.execute(sa.select(actions).where(actions.c.kind.in_(POSTED_KINDS)))).fetchall()
            for agent_id in AGENTS:
                tweets = (await http.get("/sandbox/x/tweets", params={"username": agent_id})).json()["data"]
                tweets = [t for t in tweets if not any(r["type"] == "retweeted" for r in t["referenced_tweets"])]
                texts = [t["text"] for t in tweets]
                assert texts and len(texts) == len(set(texts)), f"{agent_id} posted a text twice: {texts}"
                recorded: list[str] = []
                for row in done:
                    if row.agent_id != agent_id:
                        continue
                    assert row.status == "done", f"{row.key} left {row.status} ({row.error})"
                    recorded += (row.result or {}).get("posted") or [row.external_id]
                assert len(recorded) == len(set(recorded)), f"{agent_id}: an action recorded a tweet twice"
                assert sorted(recorded) == sorted(t["id"] for t in tweets), f"{agent_id}: tweets ≠ done actions"
        assert took <= TTL + TTL / 3 + 8
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
        await db.close()


async def _check_trades(db: Database, http: httpx2.AsyncClient) -> None:
    """One trades row per done trade action, one row per signature, and the chain agrees with each."""
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(trades))).fetchall()
        done = (await conn.execute(sa.select(actions.c.key).where(actions.c.kind == "trade",
                                                                  actions.c.status == "done"))).scalars().all()
    assert rows and done
    by_key = {row.key: row for row in rows}
    assert set(done) <= set(by_key), "a trade action is done without its trades row"
    signatures = Counter(row.signature for row in rows if row.signature)
    assert signatures and max(signatures.values()) == 1, f"a signature recorded twice: {signatures.most_common(2)}"
    signed = [row for row in rows if row.signature]
    body = (await http.post("/solana", json={"jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
                                             "params": [[row.signature for row in signed],
                                                        {"searchTransactionHistory": True}]})).json()
    for row, status in zip(signed, body["result"]["value"], strict=True):
        landed = status is not None and status.get("err") is None
        assert landed == (row.status == "confirmed"), f"trade {row.key} is {row.status} but the chain says {status}"


async def _process_of(db: Database, owner: str, a: subprocess.Popen[bytes], b: subprocess.Popen[bytes],
                      tmp_path: Path) -> subprocess.Popen[bytes]:
    """Which process holds ``owner`` (its id is in its engine_started log line)."""
    for proc, name in ((a, "engine-a.log"), (b, "engine-b.log")):
        if owner in (tmp_path / name).read_text(errors="replace"):
            return proc
    raise AssertionError(f"no engine log names owner {owner!r}:\n{_tail(tmp_path)}")


def _tail(tmp_path: Path, lines: int = 15) -> str:
    out = []
    for log in sorted(tmp_path.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(out)
