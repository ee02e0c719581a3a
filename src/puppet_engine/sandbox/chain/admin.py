"""Admin routes of the Solana world, mounted at ``/sandbox/solana`` and ``/sandbox/jupiter``.

``POST /airdrop`` SOL to an address; ``POST /mint`` any sandbox token to an owner;
``GET /tokens`` symbols, mints, decimals, prices; ``GET /pools`` reserves;
``GET /balances/{owner}``; ``POST /prices`` set a price or the character of its
walk; ``POST /tokens/{symbol}/list`` and ``/delist``; ``POST /advance`` move slots
and the market forward.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from puppet_engine.sandbox.chain.encoding import parse_token_account
from puppet_engine.sandbox.chain.market import MarketToken
from puppet_engine.sandbox.chain.world import SolanaWorld
from puppet_engine.solana.tokens import LAMPORTS_PER_SOL, SOL_MINT, to_raw


class AirdropBody(BaseModel):
    address: str
    sol: float = Field(1.0, gt=0, le=1_000_000, description="SOL to send")


class MintBody(BaseModel):
    owner: str
    mint: str | None = Field(None, description="mint address; or give symbol")
    symbol: str | None = None
    amount: float = Field(gt=0, description="in whole tokens (1.5 = 1.5 USDC)")


class PriceBody(BaseModel):
    symbol: str
    price: float | None = Field(None, gt=0, description="new USD price; the pool is moved to it")
    volatility: float | None = Field(None, ge=0, le=10, description="daily standard deviation of log returns")
    drift: float | None = Field(None, ge=-10, le=10, description="daily drift of the log price")


class AdvanceBody(BaseModel):
    seconds: float = Field(gt=0, le=365 * 86_400)


def _pubkey(text: str, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise HTTPException(400, f"{what}: not a base58 public key: {text!r}") from None


def _token(world: SolanaWorld, name: str) -> MarketToken:
    token = world.market.token(name)
    if token is None:
        known = ", ".join(t.info.symbol for t in world.market.tokens.values())
        raise HTTPException(404, f"unknown sandbox token {name!r}; known: {known}")
    return token


def token_view(world: SolanaWorld, token: MarketToken) -> dict[str, Any]:
    market = world.market
    return {
        "symbol": token.info.symbol, "name": token.info.name, "mint": token.info.mint,
        "decimals": token.info.decimals, "program_id": token.info.program_id, "token_2022": token.info.is_token_2022,
        "price_usd": market.price_usd(token.info.mint), "change_24h_percent": market.change_24h(token.info.mint),
        "liquidity_usd": market.liquidity_usd(token.info.mint), "listed": token.listed,
        "volatility": token.volatility, "drift": token.drift, "trend": token.trend,
    }


def balances_view(world: SolanaWorld, owner: Pubkey) -> dict[str, Any]:
    ledger = world.ledger
    tokens = []
    for address, account in ledger.token_accounts(owner):
        state = parse_token_account(account)
        assert state is not None
        info = world.market.tokens.get(str(state.mint))
        tokens.append({"account": str(address), "mint": str(state.mint), "symbol": info.info.symbol if info else None,
                       "amount": str(state.amount), "decimals": ledger.decimals_of(state.mint)})
    return {"owner": str(owner), "lamports": ledger.balance(owner), "tokens": tokens}


def admin_router(world: SolanaWorld) -> APIRouter:
    router = APIRouter(tags=["sandbox: solana"])

    @router.post("/airdrop")
    async def airdrop(body: AirdropBody) -> dict[str, Any]:
        address = _pubkey(body.address, "address")
        outcome = world.ledger.airdrop(address, int(body.sol * LAMPORTS_PER_SOL))
        return {"signature": str(outcome.signature), "lamports": world.ledger.balance(address)}

    @router.post("/mint")
    async def mint(body: MintBody) -> dict[str, Any]:
        owner = _pubkey(body.owner, "owner")
        token = _token(world, body.mint or body.symbol or "")
        mint_key = Pubkey.from_string(token.info.mint)
        program = Pubkey.from_string(token.info.program_id)
        ata = get_associated_token_address(owner, mint_key, program)
        raw = to_raw(body.amount, token.info.decimals)
        balance = world.ledger.mint_to(owner, mint_key, raw, ata)
        return {"account": str(ata), "mint": token.info.mint, "symbol": token.info.symbol,
                "amount": str(balance), "decimals": token.info.decimals}

    @router.get("/tokens")
    async def tokens() -> dict[str, Any]:
        world.tick()
        return {"tokens": [token_view(world, t) for t in world.market.tokens.values()]}

    @router.get("/pools")
    async def pools() -> dict[str, Any]:
        world.tick()
        out = []
        for pool in world.market.pools:
            out.append({"amm_key": str(pool.key), "label": pool.label, "fee_bps": pool.fee_bps,
                        "base": world.market.tokens[pool.base].info.symbol,
                        "quote": world.market.tokens[pool.quote].info.symbol,
                        "base_reserve": str(world.ledger.token_amount(pool.base_vault)),
                        "quote_reserve": str(world.ledger.token_amount(pool.quote_vault)),
                        "price": world.market.pool_price(pool)})
        return {"pools": out}

    @router.get("/balances/{owner}")
    async def balances(owner: str) -> dict[str, Any]:
        return balances_view(world, _pubkey(owner, "owner"))

    @router.post("/prices")
    async def prices(body: PriceBody) -> dict[str, Any]:
        world.tick()
        token = _token(world, body.symbol)
        if body.price is not None:
            try:
                world.market.set_price(token.info.mint, body.price)
            except ValueError as exc:
                raise HTTPException(400, f"{token.info.symbol}: {exc}") from None
        if body.volatility is not None:
            token.volatility = body.volatility
        if body.drift is not None:
            token.drift = body.drift
            token.trend = 0.0
        return token_view(world, token)

    @router.post("/tokens/{symbol}/list")
    async def list_token(symbol: str) -> dict[str, Any]:
        token = _token(world, symbol)
        token.listed = True
        return token_view(world, token)

    @router.post("/tokens/{symbol}/delist")
    async def delist_token(symbol: str) -> dict[str, Any]:
        token = _token(world, symbol)
        if token.info.mint == SOL_MINT:
            raise HTTPException(400, "SOL cannot be delisted")
        token.listed = False
        return token_view(world, token)

    @router.post("/advance")
    async def advance(body: AdvanceBody) -> dict[str, Any]:
        world.advance(body.seconds)
        return {"slot": world.ledger.slot, "block_height": world.ledger.block_height,
                "time": world.ledger.now()}

    return router
