"""One node alone (role all): /health and /status say its role and id, /agents names it as each
agent's owner, /nodes lists it (read scope), an unknown role is refused, and a restart-all is
applied with this node's part recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_helpers import READ, assert_error, harness

from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.errors import ConfigError
from puppet_engine.settings import Settings


async def test_one_node_says_who_it_is_and_owns_its_agents(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        node = api.engine.owner
        health = await api.client.get("/health")  # no key: load balancers ask it
        assert health.json() == {"status": "ok", "role": "all", "node": node}
        status = (await api.get("/status", key=READ)).json()
        assert status["role"] == "all" and status["owner"] == node

        items = (await api.get("/agents", key=READ)).json()["items"]
        assert {a["owner"] for a in items} == {node} and all(a["owner_since"] for a in items)
        assert (await api.get("/agents/nova", key=READ)).json()["owner"] == node

        assert_error(await api.client.get("/nodes"), 401)
        nodes = (await api.get("/nodes", key=READ)).json()
        assert [(n["id"], n["role"], n["status"], n["agents"], n["this"]) for n in nodes] == [
            (node, "all", "live", 3, True)]
        assert nodes[0]["pid"] > 0 and nodes[0]["version"]

        restart = await api.post("/system/restart")
        command = (await api.get(f"/commands/{restart.headers['Command-Id']}?wait=5", key=READ)).json()
        assert command["state"] == "applied" and command["applied_by"] == node
        assert [(p["node"], sorted(p["restarted"])) for p in command["nodes"]] == [(node, ["coby", "ledger", "nova"])]

        stopped = await api.post("/agents/nova/stop")
        assert stopped.json()["owner"] is None  # a stopped agent runs nowhere


def test_an_unknown_role_is_refused(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'x.db'}")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="--role: 'gateway' is not one of all, worker, api"):
        Engine(settings, EngineOptions(agents=[], role="gateway"))
