"""The sandbox Jupiter API through the JupiterAPI client; swaps signed and sent with solana-py."""

from __future__ import annotations

import httpx2
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import MessageV0

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import ProviderError, RateLimited, TradeRejected
from puppet_engine.sandbox import Sandbox
from puppet_engine.serving import BackgroundServer
from puppet_engine.solana.jupiter import JupiterAPI, Quote
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT, sandbox_mint

SOL = 1_000_000_000
GLITCH = sandbox_mint("GLITCH")
PUPPET = sandbox_mint("PUPPET")


@pytest.fixture
async def env():
    sandbox = Sandbox(clock=VirtualClock())
    server = BackgroundServer(sandbox.app)
    await server.start()
    admin = httpx2.AsyncClient(base_url=server.url)
    rpc = AsyncClient(f"{server.url}/solana")
    jupiter = JupiterAPI(f"{server.url}/jupiter/swap/v1", api_key="test-key", http=httpx2.AsyncClient())
    try:
        yield admin, rpc, jupiter
    finally:
        await jupiter.http.aclose()
        await rpc.close()
        await admin.aclose()
        await server.stop()


async def wallet(admin: httpx2.AsyncClient, sol: float = 5.0, usdc: float = 0.0) -> Keypair:
    kp = Keypair()
    await admin.post("/sandbox/solana/airdrop", json={"address": str(kp.pubkey()), "sol": sol})
    if usdc:
        await admin.post("/sandbox/solana/mint", json={"owner": str(kp.pubkey()), "symbol": "USDC", "amount": usdc})
    return kp


async def holdings(admin: httpx2.AsyncClient, kp: Keypair) -> tuple[int, dict[str, int]]:
    body = (await admin.get(f"/sandbox/solana/balances/{kp.pubkey()}")).json()
    return body["lamports"], {t["mint"]: int(t["amount"]) for t in body["tokens"]}


async def run_swap(jupiter: JupiterAPI, rpc: AsyncClient, kp: Keypair, quote: Quote):
    swap = await jupiter.swap(quote, str(kp.pubkey()))
    msg = swap.transaction.message
    assert isinstance(msg, MessageV0) and msg.header.num_required_signatures == 1
    assert msg.account_keys[0] == kp.pubkey()  # the user is the fee payer and the only signer
    signed = type(swap.transaction)(msg, [kp])
    sig = (await rpc.send_raw_transaction(bytes(signed), TxOpts(skip_preflight=True))).value
    statuses = await rpc.confirm_transaction(sig, Confirmed, sleep_seconds=0,
                                             last_valid_block_height=swap.last_valid_block_height)
    tx = (await rpc.get_transaction(sig, commitment=Confirmed, max_supported_transaction_version=0)).value
    return statuses.value[0].err, tx.transaction.meta


async def test_quote_shape_and_rate_limit_headers(env):
    admin, _, jupiter = env
    resp = await admin.get("/jupiter/swap/v1/quote", params={"inputMint": SOL_MINT, "outputMint": USDC_MINT,
                                                             "amount": str(SOL), "slippageBps": "100"})
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["inAmount"], str) and isinstance(body["outAmount"], str)
    assert int(body["otherAmountThreshold"]) == int(body["outAmount"]) * 9_900 // 10_000
    step = body["routePlan"][0]
    assert step["percent"] == 100 and step["swapInfo"]["inputMint"] == SOL_MINT
    assert 0 <= float(body["priceImpactPct"]) < 0.01 and body["contextSlot"] > 0
    assert 140e6 < int(body["outAmount"]) < 150e6  # ~150 USDC less the 0.25 % fee
    for header in ("x-ratelimit-remaining", "x-ratelimit-current", "x-ratelimit-reset", "x-api-gateway-request-id"):
        assert header in resp.headers
    legacy = await admin.get("/jupiter/v6/quote", params={"inputMint": SOL_MINT, "outputMint": USDC_MINT,
                                                          "amount": "1000"})
    assert legacy.status_code == 200

    exact_out = await jupiter.quote(USDC_MINT, SOL_MINT, SOL // 10, swap_mode="ExactOut")
    assert exact_out.out_amount == SOL // 10 and exact_out.other_amount_threshold >= exact_out.in_amount
    two_hops = await jupiter.quote(GLITCH, SOL_MINT, 10**10)  # GLITCH/USDC then USDC/SOL
    assert len(two_hops.route) == 2


async def test_sol_to_usdc_and_back_moves_balances_as_quoted(env):
    admin, rpc, jupiter = env
    kp = await wallet(admin)
    quote = await jupiter.quote(SOL_MINT, USDC_MINT, SOL, slippage_bps=50)
    lamports0, tokens0 = await holdings(admin, kp)
    assert USDC_MINT not in tokens0
    err, meta = await run_swap(jupiter, rpc, kp, quote)
    assert err is None
    lamports1, tokens1 = await holdings(admin, kp)
    assert tokens1[USDC_MINT] == quote.out_amount  # nothing moved the pool in between
    rent = 2_039_280  # the new USDC account's rent; the wSOL account was opened and closed
    assert lamports0 - lamports1 == SOL + meta.fee + rent

    back = await jupiter.quote(USDC_MINT, SOL_MINT, tokens1[USDC_MINT])
    err, meta = await run_swap(jupiter, rpc, kp, back)
    assert err is None
    lamports2, tokens2 = await holdings(admin, kp)
    assert tokens2[USDC_MINT] == 0
    assert lamports2 - lamports1 == back.out_amount - meta.fee
    assert lamports2 < lamports0  # two pool fees and two transaction fees


async def test_token_2022_swap_has_its_own_decimals(env):
    admin, rpc, jupiter = env
    kp = await wallet(admin, usdc=50)
    quote = await jupiter.quote(USDC_MINT, GLITCH, 10 * 10**6)
    err, meta = await run_swap(jupiter, rpc, kp, quote)
    assert err is None
    _, tokens = await holdings(admin, kp)
    assert tokens[GLITCH] == quote.out_amount
    mine = [b for b in meta.post_token_balances if str(b.mint) == GLITCH and b.owner == kp.pubkey()]
    assert mine[0].ui_token_amount.decimals == 8
    assert str(mine[0].program_id) == "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
    assert 2_500 < quote.out_amount / 10**8 < 3_500  # ~$10 at ~$0.0031


async def test_price_moving_past_the_threshold_fails_on_chain(env):
    admin, rpc, jupiter = env
    kp = await wallet(admin)
    quote = await jupiter.quote(SOL_MINT, USDC_MINT, SOL, slippage_bps=50)
    await admin.post("/sandbox/jupiter/prices", json={"symbol": "SOL", "price": 140.0, "volatility": 0.0,
                                                      "drift": 0.0})  # −6.7 %, and no more random walk

    async def usdc_reserve() -> int:
        pools = (await admin.get("/sandbox/solana/pools")).json()["pools"]
        return int(next(p for p in pools if p["base"] == "SOL")["quote_reserve"])

    before = await usdc_reserve()
    err, meta = await run_swap(jupiter, rpc, kp, quote)
    assert err is not None and "InstructionError" in str(err)
    assert any("SlippageToleranceExceeded" in line for line in meta.log_messages)
    _, tokens = await holdings(admin, kp)
    assert tokens.get(USDC_MINT, 0) == 0
    assert await usdc_reserve() < before  # the output sits in the swap's escrow …
    await admin.post("/sandbox/solana/advance", json={"seconds": 65})
    assert await usdc_reserve() == before  # … and returns to the pool once the blockhash expired


async def test_errors_are_jupiter_shaped_and_typed(env):
    admin, _, jupiter = env
    with pytest.raises(TradeRejected) as same:
        await jupiter.quote(SOL_MINT, SOL_MINT, 1000)
    assert same.value.rule == "same_token"
    with pytest.raises(TradeRejected) as unknown:
        await jupiter.quote(SOL_MINT, str(Keypair().pubkey()), 1000)
    assert unknown.value.rule == "token_not_tradable"
    await admin.post("/sandbox/jupiter/tokens/PUPPET/delist")
    with pytest.raises(TradeRejected) as delisted:
        await jupiter.quote(USDC_MINT, PUPPET, 1000)
    assert delisted.value.rule == "token_not_tradable"
    assert PUPPET not in await jupiter.prices([PUPPET, USDC_MINT])
    await admin.post("/sandbox/jupiter/tokens/PUPPET/list")
    assert PUPPET in await jupiter.prices([PUPPET])
    with pytest.raises(TradeRejected) as no_route:
        await jupiter.quote(USDC_MINT, SOL_MINT, 10**9 * SOL, swap_mode="ExactOut")  # more SOL than the pool has
    assert no_route.value.rule == "no_route"

    bad = await admin.get("/jupiter/swap/v1/quote", params={"inputMint": SOL_MINT, "outputMint": USDC_MINT,
                                                            "amount": "12x"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "Query parameter amount cannot be parsed: ParseIntError { kind: InvalidDigit }"}
    invalid = await admin.get("/jupiter/swap/v1/quote", params={"inputMint": "nope", "outputMint": USDC_MINT,
                                                                "amount": "1"})
    assert invalid.json() == {"error": "Invalid inputMint"}
    missing = await admin.post("/jupiter/swap/v1/swap", json={"userPublicKey": str(Keypair().pubkey())})
    assert missing.status_code == 422 and "quoteResponse" in missing.json()["error"]

    await admin.post("/sandbox/faults", json={"service": "jupiter", "status": 429, "count": 1})
    with pytest.raises(RateLimited) as limited:
        await jupiter.quote(SOL_MINT, USDC_MINT, 1000)
    assert limited.value.retry_after >= 1.0 and "test-key" not in str(limited.value)
    await admin.post("/sandbox/faults", json={"service": "jupiter", "status": 503, "count": 1})
    with pytest.raises(ProviderError) as down:
        await jupiter.quote(SOL_MINT, USDC_MINT, 1000)
    assert down.value.retryable


async def test_prices_follow_the_pools_and_walk_with_the_clock(env):
    admin, _, jupiter = env
    prices = await jupiter.prices([SOL_MINT, USDC_MINT, GLITCH, str(Keypair().pubkey())])
    assert set(prices) == {SOL_MINT, USDC_MINT, GLITCH}  # unknown mints are omitted
    assert prices[USDC_MINT].usd_price == 1.0 and 140 < prices[SOL_MINT].usd_price < 160
    assert prices[GLITCH].decimals == 8
    await admin.post("/sandbox/jupiter/prices", json={"symbol": "WOOF", "volatility": 1.0, "drift": 0.5})
    await admin.post("/sandbox/jupiter/advance", json={"seconds": 86_400})
    later = await jupiter.prices([SOL_MINT, sandbox_mint("WOOF")])
    assert later[SOL_MINT].usd_price != prices[SOL_MINT].usd_price
    assert later[sandbox_mint("WOOF")].price_change_24h != 0.0
    tokens = (await admin.get("/sandbox/solana/tokens")).json()["tokens"]
    assert {t["symbol"] for t in tokens} == {"SOL", "USDC", "PUPPET", "STRNG", "WOOF", "GLITCH"}
    assert sum(t["token_2022"] for t in tokens) == 1
