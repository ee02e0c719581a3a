"""Operator commands go through the database: any process records them, the agent's owner applies them.

Real engines on one SQLite file with the example agents and in-process sandboxes: one process
alone (commands apply at once), and two processes with leases (a command sent to the node that
does not own the agent is applied by the one that does; stops and configs hold across a lease move).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from api_helpers import (
    CONTROL,
    KEYS,
    READ,
    Harness,
    assert_error,
    eventually,
    example_configs,
    harness,
    running_engine,
)

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import RUNTIME_REFRESH_SECONDS, Engine, EngineOptions
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import agents as agents_table

_ANSWERED = {(202, "pending"), (202, "applying"), (200, "applied")}  # sent to a node that is not the owner

async def test_commands_apply_at_once_in_a_single_process(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        stopped = await api.post("/agents/coby/stop", key=CONTROL)
        assert stopped.status_code == 200, stopped.text
        body = stopped.json()
        assert body["running"] is False and body["command_state"] == "applied"
        command = (await api.get(f"/commands/{body['command_id']}", key=READ)).json()
        assert command["kind"] == "stop" and command["agent_id"] == "coby" and command["state"] == "applied"
        assert command["applied_by"] == api.engine.owner and command["requested_by"]
        assert command["applied_at"] >= command["created_at"]

        started = (await api.post("/agents/coby/start", key=CONTROL)).json()
        assert started["running"] is True and started["command_id"] == body["command_id"] + 1

        config = (await api.get("/agents/nova")).json()["config"]
        put = await api.put("/agents/nova/config", json={**config, "name": "Nova II"})
        assert put.status_code == 200 and put.json()["command_state"] == "applied", put.text
        stored = (await api.get(f"/commands/{put.json()['command_id']}?wait=5")).json()
        assert stored["kind"] == "config" and stored["payload"]["name"] == "Nova II"

        restart = await api.post("/system/restart")
        assert restart.status_code == 200 and sorted(restart.json()["restarted"]) == ["coby", "ledger", "nova"]
        assert (await api.get(f"/commands/{restart.headers['Command-Id']}")).json()["kind"] == "restart_all"

        # The rules of today: control scope for lifecycle, admin for config; unknown ids are 404.
        assert_error(await api.post("/agents/coby/stop", key=READ), 403)
        assert_error(await api.put("/agents/nova/config", key=CONTROL, json=config), 403)
        assert_error(await api.get("/commands/999999"), 404)
        assert_error(await api.get("/commands/1?wait=31"), 422)
        assert_error(await api.post("/agents/zed/stop"), 404)


async def test_a_refused_config_is_a_failed_command_and_changes_nothing(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        config = (await api.get("/agents/ledger")).json()["config"]
        bad = {**config, "solana_integration": {**config["solana_integration"], "private_key": "not-a-key"}}
        assert_error(await api.put("/agents/ledger/config", json=bad), 400, "invalid_config")
        async with api.engine.db.connect() as conn:
            state = (await conn.execute(sa.text("select state, reason from commands order by id desc"))).first()
        assert state is not None and state.state == "failed" and "private_key" in state.reason
        assert "not-a-key" not in state.reason


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database shared by the processes of a test: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'api.db'}"
    return str(request.getfixturevalue("pg_url"))


@asynccontextmanager
async def _node(database_url: str, owner: str) -> AsyncIterator[Harness]:
    """An engine process with leases (renewed only when the test says: a long ttl) and its API."""
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        embedder="hashing", engine_leases=True, lease_ttl_seconds=600)
    engine = Engine(settings, EngineOptions(agents=example_configs(), sandbox=Sandbox(SandboxConfig()), seed=11,
                                            owner=owner))
    async with running_engine(engine):
        app = create_app(engine, keys=KeyRing.parse(KEYS), feed_interval=0.1)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=f"http://{owner}") as c:
            yield Harness(engine, app, c)


async def _applied(node: Harness, command_id: int) -> dict[str, Any]:
    command = (await node.get(f"/commands/{command_id}?wait=5")).json()
    assert command["state"] == "applied", command
    return command  # type: ignore[no-any-return]


async def _enabled(engine: Engine, agent_id: str) -> bool:
    async with engine.db.connect() as conn:
        return bool((await conn.execute(sa.select(agents_table.c.enabled)
                                        .where(agents_table.c.id == agent_id))).scalar())


async def test_two_processes_the_owner_applies_and_a_lease_move_keeps_the_operators_word(database_url: str) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(_node(database_url, "node-a"))
        b = await stack.enter_async_context(_node(database_url, "node-b"))
        await a.engine.rebalance()  # a sees b and hands back its surplus
        await b.engine.rebalance()
        owned_by_a = sorted(a.engine.leases.owned)  # type: ignore[union-attr]
        assert owned_by_a and set(owned_by_a).isdisjoint(b.engine.leases.owned)  # type: ignore[union-attr]
        first, last = owned_by_a[0], owned_by_a[-1]

        # A config change sent to b, applied by a (the owner), followed by b.
        config = (await b.get(f"/agents/{last}")).json()["config"]
        put = await b.put(f"/agents/{last}/config", json={**config, "name": "Renamed"})
        # 202 while the owner applies it; on PostgreSQL NOTIFY often wakes it before the answer (200, applied).
        assert (put.status_code, put.json()["command_state"]) in _ANSWERED, put.text
        assert (await _applied(b, put.json()["command_id"]))["applied_by"] == "node-a"
        assert a.engine.manager.config_of(last).name == "Renamed"
        await eventually(lambda: _true(b.engine.manager.config_of(last).name == "Renamed"), timeout=10)

        # New secrets cannot travel through the database: only the node running the agent takes them.
        secret = {**config, "llm_config": {**config.get("llm_config", {}), "api_key": "sk-brand-new-0123456789"}}
        refused = assert_error(await b.put(f"/agents/{last}/config", json=secret), 409)
        assert "another node" in refused["message"] and "sk-brand-new" not in refused["message"]
        async with b.engine.db.connect() as conn:
            assert "sk-brand-new" not in str((await conn.execute(sa.text("select payload from commands"))).all())

        # A stop sent to b, applied by a.
        stop = await b.post(f"/agents/{first}/stop", key=CONTROL)
        assert (stop.status_code, stop.json()["command_state"]) in _ANSWERED, stop.text
        assert (await _applied(b, stop.json()["command_id"]))["applied_by"] == "node-a"
        assert a.engine.manager.status(first).state == "stopped" and not await _enabled(a.engine, first)
        await eventually(lambda: _true(b.engine.manager.status(first).state == "stopped"), timeout=10)

        # Latency request → applied over 20 commands sent to the node that does not own the agent,
        # at random moments of the owner's polling cycle (as operators send them).
        latencies = []
        jitter = random.Random(7)
        for i in range(20):
            await asyncio.sleep(jitter.uniform(0, RUNTIME_REFRESH_SECONDS))
            sent = time.monotonic()
            kind = "start" if i % 2 == 0 else "stop"
            answer = await b.post(f"/agents/{first}/{kind}", key=CONTROL)
            command = await _applied(b, answer.json()["command_id"])
            assert command["applied_by"] == "node-a"
            latencies.append(command["applied_at"] - command["created_at"])
            assert time.monotonic() - sent < 10
        latencies.sort()
        p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
        print(f"command latency request->applied over {len(latencies)}: p50 {p50:.3f}s p95 {p95:.3f}s")
        assert p95 <= RUNTIME_REFRESH_SECONDS + 1.5, latencies
        assert a.engine.manager.status(first).state == "stopped"  # the 20th was a stop

        # a leaves: b takes over its agents; the stopped one stays stopped, the config stays.
        await eventually(lambda: _true(b.engine.manager.status(first).state == "stopped"), timeout=10)
        await a.engine.leases.release_all()  # type: ignore[union-attr]
        await b.engine.rebalance()
        assert last in b.engine.leases.owned  # type: ignore[union-attr]
        assert b.engine.manager.config_of(last).name == "Renamed"
        assert (await b.get(f"/agents/{last}")).json()["name"] == "Renamed"
        assert first not in b.engine.leases.owned and b.engine.manager.status(first).state == "stopped"  # type: ignore[union-attr]
        assert first not in b.engine._owned() and not await _enabled(b.engine, first)

        # With no live lease on it, the stopped agent's start is applied by whichever node receives it.
        start = await b.post(f"/agents/{first}/start", key=CONTROL)
        assert start.status_code == 200 and start.json()["running"] is True, start.text
        await b.engine.rebalance()
        assert first in b.engine.leases.owned  # type: ignore[union-attr]


async def _true(value: bool) -> bool:
    return value
