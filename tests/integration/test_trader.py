"""SolanaTrader end to end against the sandbox (RPC + Jupiter on loopback) and a real database."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable

import httpx2
import pytest
import sqlalchemy as sa
from solders.keypair import Keypair

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import ConfigError
from puppet_engine.events import Action
from puppet_engine.persona import AgentConfig
from puppet_engine.sandbox import Sandbox
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.solana import SandboxEndpoints, build_trader, fund_sandbox_wallet, parse_keypair
from puppet_engine.solana.jupiter import JupiterAPI
from puppet_engine.solana.risk import RiskLimits
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import (
    SANDBOX_TOKENS,
    SOL_MINT,
    USDC_MINT,
    TokenRegistry,
    sandbox_mint,
)
from puppet_engine.solana.trader import SolanaTrader, TradeExecutor
from puppet_engine.solana.wallet import SolanaWallet, sandbox_keypair
from puppet_engine.storage.tables import price_samples, trades

GLITCH = sandbox_mint("GLITCH")
PUPPET = sandbox_mint("PUPPET")
LIMITS = RiskLimits(trading_enabled=True, max_trade_amount_sol=0.5, max_single_trade_amount_sol=0.5,
                    min_wallet_balance_sol=0.1, max_daily_trades=10, max_slippage_percent=1.0,
                    always_tradable=("SOL", "USDC", "PUPPET", "GLITCH"))

Hook = Callable[[httpx2.Request], Awaitable[httpx2.Response | None]]


class Tap(httpx2.AsyncBaseTransport):
    """A real transport with a hook that sees each request (and may answer it instead of the server)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.hook: Hook | None = None
        self.rpc_methods: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/solana"):
            self.rpc_methods.append(json.loads(request.content)["method"])
        if self.hook is not None:
            answer = await self.hook(request)
            if answer is not None:
                return answer
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def env(database):
    clock = VirtualClock()
    sandbox = Sandbox(clock=clock)
    server = BackgroundServer(sandbox.app)
    await server.start()
    tap = Tap()
    http = httpx2.AsyncClient(transport=tap, timeout=10)
    admin = httpx2.AsyncClient(base_url=server.url)
    keypair = sandbox_keypair("trader-test")
    await admin.post("/sandbox/solana/airdrop", json={"address": str(keypair.pubkey()), "sol": 3})

    def make(**overrides) -> SolanaTrader:
        rpc = SolanaRpc(f"{server.url}/solana", http=http)
        jupiter = JupiterAPI(f"{server.url}/jupiter/swap/v1", http=http, clock=clock)
        options = {"limits": LIMITS, "clock": clock, "registry": TokenRegistry(SANDBOX_TOKENS),
                   "confirm_poll_seconds": 0.0, **overrides}
        return SolanaTrader("trader-test", SolanaWallet(keypair, rpc), jupiter, database, **options)

    try:
        yield make, admin, tap, clock, database
    finally:
        await http.aclose()
        await admin.aclose()
        await server.stop()


async def row(db, key: str):
    async with db.connect() as conn:
        return (await conn.execute(sa.select(trades).where(trades.c.key == key))).one()._mapping


async def test_sol_to_usdc_and_back_moves_balances_as_recorded(env):
    make, _, _, _, db = env
    trader = make()
    lamports0 = await trader.wallet.lamports()
    bought = await trader.execute_trade("SOL", "USDC", 0.25, key="t1", reasoning="test")
    assert bought.status == "confirmed" and bought.ok, bought.error
    usdc = await trader.wallet.token_balance(USDC_MINT)
    assert usdc.amount == bought.out_amount and usdc.decimals == 6
    recorded = await row(db, "t1")
    quote = recorded["quote"]
    assert int(quote["otherAmountThreshold"]) <= bought.out_amount  # within slippage of the quote
    assert recorded["signature"] == bought.signature and recorded["fee_lamports"] > 0
    assert recorded["last_valid_block_height"] > 0 and recorded["reasoning"] == "test"
    assert {c["rule"] for c in recorded["checks"]["checks"]} >= {"max_trade_amount_sol", "max_price_impact_percent"}
    rent = 2_039_280
    assert lamports0 - await trader.wallet.lamports() == 250_000_000 + bought.fee_lamports + rent

    lamports1 = await trader.wallet.lamports()
    sold = await trader.execute_trade("USDC", "SOL", usdc.ui_amount, key="t2")
    assert sold.status == "confirmed", sold.error
    assert (await trader.wallet.token_balance(USDC_MINT)).amount == 0
    assert await trader.wallet.lamports() - lamports1 == sold.out_amount - sold.fee_lamports
    assert 0.24 < sold.amount_out < 0.25  # pool fees both ways
    assert "swapped" in sold.summary()


async def test_token_2022_trade_uses_its_decimals(env):
    make, *_ = env
    trader = make()
    result = await trader.execute_trade("SOL", "GLITCH", 0.1, key="g1")
    assert result.status == "confirmed", result.error
    held = await trader.wallet.token_balance(GLITCH)
    assert held.decimals == 8 and held.program_id == "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
    assert held.amount == result.out_amount and held.ui_amount == pytest.approx(result.amount_out)
    assert 4_000 < result.amount_out < 5_000  # 0.1 SOL ≈ $15 at ≈ $0.0031


async def test_rejections_are_recorded_with_their_rule(env):
    make, admin, tap, _, db = env
    trader = make(limits=RiskLimits(**{**LIMITS.__dict__, "max_daily_trades": 1}))
    too_big = await trader.execute_trade("SOL", "USDC", 0.8, key="r1")
    assert (too_big.status, too_big.rule) == ("rejected", "max_trade_amount_sol")
    human = await trader.execute_trade("SOL", "USDC", 0.1, key="r2", source="human")
    assert human.rule == "human_request"
    not_allowed = await trader.execute_trade("SOL", "WOOF", 0.1, key="r3")
    assert not_allowed.rule == "token_not_allowed"
    unknown = await trader.execute_trade("SOL", "NOPE", 0.1, key="r4")
    assert unknown.rule == "unknown_token"
    await admin.post("/sandbox/jupiter/tokens/PUPPET/delist")
    delisted = await trader.execute_trade("SOL", "PUPPET", 0.1, key="r5")
    assert (delisted.status, delisted.rule) == ("rejected", "token_not_tradable")
    assert "sendTransaction" not in tap.rpc_methods
    first = await trader.execute_trade("SOL", "USDC", 0.1, key="r6")
    assert first.status == "confirmed"
    second = await trader.execute_trade("SOL", "USDC", 0.1, key="r7")
    assert second.rule == "max_daily_trades"  # counted from the trades table
    async with db.connect() as conn:
        statuses = dict((await conn.execute(sa.select(trades.c.key, trades.c.status))).all())
    assert statuses == {"r1": "rejected", "r2": "rejected", "r3": "rejected", "r4": "rejected", "r5": "rejected",
                        "r6": "confirmed", "r7": "rejected"}


def move_price_before_swap(admin: httpx2.AsyncClient, tap: Tap, price: float) -> None:
    """SOL drops to ``price`` between the quote and the swap build."""
    async def hook(request: httpx2.Request) -> None:
        if request.url.path.endswith("/swap/v1/swap"):
            await admin.post("/sandbox/jupiter/prices", json={"symbol": "SOL", "price": price})
            tap.hook = None
    tap.hook = hook


async def test_slippage_failure_is_recorded_as_failed(env):
    make, admin, tap, _, db = env
    careful = make()
    move_price_before_swap(admin, tap, 135.0)
    result = await careful.execute_trade("SOL", "USDC", 0.2, key="s1")
    assert result.status == "failed" and "simulation failed, not sent" in result.error
    assert "sendTransaction" not in tap.rpc_methods
    assert (await row(db, "s1"))["simulation"]["err"] is not None

    hasty = make(simulate=False)  # skip our own simulation: the chain itself refuses the swap
    move_price_before_swap(admin, tap, 120.0)
    lamports = await hasty.wallet.lamports()
    result = await hasty.execute_trade("SOL", "USDC", 0.2, key="s2")
    assert result.status == "failed" and "failed on chain: slippage tolerance exceeded" in result.error
    assert result.fee_lamports and await hasty.wallet.lamports() == lamports - result.fee_lamports
    assert (await hasty.wallet.token_balance(USDC_MINT)).amount == 0


async def test_lost_send_reply_and_restart_never_trade_twice(env):
    make, _, tap, _, db = env

    async def lose_send_reply(request: httpx2.Request) -> httpx2.Response | None:
        if request.url.path.startswith("/solana") and json.loads(request.content)["method"] == "sendTransaction":
            await tap.inner.handle_async_request(request)  # the node gets it …
            return httpx2.Response(502, text="Bad Gateway", request=request)  # … the reply is lost
        return None

    tap.hook = lose_send_reply
    trader = make()
    result = await trader.execute_trade("SOL", "USDC", 0.2, key="f1")
    assert result.status == "confirmed", result.error
    assert tap.rpc_methods.count("sendTransaction") == 1  # found on chain: no rebroadcast needed
    assert (await trader.wallet.token_balance(USDC_MINT)).amount == result.out_amount

    async def crash_after_send(request: httpx2.Request) -> httpx2.Response | None:
        if not request.url.path.startswith("/solana"):
            return None
        method = json.loads(request.content)["method"]
        if method == "sendTransaction":
            await tap.inner.handle_async_request(request)
            return httpx2.Response(502, text="Bad Gateway", request=request)
        if method in ("getSignatureStatuses", "getBlockHeight"):
            return httpx2.Response(503, text="Service Unavailable", request=request)
        return None

    tap.hook = crash_after_send
    flaky = make(max_confirm_polls=3)
    usdc_before = (await flaky.wallet.token_balance(USDC_MINT)).amount
    unknown = await flaky.execute_trade("SOL", "USDC", 0.2, key="f2")
    assert unknown.status == "pending" and unknown.signature  # outcome unknown, signature on record
    tap.hook = None
    sends = tap.rpc_methods.count("sendTransaction")

    restarted = make()
    settled = await restarted.reconcile()
    assert [(r.key, r.status) for r in settled] == [("f2", "confirmed")]
    again = await restarted.execute_trade("SOL", "USDC", 0.2, key="f2")
    assert again.status == "confirmed" and again.signature == unknown.signature
    assert tap.rpc_methods.count("sendTransaction") == sends  # nothing sent on restart
    assert (await restarted.wallet.token_balance(USDC_MINT)).amount == usdc_before + again.out_amount
    assert (await row(db, "f2"))["status"] == "confirmed"


async def test_dry_run_simulates_and_sends_nothing(env):
    make, _, tap, _, _ = env
    trader = make(mode="dry-run")
    lamports = await trader.wallet.lamports()
    result = await trader.execute_trade("SOL", "USDC", 0.2, key="d1")
    assert result.status == "dry-run" and result.ok
    assert "simulateTransaction" in tap.rpc_methods and "sendTransaction" not in tap.rpc_methods
    assert await trader.wallet.lamports() == lamports


async def test_market_analysis_and_a_rule_based_trade(env):
    make, admin, _, clock, db = env
    trader = make()
    await admin.post("/sandbox/jupiter/prices", json={"symbol": "PUPPET", "drift": 6.0, "volatility": 0.05})
    for _ in range(8):
        clock.advance(3600)
        analysis = await trader.analyze_market()
    puppet = analysis.stats("PUPPET")
    assert puppet.trend == "up" and puppet.momentum > 0 and puppet.samples >= 8
    assert PUPPET in analysis.trending and analysis.sol_price_usd > 0
    assert "PUPPET" in analysis.summary()
    async with db.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(price_samples))).scalar()
    assert count >= 8 * len(SANDBOX_TOKENS)
    result = await trader.consider_trade(random.Random(3), key="c1", reasoning="scheduled check")
    assert result is not None and result.status == "confirmed", result and result.error
    assert (result.input_mint, result.output_mint) == (SOL_MINT, PUPPET)
    assert "PUPPET" in (result.reasoning or "")
    assert await trader.consider_trade(random.Random(3), key="c1") == result  # same key: same trade


async def test_build_trader_from_an_agent_config(env, monkeypatch):
    _, admin, _, clock, db = env
    config = AgentConfig.model_validate({
        "id": "coby-agent", "timezone": "America/New_York",
        "solana_integration": {"trading_enabled": True, "trading_mode": "dry-run",
                               "trade_safety": {"max_trade_amount_sol": 0.2}},
        "behavior": {"trading_behavior": {"allowed_tokens": {"always_tradable": ["SOL", "USDC", "GLITCH"]}}},
    })
    secret = Keypair()
    monkeypatch.setenv("SOLANA_PRIVATE_KEY_COBY_AGENT", json.dumps(list(bytes(secret))))
    sandbox = SandboxEndpoints(str(admin.base_url))
    async with httpx2.AsyncClient() as http:
        trader = build_trader(config, settings=Settings(), db=db, clock=clock, http=http, sandbox=sandbox)
        assert trader is not None and trader.wallet.address == str(secret.pubkey())
        assert trader.mode == "dry-run" and trader.limits.max_trade_amount_sol == 0.2
        assert str(secret) not in repr(trader) and repr(trader.wallet) == f"SolanaWallet({secret.pubkey()})"
        await fund_sandbox_wallet(http, sandbox, trader.wallet.address, sol=2, usdc=20)
        balances = await trader.wallet.balances()
        assert balances.sol == 2.0 and balances.amount(USDC_MINT) == 20.0
        result = await trader.execute_trade("USDC", "GLITCH", 5, key="b1")
        assert result.status == "dry-run", result.error
    assert build_trader(AgentConfig.model_validate({"id": "calm"}), settings=Settings(), db=db, clock=clock) is None

    assert parse_keypair(str(secret)).pubkey() == secret.pubkey()  # base58 64-byte form
    with pytest.raises(ConfigError) as bad:
        parse_keypair("not-a-key-0OIl", source="SOLANA_PRIVATE_KEY_X")
    assert "SOLANA_PRIVATE_KEY_X" in str(bad.value) and "0OIl" not in str(bad.value)


def action(key: str, payload: dict) -> Action:
    return Action(id=1, key=key, agent_id="trader-test", kind="trade", payload=payload, status="sending",
                  external_id=None, attempts=0, not_before=0.0, error=None, event_id=None, result=None,
                  created_at=0.0, updated_at=0.0)


async def test_the_executor_records_who_asked_for_a_trade(env):
    make, *_, db = env
    executor = TradeExecutor(make())
    trade = {"input": "SOL", "output": "USDC", "amount": 0.05}
    await executor.execute(action("s1", {**trade, "source": "operator"}))
    await executor.execute(action("s2", {**trade, "source": "autonomous"}))
    await executor.execute(action("s3", {**trade, "source": "human"}))
    await executor.execute(action("s4", {**trade, "source": "mallory"}))  # unknown: the least trusted
    recorded = {key: await row(db, key) for key in ("s1", "s2", "s3", "s4")}
    assert {key: r["checks"]["source"] for key, r in recorded.items()} == {
        "s1": "operator", "s2": "autonomous", "s3": "human", "s4": "human"}
    assert recorded["s1"]["status"] == "confirmed" and recorded["s2"]["status"] == "confirmed"
    assert (recorded["s3"]["status"], recorded["s3"]["rule"]) == ("rejected", "human_request")
    assert (recorded["s4"]["status"], recorded["s4"]["rule"]) == ("rejected", "human_request")


async def test_an_amount_in_sol_sells_that_much_sols_worth_of_another_token(env):
    make, _, tap, _, db = env
    trader = make()
    assert (await trader.execute_trade("SOL", "USDC", 0.25, key="buy")).status == "confirmed"
    executor = TradeExecutor(trader)
    await executor.execute(action("in-sol", {"input": "USDC", "output": "SOL", "amount": 0.04, "unit": "sol",
                                             "source": "operator"}))
    sized = await row(db, "in-sol")
    assert sized["status"] == "confirmed", sized["error"]
    assert sized["amount_sol"] == pytest.approx(0.04, rel=0.01)
    assert int(sized["in_amount"]) > 1_000_000  # dollars of USDC (6 decimals), not 0.04 USDC
    assert 0.038 < int(sized["out_amount"]) / 1e9 < 0.0401  # about 0.04 SOL back, less pool fees
    await executor.execute(action("in-usdc", {"input": "USDC", "output": "SOL", "amount": 2.0}))
    assert (await row(db, "in-usdc"))["in_amount"] == "2000000"  # without a unit: whole input tokens

    async def no_prices(request: httpx2.Request) -> httpx2.Response | None:
        return httpx2.Response(200, json={}) if "/price" in request.url.path else None

    tap.hook = no_prices
    unpriced = await trader.execute_trade("USDC", "SOL", 0.04, key="unpriced", unit="sol", source="operator")
    assert (unpriced.status, unpriced.rule) == ("rejected", "no_price")
