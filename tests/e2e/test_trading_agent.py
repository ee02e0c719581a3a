"""A trading agent end to end on the sandbox chain: scheduled and operator trades, limits, no repeats."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.events import Event
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.storage.tables import actions, trades

from .test_mention_replies import make_engine, persona, run_for

HOUR = 3600.0


def trader(agent_id: str = "ledgy") -> dict:
    data = persona(agent_id)
    data["solana_integration"] = {"trading_enabled": True, "network": "sandbox",
                                  "trade_safety": {"max_trade_amount_sol": 0.2, "min_wallet_balance_sol": 0.5,
                                                   "max_slippage_percent": 2.0}}
    data["agent_kit_integration"] = {"enabled": True, "autonomy_rules": {"max_daily_trades": 6,
                                                                         "max_single_trade_amount_sol": 0.2}}
    data["behavior"]["trading_behavior"] = {
        "trading_frequency": {"min_hours_between_trades": 1, "max_hours_between_trades": 2, "random_probability": 1.0},
        "trade_tweet_probability": 1.0,
        "allowed_tokens": {"always_tradable": ["SOL", "USDC"]},
    }
    return data


async def test_operator_trade_moves_balances_and_limits_reject_with_the_rule(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, Sandbox(SandboxConfig(seed=3), clock=clock), trader())
    await engine.start()
    agent = engine.manager.get("ledgy")
    before = await agent.trader.wallet.balances()
    await engine.events.schedule(Event("trade.manual", "ledgy", {"input": "SOL", "output": "USDC", "amount_sol": 0.1},
                                       key="op-1", due_at=clock.now()))
    await engine.events.schedule(Event("trade.manual", "ledgy", {"input": "SOL", "output": "USDC", "amount_sol": 3.0},
                                       key="op-2", due_at=clock.now()))
    await run_for(engine, clock, 60)
    async with engine.db.connect() as conn:
        rows = {r.key: r for r in (await conn.execute(sa.select(trades))).fetchall()}
    ok, too_big = rows["manual-trade:ledgy:op-1"], rows["manual-trade:ledgy:op-2"]
    assert ok.status == "confirmed", ok.error
    assert too_big.status == "rejected" and too_big.rule is not None
    after = await agent.trader.wallet.balances()
    from puppet_engine.solana import USDC_MINT

    assert after.amount(USDC_MINT) > before.amount(USDC_MINT)
    assert after.sol < before.sol
    await engine.stop()


async def test_scheduled_trading_over_a_day_never_repeats_a_trade(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=5), clock=clock)
    engine = make_engine(sqlite_url, sandbox, trader())
    await engine.start()
    await run_for(engine, clock, 12 * HOUR)
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(trades.c.key, trades.c.status, trades.c.signature))).fetchall()
        kinds = [r[0] for r in await conn.execute(sa.select(actions.c.kind))]
    assert rows, "a trader with random_probability 1 trades within 12 hours"
    signatures = [r.signature for r in rows if r.signature]
    assert len(signatures) == len(set(signatures))
    assert len({r.key for r in rows}) == len(rows)
    assert sum(r.status == "confirmed" for r in rows) <= 6  # max_daily_trades
    assert "trade" in kinds
    await engine.stop()
