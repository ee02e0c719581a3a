"""``GET /agents/{id}/state?at=`` and ``GET /agents/{id}/history``: the state then, the timeline, over ASGI."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from api_helpers import ADMIN, CONTROL, READ, assert_error, harness

from puppet_engine.memory import Memory
from puppet_engine.storage.tables import memories


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


async def test_state_then_and_now_around_a_stop_by_an_operator(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        clock = api.engine.clock
        store = api.engine.memory
        await store.add_memory("coby", Memory(content="validators dream of fast blocks", kind="knowledge"))
        before_stop = clock.now()
        await asyncio.sleep(0.05)
        assert (await api.post("/agents/coby/stop", key=CONTROL)).status_code == 200
        await asyncio.sleep(0.05)

        then = (await api.get("/agents/coby/state", key=READ, params={"at": iso(before_stop),
                                                                       "query": "validators dreaming"})).json()
        now = (await api.get("/agents/coby/state", key=READ, params={"at": iso(clock.now())})).json()
        async with api.engine.db.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).where(memories.c.agent_id == "coby"))).scalar()

        assert then["known"] and then["lifecycle"]["status"] == "started" and then["lifecycle"]["by"] == "engine start"
        assert then["config"]["version"] == 1 and then["config"]["source"] == "file"
        assert then["memories"]["count"] == count
        assert then["memories"]["found"][0]["content"] == "validators dream of fast blocks"
        assert then["at"].endswith("Z")
        operator = "control:" + hashlib.sha256(CONTROL.encode()).hexdigest()[:8]
        assert now["lifecycle"] == {**now["lifecycle"], "status": "stopped", "by": operator}

        early = (await api.get("/agents/coby/state", key=READ, params={"at": "2001-01-01T00:00"})).json()
        assert early["known"] is False and early["memories"]["count"] == 0 and early["state"] == {}

        story = (await api.get("/agents/coby/history", key=READ,
                               params={"from": iso(before_stop - 3600), "to": iso(clock.now())})).json()
        lines = story["text"].splitlines()
        assert any("changed" in line and f"stopped by {operator}" in line for line in lines), story["text"]
        assert any("started by engine start" in line for line in lines)
        assert story["entries"] and all(e["at"].endswith("Z") for e in story["entries"])

        error = assert_error(await api.get("/agents/coby/state", key=READ, params={"at": "yesterday"}), 422)
        assert error["message"].startswith("query.at: Input should be a valid datetime")
        backwards = await api.get("/agents/coby/history", key=READ, params={"from": iso(clock.now()),
                                                                             "to": iso(clock.now() - 60)})
        assert backwards.status_code == 200 and backwards.json()["entries"] == []
        assert_error(await api.get("/agents/zed/state", key=READ, params={"at": iso(clock.now())}), 404)
        assert (await api.client.get("/agents/coby/state", params={"at": iso(clock.now())})).status_code == 401


async def test_a_config_changed_through_the_api_is_a_version_by_its_operator(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        clock = api.engine.clock
        before = clock.now()
        current = (await api.get("/agents/nova")).json()["config"]
        response = await api.put("/agents/nova/config", key=ADMIN, json={**current, "name": "Nova Prime"})
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.05)
        then = (await api.get("/agents/nova/state", key=READ, params={"at": iso(before)})).json()
        now = (await api.get("/agents/nova/state", key=READ, params={"at": iso(clock.now())})).json()
        operator = "admin:" + hashlib.sha256(ADMIN.encode()).hexdigest()[:8]
        assert then["config"]["version"] == 1 and then["config"]["source"] == "file"
        assert now["config"]["version"] == 2 and now["config"]["source"] == "api" and now["config"]["by"] == operator
