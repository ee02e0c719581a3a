"""SQLite stays consistent in a process where the sandbox chain has executed transactions.

LiteSVM (solders 0.29) leaves the x87 registers marked in use after it executes a
transaction; ``long double`` arithmetic in that thread, and in every thread started
from it, then yields NaN. SQLite compares integers with reals in ``long double``,
so an engine inserting events after a sandbox swap built its ``(status, due_at)``
index out of order ("row 6 missing from index ix_events_status_due"), and the
event was never claimed. The ledger now clears that state after each execution.
"""

from __future__ import annotations

import httpx2
import numpy as np
import pytest
import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.sandbox import Sandbox
from puppet_engine.solana.jupiter import JupiterAPI
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import SOL_MINT, sandbox_mint
from puppet_engine.solana.wallet import SolanaWallet, sandbox_keypair
from puppet_engine.storage import Database
from puppet_engine.storage.tables import events

GLITCH = sandbox_mint("GLITCH")
DUE = 1_767_225_600.0  # a whole number: SQLite stores it as an integer in the index record


def long_double_sane() -> bool:
    """``long double`` comparisons (x87 on x86-64) as SQLite makes them."""
    return bool(np.longdouble(int(DUE)) < np.longdouble(DUE + 412.675887))


@pytest.fixture
async def chain():
    clock = VirtualClock()
    sandbox = Sandbox(clock=clock)
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url="http://sandbox", timeout=10)
    wallet = SolanaWallet(sandbox_keypair("integrity"), SolanaRpc("http://sandbox/solana", http=http))
    resp = await http.post("/sandbox/solana/airdrop", json={"address": wallet.address, "sol": 3})
    resp.raise_for_status()
    yield JupiterAPI("http://sandbox/jupiter/swap/v1", http=http, clock=clock), wallet
    await http.aclose()


async def swap(jupiter: JupiterAPI, wallet: SolanaWallet, *, send: bool) -> None:
    quote = await jupiter.quote(SOL_MINT, GLITCH, 10_000_000, slippage_bps=100)
    built = await jupiter.swap(quote, wallet.address, dynamic_compute_unit_limit=True)  # simulated on LiteSVM
    if send:
        await wallet.rpc.send(wallet.sign(built.transaction))  # executed on LiteSVM


async def test_long_double_survives_simulated_and_sent_swaps(chain):
    jupiter, wallet = chain
    assert long_double_sane()
    await swap(jupiter, wallet, send=False)
    assert long_double_sane(), "x87 state left in use after a simulated swap"
    await swap(jupiter, wallet, send=True)
    assert long_double_sane(), "x87 state left in use after a sent swap"


async def test_engine_indexes_stay_consistent_after_a_sandbox_swap(chain, sqlite_url):
    jupiter, wallet = chain
    await swap(jupiter, wallet, send=True)
    db = Database(sqlite_url)  # its connection threads start now, inheriting this thread's FPU state
    try:
        await db.migrate()
        dues = [DUE + 147.27, DUE + 0.018, DUE + 16090.68, DUE + 7502.68, DUE + 412.68, DUE, DUE + 1.0, DUE + 0.5]
        async with db.transaction() as conn:
            for i, due in enumerate(dues):
                await conn.execute(events.insert().values(
                    key=f"e{i}", type="post", agent_id="a", payload={}, due_at=due, status="pending",
                    attempts=0, max_attempts=5, created_at=DUE))
        async with db.connect() as conn:
            check = (await conn.exec_driver_sql("PRAGMA integrity_check")).scalars().all()
            due_order = (await conn.execute(
                sa.select(events.c.due_at).where(events.c.status == "pending").order_by(events.c.due_at)
            )).scalars().all()
        assert check == ["ok"]
        assert due_order == sorted(dues)
    finally:
        await db.close()
