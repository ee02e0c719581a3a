"""``/agents``: listing, detail, posting on demand, lifecycle, live config changes, trading requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from api_helpers import CONTROL, KEYS, Harness, assert_error, eventually, example_configs, harness

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import agents as agents_table
from puppet_engine.storage.tables import events, trades


async def test_list_and_detail(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        page = (await api.get("/agents")).json()
        assert [a["id"] for a in page["items"]] == ["coby", "ledger", "nova"]
        assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
        assert all(a["running"] for a in page["items"])
        second = (await api.get("/agents", params={"limit": 1, "offset": 1})).json()
        assert [a["id"] for a in second["items"]] == ["ledger"] and second["total"] == 3

        coby = (await api.get("/agents/coby")).json()
        assert coby["name"] == "Coby" and coby["config"]["timezone"] == "Europe/Lisbon"
        assert any(e["type"] == "post.due" for e in coby["pending_events"])
        if api.engine.manager.agents["coby"].memory is not None:  # seeded with the agent's memory
            assert {r["other"] for r in coby["relationships"]} >= {"nova", "ledger"}
        assert all("agent_id" not in r for r in coby["relationships"])

        assert_error(await api.get("/agents/zed"), 404, "not_found")
        assert_error(await api.get("/agents", params={"limit": 0}), 422, "validation_error")


async def test_post_now_is_scheduled_and_published(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        accepted = await api.post("/agents/nova/post", key=CONTROL, json={"topic": "tea ceremonies"})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["type"] == "post.manual" and body["agent_id"] == "nova" and body["status"] == "pending"

        async def published():
            page = (await api.get("/agents/nova/timeline", params={"kind": "post"})).json()
            return [a for a in page["items"] if a["event_id"] == body["event_id"] and a["status"] == "done"]

        [action] = await eventually(published)
        assert action["payload"]["text"]
        done = (await api.get("/events", params={"type": "post.manual", "agent": "nova"})).json()
        assert [e["id"] for e in done["items"]] == [body["event_id"]]
        assert done["items"][0]["status"] == "done"

        again = (await api.post("/agents/nova/post", json={"text": "A quiet cup of tea, a loud timeline."})).json()
        assert again["event_id"] != body["event_id"] and again["key"] != body["key"]
        summary = await eventually(lambda: _posts(api, "nova", 2))
        assert summary["posts"] == 2 and summary["last_post_at"] is not None

        assert_error(await api.post("/agents/nova/post", json={"text": "a", "topic": "b"}), 422, "validation_error")
        error = assert_error(await api.post("/agents/nova/post", json={"text": ""}), 422)
        assert error["details"][0]["field"] == "body.text"
        assert_error(await api.post("/agents/nova/post", json={"extra": 1}), 422)
        assert_error(await api.post("/agents/zed/post"), 404)


async def _posts(api, agent_id: str, at_least: int):  # type: ignore[no-untyped-def]
    summary = (await api.get(f"/agents/{agent_id}")).json()
    return summary if summary["posts"] >= at_least else None


async def test_start_stop_restart(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        stopped = (await api.post("/agents/coby/stop", key=CONTROL)).json()
        assert stopped["running"] is False
        assert (await api.post("/agents/coby/stop")).json()["running"] is False  # idempotent
        assert "coby" not in api.engine.manager.running
        async with api.engine.db.connect() as conn:
            enabled = (await conn.execute(sa.select(agents_table.c.enabled)
                                          .where(agents_table.c.id == "coby"))).scalar()
        assert enabled is False
        error = assert_error(await api.post("/agents/coby/post", json={}), 409, "conflict")
        assert "stopped" in error["message"]

        assert (await api.post("/agents/coby/start")).json()["running"] is True
        assert "coby" in api.engine.manager.running
        before = api.engine.manager.agents["coby"]
        restarted = (await api.post("/agents/coby/restart")).json()
        assert restarted["running"] is True and api.engine.manager.agents["coby"] is not before
        async with api.engine.db.connect() as conn:
            pending = (await conn.execute(sa.select(sa.func.count()).select_from(events).where(
                events.c.agent_id == "coby", events.c.type == "post.due", events.c.status == "pending"))).scalar()
        assert pending == 1  # a restart keeps the one persisted schedule


async def test_config_update_is_applied_live(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        current = (await api.get("/agents/nova")).json()["config"]
        changed = {**current, "name": "Nova Prime", "description": "now with more tea"}
        changed["behavior"]["post_frequency"]["min_hours_between_posts"] = 5
        changed["behavior"]["post_frequency"]["max_hours_between_posts"] = 9
        response = await api.put("/agents/nova/config", json=changed)
        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["name"] == "Nova Prime" and detail["running"] is True
        runtime = api.engine.manager.agents["nova"]
        assert runtime.config.name == "Nova Prime"
        assert runtime.config.behavior.post_frequency.max_hours_between_posts == 9
        async with api.engine.db.connect() as conn:
            row = (await conn.execute(sa.select(agents_table.c.config, agents_table.c.version)
                                      .where(agents_table.c.id == "nova"))).one()
        assert row.config["name"] == "Nova Prime" and row.version == 2
        assert (await api.get("/agents")).json()["items"][2]["name"] == "Nova Prime"

        # the engine kept running: a post requested now still goes out
        accepted = (await api.post("/agents/nova/post", json={})).json()
        await eventually(lambda: _event_done(api, accepted["event_id"]))

        await api.post("/agents/coby/stop")
        coby = (await api.get("/agents/coby")).json()["config"]
        assert (await api.put("/agents/coby/config", json={**coby, "name": "Coby II"})).json()["running"] is False


async def _event_done(api, event_id: int):  # type: ignore[no-untyped-def]
    page = (await api.get("/events", params={"type": "post.manual"})).json()
    return any(e["id"] == event_id and e["status"] == "done" for e in page["items"])


async def test_config_update_errors(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        config = (await api.get("/agents/nova")).json()["config"]
        bad = {**config, "behavior": {"post_frequency": {"min_hours_between_posts": "often"}}}
        error = assert_error(await api.put("/agents/nova/config", json=bad), 422, "invalid_config")
        assert "min_hours_between_posts" in error["details"][0]["message"]
        assert_error(await api.put("/agents/nova/config", json={**config, "id": "coby"}), 422)
        assert_error(await api.put("/agents/nova/config", json=[1, 2]), 422)
        assert_error(await api.put("/agents/zed/config", json=config), 404)
        assert api.engine.manager.agents["nova"].config.name == "Nova"


async def test_trade_requests(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        error = assert_error(await api.post("/agents/coby/trade", json={"input": "SOL", "output": "USDC",
                                                                         "amount_sol": 0.01}), 409, "conflict")
        assert "trading is not enabled" in error["message"]
        assert_error(await api.post("/agents/ledger/trade", json={"input": "SOL", "output": "USDC",
                                                                   "amount_sol": -1}), 422)
        assert_error(await api.post("/agents/ledger/trade", json={"input": "SOL", "amount_sol": 1}), 422)
        response = await api.post("/agents/ledger/trade", key=CONTROL,
                                  json={"input": "SOL", "output": "USDC", "amount_sol": 0.01})
        assert response.status_code == 202, response.text
        assert response.json()["type"] == "trade.manual"

        async def recorded():  # type: ignore[no-untyped-def]
            page = (await api.get("/trading/ledger/transactions")).json()
            settled = page["total"] and page["items"][0]["status"] not in ("pending", "sent")
            return page["items"] if settled else None

        [trade] = await eventually(recorded, timeout=30)  # confirmed, or stopped by a risk rule: audited either way
        assert trade["amount_sol"] == 0.01 and trade["status"] in ("confirmed", "rejected", "failed", "dry-run")
        stats = (await api.get("/trading/ledger/stats")).json()
        assert stats["total"] == 1 and stats["by_status"] == {trade["status"]: 1}
        if trade["status"] == "confirmed":
            assert stats["volume_sol"] == 0.01 and trade["signature"]
        balance = (await api.get("/trading/ledger/balance")).json()
        assert balance["sol"] > 0 and balance["wallet_address"]
        series = (await api.get("/trading/ledger/portfolio", params={"hours": 1, "points": 5})).json()
        assert len(series) == 5 and series[0]["at"] < series[-1]["at"]


async def test_timeline_and_mentions_pages(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        for text in ("Robots learning to juggle is my new favourite genre of video.",
                     "Hot take: every gadget should ship with a tiny confetti cannon.",
                     "Spent the morning benchmarking toasters. Science is delicious."):
            await api.post("/agents/nova/post", json={"text": text})
        await eventually(lambda: _posts(api, "nova", 3))
        page = (await api.get("/agents/nova/timeline", params={"limit": 2})).json()
        assert page["total"] >= 3 and len(page["items"]) == 2
        assert page["items"][0]["id"] > page["items"][1]["id"]  # newest first
        mentions = (await api.get("/agents/nova/mentions")).json()
        assert set(mentions) == {"items", "total", "limit", "offset"}
        assert all("author_id" not in m for m in mentions["items"])


async def test_trade_amounts_are_numbers_in_sol_and_operator_trades_say_so(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        for bad in (True, "0.01", None, [0.01], {"sol": 0.01}, "NaN"):
            error = assert_error(await api.post("/agents/ledger/trade", json={"input": "SOL", "output": "USDC",
                                                                                "amount_sol": bad}), 422)
            assert "body.amount_sol" in error["message"], (bad, error)
        response = await api.post("/agents/ledger/trade", key=CONTROL,
                                  json={"input": "USDC", "output": "SOL", "amount_sol": 0.04})
        assert response.status_code == 202, response.text

        async def settled():  # type: ignore[no-untyped-def]
            async with api.engine.db.connect() as conn:
                found = (await conn.execute(sa.select(trades).where(trades.c.agent_id == "ledger"))).all()
            return [r._mapping for r in found if r.status not in ("pending", "sent")]

        [trade] = await eventually(settled, timeout=30)
        assert trade["checks"]["source"] == "operator"  # the audit trail names who asked
        assert trade["amount_sol"] == pytest.approx(0.04, rel=0.02)  # 0.04 SOL's worth of USDC, not 0.04 USDC
        assert int(trade["in_amount"]) > 1_000_000


class HeldSandbox(Sandbox):
    """A sandbox that comes up only when told (services slow to start)."""

    def __init__(self) -> None:
        super().__init__(SandboxConfig())
        self.go = asyncio.Event()

    async def start(self) -> None:
        await self.go.wait()
        await super().start()


async def test_agents_are_starting_until_connected_and_actions_wait_for_them(tmp_path: Path) -> None:
    """As ``puppet-engine run`` does: the API answers while the services start and the agents
    connect their accounts; meanwhile agents are ``starting`` and accept actions."""
    sandbox = HeldSandbox()
    engine = Engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'api.db'}",  # type: ignore[call-arg]
                             embedder="hashing"), EngineOptions(agents=example_configs(), sandbox=sandbox, seed=11))
    connected = asyncio.Event()

    async def slow_connection(_agent: object) -> None:  # X taking its time to answer users/me
        await connected.wait()

    engine.manager.ready_hooks.insert(0, slow_connection)
    await engine.db.migrate()
    app = create_app(engine, keys=KeyRing.parse(KEYS), feed_interval=0.1)
    starting = asyncio.create_task(engine.start())
    runner = None
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
            api = Harness(engine, app, client)

            async def listed(status: str, n: int = 3):  # type: ignore[no-untyped-def]
                items = (await api.get("/agents")).json()["items"]
                return items if sum(a["status"] == status for a in items) == n else None

            # 1. the services (here the sandbox) are still coming up: no agent is built yet
            items = await eventually(lambda: listed("starting"))
            assert all(a["running"] is False and a["status_reason"] is None for a in items)
            assert [a["name"] for a in items] == ["Coby", "Ledger", "Nova"] and not engine.manager.agents
            assert (await api.get("/agents/coby")).json()["status"] == "starting"
            early = await api.post("/agents/coby/post", key=CONTROL, json={"text": "Up before the kettle."})
            assert early.status_code == 202, early.text
            stopped = (await api.post("/agents/nova/stop", key=CONTROL)).json()
            assert stopped["status"] == "stopped" and stopped["running"] is False
            error = assert_error(await api.post("/agents/nova/post", json={}), 409, "conflict")
            assert "stopped" in error["message"]

            # 2. the agents are built and connecting their accounts
            sandbox.go.set()
            async def built():  # type: ignore[no-untyped-def]
                return len(engine.manager.agents) == 3 and await listed("starting", 2)

            await eventually(built)
            later = await api.post("/agents/ledger/post", key=CONTROL, json={"text": "vol flat. liq thin."})
            assert later.status_code == 202, later.text
            assert (await api.get("/agents/nova")).json()["status"] == "stopped"

            connected.set()
            await starting
            runner = asyncio.create_task(engine.run())
            statuses = {a["id"]: a["status"] for a in (await api.get("/agents")).json()["items"]}
            assert statuses == {"coby": "running", "ledger": "running", "nova": "stopped"}
            for accepted, agent_id, text in ((early, "coby", "Up before the kettle."),
                                             (later, "ledger", "vol flat. liq thin.")):
                await eventually(lambda a=accepted: _event_done(api, a.json()["event_id"]))
                [action] = (await api.get(f"/agents/{agent_id}/timeline", params={"kind": "post"})).json()["items"]
                assert action["payload"]["text"] == text
        async with engine.db.connect() as conn:  # stopped before its row existed: the stop holds
            enabled = (await conn.execute(sa.select(agents_table.c.enabled)
                                          .where(agents_table.c.id == "nova"))).scalar()
        assert enabled is False
    finally:
        sandbox.go.set()
        connected.set()
        if not starting.done():
            await starting
        await engine.stop()
        if runner is not None:
            await asyncio.wait_for(runner, timeout=30)


async def test_a_refused_config_update_leaves_the_agent_as_it_was(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        before = (await api.get("/agents/ledger")).json()
        runtime = api.engine.manager.agents["ledger"]
        config = before["config"]
        bad = {**config, "name": "Ledger II",
               "solana_integration": {**config["solana_integration"], "private_key": "not-a-key"}}
        error = assert_error(await api.put("/agents/ledger/config", json=bad), 400, "invalid_config")
        assert "private_key" in error["message"] and "not-a-key" not in error["message"]

        after = (await api.get("/agents/ledger")).json()
        assert after["running"] is True and after["status"] == "running"
        assert after["config"] == config and after["name"] == "Ledger"
        assert api.engine.manager.agents["ledger"] is runtime  # the running runtime was never touched
        async with api.engine.db.connect() as conn:
            row = (await conn.execute(sa.select(agents_table.c.enabled, agents_table.c.version)
                                      .where(agents_table.c.id == "ledger"))).one()
        assert row.enabled is True and row.version == 1
        accepted = (await api.post("/agents/ledger/post", json={})).json()  # and it still acts
        await eventually(lambda: _event_done(api, accepted["event_id"]))

        good = (await api.put("/agents/ledger/config", json={**config, "name": "Ledger II"})).json()
        assert good["status"] == "running" and good["name"] == "Ledger II"
