"""Two `--role worker` processes and one `--role api` process on one PostgreSQL: one control plane.

Real processes (the harness of test_multiprocess_postgres.py): a sandbox, two workers that share
five agents by 3-second leases, and an api node that runs no agent. Every operator action is sent
to the api node only: stop, start, a config change and restart-all take effect on the worker that
owns the agent (LISTEN/NOTIFY wakes it). Then one worker is frozen (SIGSTOP), a stop for one of
its agents is sent, and it is SIGKILLed: the other worker takes its agents over and applies that
command exactly once; an agent stopped before the kill stays stopped, a config changed before it
stays changed.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from test_multiprocess_postgres import free_port, lease_owners, spawn, wait_for

from puppet_engine.storage import Database
from puppet_engine.storage.tables import agents as agents_table
from puppet_engine.storage.tables import leases

pytestmark = pytest.mark.postgres

TTL = 3.0
AGENTS = [f"role{i}" for i in range(5)]
ADMIN = "roles-admin-key-5d1c9e7a03b24f68"
CONTROL = "roles-control-key-8a2f4c6e19d07b35"


def write_agents(directory: Path) -> None:
    directory.mkdir()
    for i, agent_id in enumerate(AGENTS):
        (directory / f"{agent_id}.json").write_text(json.dumps({
            "id": agent_id, "name": f"Role {i}", "llm_provider": "fake",
            "personality": {"traits": ["calm"], "interests": ["maps", "tea"]},
            "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2}},
        }))


def log_lines(path: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if f'"{event}"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                out.append(record)
    return out


async def test_two_workers_and_an_api_node_one_control_plane(pg_server, tmp_path: Path) -> None:
    url = pg_server.new_database()
    agents_dir = tmp_path / "agents"
    write_agents(agents_dir)
    sandbox_port, api_port = free_port(), free_port()
    sandbox_url, api_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "DATABASE_URL": url, "LEASE_TTL_SECONDS": str(TTL), "EMBEDDER": "hashing",
           "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "ENABLE_METRICS": "false",
           "PUPPET_API_KEYS": f"{ADMIN}:admin,{CONTROL}:control"}
    for name in ("TWITTER_API_KEY", "OPENAI_API_KEY", "GROK_API_KEY", "XAI_API_KEY"):
        env.pop(name, None)
    procs: list[subprocess.Popen[bytes]] = []
    db = Database(url)
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2", "api")}
    try:
        procs.append(spawn(["sandbox", "--port", str(sandbox_port)], tmp_path / "sandbox.log", env))
        await wait_for(lambda: _up(f"{sandbox_url}/sandbox/x/accounts"), 30, "the sandbox")
        common = ["run", "--agents", str(agents_dir), "--sandbox-url", sandbox_url]
        workers = {name: spawn([*common, "--role", "worker"], logs[name], env) for name in ("w1", "w2")}
        api_proc = spawn([*common, "--role", "api", "--port", str(api_port)], logs["api"], env)
        procs += [*workers.values(), api_proc]

        async with httpx2.AsyncClient(base_url=api_url, timeout=15,
                                      headers={"Authorization": f"Bearer {ADMIN}"}) as api:
            await wait_for(lambda: _up(f"{api_url}/health"), 40, "the api node")
            health = (await api.get("/health")).json()
            assert health["role"] == "api" and health["node"], health
            assert (await api.get("/status")).json()["role"] == "api"

            async def three_nodes_and_a_split() -> dict[str, str] | None:
                for name, proc in {**workers, "api": api_proc}.items():
                    assert proc.poll() is None, f"{name} exited:\n{_tail(tmp_path)}"
                nodes = (await api.get("/nodes")).json()
                live = {n["id"]: n["role"] for n in nodes if n["status"] == "live"}
                owners = await lease_owners(db)
                if sorted(live.values()) != ["api", "worker", "worker"] or len(owners) != len(AGENTS):
                    return None
                counts = sorted(list(owners.values()).count(w) for w in set(owners.values()))
                return owners if counts == [2, 3] and health["node"] not in owners.values() else None

            owners = await wait_for(three_nodes_and_a_split, 60, "two workers sharing the agents 3/2")
            node_of = {name: _node_id(logs[name], tmp_path) for name in ("w1", "w2")}
            assert set(owners.values()) == set(node_of.values())
            listed = {a["id"]: a for a in (await api.get("/agents")).json()["items"]}
            assert {a: listed[a]["owner"] for a in AGENTS} == owners
            assert all(listed[a]["owner_since"] for a in AGENTS)

            # Stop and start sent to the api node: a stop is applied by the agent's owner, which
            # then hands its lease back; a start by whichever worker wakes first (no one holds it).
            target, workers_ids = AGENTS[0], set(node_of.values())
            latencies = []
            for kind in ("stop", "start", "stop", "start", "stop", "start"):
                owner = (await lease_owners(db)).get(target) if kind == "stop" else None
                sent = time.monotonic()
                answer = await api.post(f"/agents/{target}/{kind}", headers={"Authorization": f"Bearer {CONTROL}"})
                assert answer.status_code in (200, 202), answer.text  # 200: the owner was that quick
                command = await _decided(api, answer.json()["command_id"])
                latencies.append(time.monotonic() - sent)
                assert command["state"] == "applied" and command["applied_by"] in workers_ids, command
                if kind == "stop":
                    assert command["applied_by"] == owner, (command, owner)
                    assert not await _enabled(db, target)
                    await wait_for(lambda: _no_lease(db, target), TTL * 2, f"{target}'s lease to be released")
                else:
                    await wait_for(lambda: _leased(db, target), TTL * 2, f"{target} running again")
            latencies.sort()
            print(f"command latency request->applied via the api node over {len(latencies)}: "
                  f"p50 {statistics.median(latencies):.3f}s max {latencies[-1]:.3f}s")

            # A config change sent to the api node, applied by the owner, kept in the database.
            owners = await wait_for(three_nodes_and_a_split, 20, "the agents shared 3/2 again")
            changed = AGENTS[1]
            config = (await api.get(f"/agents/{changed}")).json()["config"]
            put = await api.put(f"/agents/{changed}/config", json={**config, "name": "Renamed By Api"})
            assert put.status_code in (200, 202), put.text
            command = await _decided(api, put.json()["command_id"])
            assert command["state"] == "applied" and command["applied_by"] == owners[changed], command
            assert (await api.get(f"/agents/{changed}")).json()["name"] == "Renamed By Api"

            # Restart-all sent to the api node: applied once both workers restarted their own agents.
            restart = await api.post("/system/restart")
            assert restart.status_code == 200 and restart.json()["restarted"] == [], restart.text
            command = await _decided(api, int(restart.headers["Command-Id"]))
            assert command["state"] == "applied", command
            parts = {part["node"]: part["restarted"] for part in command["nodes"]}
            assert set(parts) == set(node_of.values()), command
            assert sorted(a for restarted in parts.values() for a in restarted) == sorted(AGENTS)
            for name in ("w1", "w2"):
                assert any(r.get("kind") == "restart_all" for r in log_lines(logs[name], "command_applied"))

            # The worker holding three agents is killed later. Before that, one of its agents is
            # stopped and another one's config changed.
            owners = await wait_for(three_nodes_and_a_split, 20, "the agents shared 3/2 again")
            victim = max(node_of, key=lambda n: list(owners.values()).count(node_of[n]))
            survivor = "w2" if victim == "w1" else "w1"
            stopped, renamed, last_word = sorted(a for a, o in owners.items() if o == node_of[victim])
            answer = await api.post(f"/agents/{stopped}/stop")
            assert (await _decided(api, answer.json()["command_id"]))["applied_by"] == node_of[victim]
            config = (await api.get(f"/agents/{renamed}")).json()["config"]
            put = await api.put(f"/agents/{renamed}/config", json={**config, "name": "Kept Across The Move"})
            rename = await _decided(api, put.json()["command_id"])
            assert rename["applied_by"] == node_of[victim]
            await wait_for(lambda: _followed(logs[survivor], rename["id"]), 5, "the survivor to follow the config")
            await wait_for(lambda: _no_lease(db, stopped), TTL * 2, f"{stopped}'s lease to be handed back")

            # A stop sent while its owner is being killed: frozen first, so it cannot apply it.
            workers[victim].send_signal(signal.SIGSTOP)
            answer = await api.post(f"/agents/{last_word}/stop")
            pending_id = answer.json()["command_id"]
            assert (await api.get(f"/commands/{pending_id}?wait=1")).json()["state"] == "pending"
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(5)
            command = await _decided(api, pending_id, wait=TTL * 3 + 5)
            assert command["state"] == "applied" and command["applied_by"] == node_of[survivor], command
            applied = [r for name in logs for r in log_lines(logs[name], "command_applied")
                       if r.get("command_id") == pending_id]
            assert len(applied) == 1, applied

            async def survivor_runs_the_rest() -> bool:
                current = await _live_leases(db)
                return set(current) == set(AGENTS) - {stopped, last_word} \
                    and set(current.values()) == {node_of[survivor]}

            try:
                await wait_for(survivor_runs_the_rest, TTL * 3, "the survivor to run every agent not stopped")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: leases {await _live_leases(db)}, survivor {node_of[survivor]}, "
                                     f"stopped {stopped}, {last_word}\n{_tail(tmp_path, 30)}") from None
            listed = {a["id"]: a for a in (await api.get("/agents")).json()["items"]}
            assert listed[stopped]["status"] == "stopped" and listed[last_word]["status"] == "stopped"
            assert listed[renamed]["name"] == "Kept Across The Move"
            assert listed[renamed]["owner"] == node_of[survivor]
            async with db.connect() as conn:
                row = (await conn.execute(sa.select(agents_table.c.config, agents_table.c.enabled)
                                          .where(agents_table.c.id == renamed))).first()
            assert row is not None and row.config["name"] == "Kept Across The Move" and row.enabled
            assert not await _enabled(db, stopped) and not await _enabled(db, last_word)
            gone = {n["id"]: n["status"] for n in (await api.get("/nodes")).json()}
            assert gone[node_of[survivor]] == "live"
            await wait_for(lambda: _status_of(api, node_of[victim], "gone"), 15, "the killed worker shown as gone")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
        await db.close()


async def _up(url: str) -> bool:
    try:
        async with httpx2.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code == 200
    except httpx2.TransportError:
        return False


async def _decided(api: httpx2.AsyncClient, command_id: int, wait: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        command: dict[str, Any] = (await api.get(f"/commands/{command_id}?wait=5")).json()
        if command["state"] not in ("pending", "applying") or time.monotonic() > deadline:
            return command


async def _live_leases(db: Database) -> dict[str, str]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(leases.c.agent_id, leases.c.owner)
                                   .where(leases.c.expires_at >= time.time()))).fetchall()
    return {r.agent_id: r.owner for r in rows}


async def _enabled(db: Database, agent_id: str) -> bool:
    async with db.connect() as conn:
        return bool((await conn.execute(sa.select(agents_table.c.enabled)
                                        .where(agents_table.c.id == agent_id))).scalar())


async def _no_lease(db: Database, agent_id: str) -> bool:
    return agent_id not in await lease_owners(db)


async def _leased(db: Database, agent_id: str) -> bool:
    return agent_id in await lease_owners(db)


async def _followed(log: Path, command_id: int) -> bool:
    return any(r.get("command_id") == command_id for r in log_lines(log, "command_followed"))


async def _status_of(api: httpx2.AsyncClient, node: str, status: str) -> bool:
    return any(n["id"] == node and n["status"] == status for n in (await api.get("/nodes")).json())


def _node_id(log: Path, tmp_path: Path) -> str:
    started = log_lines(log, "engine_started")
    assert started, f"{log.name} has no engine_started line:\n{_tail(tmp_path)}"
    return str(started[0]["owner"])


def _tail(tmp_path: Path, lines: int = 15) -> str:
    out = []
    for log in sorted(tmp_path.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(out)
