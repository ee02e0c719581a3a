"""Every runtime setting of ``PUT /config`` takes effect as documented, without a restart,
outlives a restart, and reaches another process sharing the database.

A real engine on SQLite with the example agents and the in-process sandbox (chain, LLM, X).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from api_helpers import (
    ADMIN,
    KEYS,
    assert_error,
    auth,
    build_engine,
    eventually,
    harness,
    running_engine,
)

from puppet_engine.api import KeyRing, create_app
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import events, llm_calls, runtime_settings

TRADE = {"input": "SOL", "output": "USDC", "amount_sol": 0.01}


async def _trade(api: Any) -> dict[str, Any]:
    """An operator trade for ledger, waited for until it settles; its audit row."""
    before = (await api.get("/trading/ledger/transactions")).json()["total"]
    accepted = await api.post("/agents/ledger/trade", json=TRADE)
    assert accepted.status_code == 202, accepted.text

    async def settled():  # type: ignore[no-untyped-def]
        page = (await api.get("/trading/ledger/transactions")).json()
        newest = page["items"][0] if page["total"] > before else None
        return newest if newest and newest["status"] not in ("pending", "sent") else None

    return await eventually(settled, timeout=60)  # type: ignore[no-any-return]


async def _on_chain(api: Any, signature: str) -> Any:
    sandbox = api.engine.options.sandbox
    rpc = await api.engine.wiring.http.post("http://sandbox.local/solana", json={
        "jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
        "params": [[signature], {"searchTransactionHistory": True}]})
    assert sandbox is not None and rpc.status_code == 200, rpc.text
    return rpc.json()["result"]["value"][0]


async def test_trading_mode_kill_switch_acts_before_the_next_trade(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        live = await _trade(api)
        assert live["status"] == "confirmed", live
        assert await _on_chain(api, live["signature"]) is not None

        switched = await api.put("/config", json={"trading_mode": "dry-run"})
        assert switched.status_code == 200 and switched.json()["trading_mode"] == "dry-run", switched.text
        stopped = await _trade(api)  # no restart in between
        assert stopped["status"] == "dry-run", stopped
        assert stopped["signature"] and await _on_chain(api, stopped["signature"]) is None  # signed, never sent
        assert api.engine.manager.agents["ledger"].trader.mode == "dry-run"

        assert (await api.put("/config", json={"trading_mode": "live"})).status_code == 200
        again = await _trade(api)
        assert again["status"] == "confirmed", again


async def test_runtime_settings_outlive_a_restart(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        changed = await api.put("/config", json={"trading_mode": "dry-run", "llm_daily_token_budget": 5000,
                                                 "engine_concurrency": 3, "mention_poll_seconds": 45})
        assert changed.status_code == 200, changed.text
        async with api.engine.db.connect() as conn:
            rows = dict((await conn.execute(sa.select(runtime_settings.c.name, runtime_settings.c.value))).all())
            who = (await conn.execute(sa.select(runtime_settings.c.updated_by))).scalars().all()
        assert rows == {"trading_mode": "dry-run", "llm_daily_token_budget": 5000, "engine_concurrency": 3,
                        "mention_poll_seconds": 45.0}
        assert set(who) == {next(iter(who))} and next(iter(who)).startswith("admin:")  # the key's label, not the key
    async with harness(tmp_path) as api:  # a new engine on the same database, environment unchanged
        config = (await api.get("/config")).json()
        assert (config["trading_mode"], config["llm_daily_token_budget"]) == ("dry-run", 5000)
        assert api.engine.events.concurrency == 3 and api.engine.services.mention_poll_seconds == 45
        assert (await _trade(api))["status"] == "dry-run"


async def test_a_change_made_through_another_process_applies_before_the_next_trade(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        # Another engine process on the same database receives the operator's PUT /config.
        other = build_engine(tmp_path, configs=[])
        async with running_engine(other):
            app = create_app(other, keys=KeyRing.parse(KEYS))
            async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://b") as b:
                put = await b.put("/config", headers=auth(ADMIN), json={"trading_mode": "dry-run"})
                assert put.status_code == 200, put.text
            # whether or not this process's refresh loop has run yet, the trader reads before sending
            assert (await _trade(api))["status"] == "dry-run"
        assert api.engine.runtime.trading_mode == "dry-run"
        assert (await api.get("/config")).json()["trading_mode"] == "dry-run"


async def test_daily_token_budget_applies_at_the_next_llm_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert (await api.get("/config")).json()["llm_daily_token_budget"] == 0  # a number, never "***"

        async def calls(outcome: str) -> int:
            async with api.engine.db.connect() as conn:
                q = sa.select(sa.func.count()).select_from(llm_calls).where(
                    llm_calls.c.agent_id == "coby", llm_calls.c.outcome == outcome)
                return int((await conn.execute(q)).scalar() or 0)

        await api.post("/agents/coby/post", json={"topic": "budgets"})
        await eventually(lambda: _positive(calls("ok")))
        spent = await calls("ok")

        updated = await api.put("/config", json={"llm_daily_token_budget": 1})
        assert updated.status_code == 200 and updated.json()["llm_daily_token_budget"] == 1, updated.text
        await api.post("/agents/coby/post", json={"topic": "more budgets"})
        await eventually(lambda: _positive(calls("skipped")))
        assert await calls("ok") == spent  # no fresh LLM call once the agent is past the budget

        await api.put("/config", json={"llm_daily_token_budget": 0})
        await api.post("/agents/coby/post", json={"topic": "unlimited again"})
        await eventually(lambda: _more(calls("ok"), spent))


async def test_engine_concurrency_bounds_the_events_run_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert (await api.put("/config", json={"engine_concurrency": 1})).status_code == 200
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, api.engine.events.in_flight)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            before = api.engine.events.processed
            for n in range(3):
                for agent in ("coby", "nova", "ledger"):
                    await api.post(f"/agents/{agent}/post", json={"text": f"concurrency check {agent} {n}"})
            await eventually(lambda: _at_least(api.engine.events.processed, before + 9), timeout=60)
        finally:
            watcher.cancel()
        assert peak == 1


async def test_event_max_attempts_applies_to_events_scheduled_from_then_on(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert (await api.put("/config", json={"event_max_attempts": 2})).status_code == 200
        accepted = (await api.post("/agents/nova/post", json={"topic": "attempts"})).json()
        async with api.engine.db.connect() as conn:
            limit = (await conn.execute(sa.select(events.c.max_attempts)
                                        .where(events.c.id == accepted["event_id"]))).scalar()
        assert limit == 2


async def test_mention_poll_seconds_sets_the_next_poll(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:  # the first polls are due within 5 s of the start
        assert (await api.put("/config", json={"mention_poll_seconds": 2})).status_code == 200

        async def polls() -> int:
            async with api.engine.db.connect() as conn:
                q = sa.select(sa.func.count()).select_from(events).where(
                    events.c.type == "mentions.poll", events.c.agent_id == "nova", events.c.status == "done")
                return int((await conn.execute(q)).scalar() or 0)

        # the default interval (60 s) would allow one poll in this time; every 2 s gives several
        await eventually(lambda: _at_least_async(polls(), 3), timeout=20)


async def test_log_level_applies_at_once_and_bad_values_are_refused(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        try:
            assert (await api.put("/config", json={"log_level": "debug"})).status_code == 422  # exact names only
            assert (await api.put("/config", json={"log_level": "DEBUG"})).status_code == 200
            assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
            assert (await api.get("/config")).json()["log_level"] == "DEBUG"
        finally:
            await api.put("/config", json={"log_level": "INFO"})
        assert logging.getLogger().getEffectiveLevel() == logging.INFO
        error = assert_error(await api.put("/config", json={"database_url": "sqlite:///x.db"}), 422)
        assert error["details"][0]["field"] == "body.database_url"
        assert_error(await api.put("/config", json={"trading_mode": "yolo"}), 422)
        async with api.engine.db.connect() as conn:
            stored = dict((await conn.execute(sa.select(runtime_settings.c.name, runtime_settings.c.value))).all())
        assert stored == {"log_level": "INFO"}  # refused values were never persisted


def test_only_credentials_are_masked_in_get_config() -> None:
    from puppet_engine.api.routes.system import public_settings

    settings = Settings(_env_file=None, openai_api_key="sk-real", twitter_access_token="tok",  # type: ignore[call-arg]
                        llm_daily_token_budget=3691, solana_rpc_url="https://rpc.example/?api-key=abc123",
                        database_url="postgresql://u:pw@db/x")
    shown = public_settings(settings)
    assert shown["llm_daily_token_budget"] == 3691 and shown["engine_concurrency"] == 16
    assert shown["openai_api_key"] == shown["twitter_access_token"] == shown["sandbox_openai_key"] == "***"
    assert shown["twitter_bearer_token"] is None and shown["lease_ttl_seconds"] == 30.0
    assert "abc123" not in shown["solana_rpc_url"] and "pw" not in shown["database_url"]


async def _positive(value: Any) -> bool:
    return bool(await value > 0)


async def _more(value: Any, than: int) -> bool:
    return bool(await value > than)


async def _at_least(value: int, n: int) -> bool:
    return value >= n


async def _at_least_async(value: Any, n: int) -> bool:
    return bool(await value >= n)
