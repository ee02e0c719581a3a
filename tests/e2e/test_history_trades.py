"""Trades in the history: each status of a trade, and the wallet after a confirmed one, as state then."""

from __future__ import annotations

from puppet_engine.clock import VirtualClock
from puppet_engine.events import Event
from puppet_engine.history import state_at, timeline
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.solana import USDC_MINT

from .test_mention_replies import make_engine, run_for
from .test_trading_agent import trader


async def test_a_trade_and_the_wallet_after_it_are_in_the_state_then(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, Sandbox(SandboxConfig(seed=3), clock=clock), trader())
    await engine.start()
    try:
        before = clock.now()
        await engine.events.schedule(Event("trade.manual", "ledgy", {"input": "SOL", "output": "USDC",
                                                                     "amount_sol": 0.1}, key="op-1", due_at=before))
        await engine.events.schedule(Event("trade.manual", "ledgy", {"input": "SOL", "output": "USDC",
                                                                     "amount_sol": 3.0}, key="op-2", due_at=before))
        await run_for(engine, clock, 60)
        wallet = await engine.manager.get("ledgy").trader.wallet.balances()
        then = await state_at(engine.db, "ledgy", clock.now())
        earlier = await state_at(engine.db, "ledgy", before - 1)
        story = await timeline(engine.db, "ledgy", before - 1, clock.now())
    finally:
        await engine.stop()
    trades = {t["key"]: t for t in then["trades"]}
    assert trades["manual-trade:ledgy:op-1"]["status"] == "confirmed"
    refused = trades["manual-trade:ledgy:op-2"]
    assert refused["status"] == "rejected" and refused["rule"]
    assert then["balances"]["sol"] == wallet.sol
    assert then["balances"]["tokens"][USDC_MINT] == wallet.amount(USDC_MINT) > 0
    assert earlier["balances"] is None and earlier["trades"] == []
    changed = [e["text"] for e in story if e["what"] == "changed"]
    assert any(text.startswith("trade confirmed") for text in changed)
    assert any(text.startswith("trade rejected") and "rule" in text for text in changed)
    assert any(text.startswith("balances: ") for text in changed)
