"""Wallet balance and portfolio value over time, for ``/trading/{agent_id}``.

The current holdings come from the agent's wallet (through its trader). The history is
rebuilt without any extra bookkeeping: holdings at an earlier moment are today's minus
what the confirmed trades since then changed, and each holding is valued at the latest
``price_samples`` row for its mint at that moment.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from puppet_engine.api.deps import ApiContext
from puppet_engine.api.errors import ApiError
from puppet_engine.api.schemas import Balance, PortfolioPoint, TokenBalance
from puppet_engine.solana.tokens import SOL_MINT, STABLECOINS
from puppet_engine.storage.repos import prices as price_rows
from puppet_engine.storage.repos import trades


@dataclass
class Holdings:
    """Raw base-unit amounts by mint (SOL in lamports under the wrapped SOL mint)."""

    wallet_address: str | None
    raw: dict[str, int] = field(default_factory=dict)
    decimals: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)

    def amount(self, mint: str, raw: int | None = None) -> float:
        value = self.raw.get(mint, 0) if raw is None else raw
        return value / 10 ** self.decimals.get(mint, 9 if mint == SOL_MINT else 6)


async def wallet_holdings(ctx: ApiContext, agent_id: str) -> Holdings:
    """The wallet's current holdings through the agent's trader; 409 when the agent does not trade."""
    runtime = ctx.agent(agent_id)
    trader = runtime.trader
    if trader is None:
        raise ApiError(409, f"agent {agent_id!r} has no wallet: trading is not set up for it",
                       code="trading_not_configured")
    balances = await trader.wallet.balances()  # solana.wallet.WalletBalances
    holdings = Holdings(wallet_address=trader.wallet.address)
    holdings.raw[SOL_MINT] = int(balances.lamports)
    holdings.decimals[SOL_MINT] = 9
    holdings.symbols[SOL_MINT] = "SOL"
    for mint, token in balances.tokens.items():
        holdings.raw[mint] = holdings.raw.get(mint, 0) + int(token.amount)  # wSOL adds to native SOL
        holdings.decimals.setdefault(mint, int(token.decimals))
        known = trader.registry.get(mint)
        if known is not None:
            holdings.symbols.setdefault(mint, known.symbol)
    return holdings


class Prices:
    """Price history by mint: the latest sample at or before a moment (else the first one)."""

    def __init__(self, rows: list[tuple[str, float, float]]) -> None:
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[float]] = {}
        for mint, price, at in sorted(rows, key=lambda r: r[2]):
            self._times.setdefault(mint, []).append(at)
            self._values.setdefault(mint, []).append(price)

    def at(self, mint: str, when: float) -> float | None:
        times = self._times.get(mint)
        if not times:
            return 1.0 if mint in STABLECOINS else None  # unsampled stablecoins are worth their peg
        index = bisect.bisect_right(times, when) - 1
        return self._values[mint][max(index, 0)]


async def _prices(ctx: ApiContext, mints: set[str], since: float) -> Prices:
    if not mints:
        return Prices([])
    return Prices(await price_rows.covering(ctx.db, mints, since))


def _value(holdings: Holdings, raw: dict[str, int], prices: Prices, when: float) -> tuple[float | None, float | None]:
    usd = 0.0
    priced = False
    for mint, amount in raw.items():
        if amount == 0:
            continue
        price = prices.at(mint, when)
        if price is None:
            if mint != SOL_MINT:
                continue
            return None, holdings.amount(SOL_MINT, raw.get(SOL_MINT, 0))
        usd += holdings.amount(mint, amount) * price
        priced = True
    sol_price = prices.at(SOL_MINT, when)
    if not priced:
        return 0.0, 0.0
    return usd, (usd / sol_price if sol_price else None)


async def balance_of(ctx: ApiContext, agent_id: str) -> Balance:
    holdings = await wallet_holdings(ctx, agent_id)
    now = ctx.engine.clock.now()
    prices = await _prices(ctx, set(holdings.raw) | {SOL_MINT}, now)
    tokens = []
    for mint, raw in sorted(holdings.raw.items()):
        if mint == SOL_MINT:
            continue
        price = prices.at(mint, now)
        amount = holdings.amount(mint, raw)
        tokens.append(TokenBalance(mint=mint, symbol=holdings.symbols.get(mint), amount=amount,
                                   value_usd=amount * price if price is not None else None))
    total, _ = _value(holdings, holdings.raw, prices, now)
    return Balance(agent_id=agent_id, wallet_address=holdings.wallet_address, sol=holdings.amount(SOL_MINT),
                   tokens=tokens, total_value_usd=total, as_of=now)


async def portfolio_series(ctx: ApiContext, agent_id: str, span: float, points: int) -> list[PortfolioPoint]:
    holdings = await wallet_holdings(ctx, agent_id)
    now = ctx.engine.clock.now()
    since = now - span
    changes = await trades.confirmed_since(ctx.db, agent_id, since)
    mints = set(holdings.raw) | {SOL_MINT} | {r[0] for r in changes} | {r[1] for r in changes}
    registry = ctx.agent(agent_id).trader.registry
    for mint in mints - set(holdings.decimals):  # tokens sold off since: decimals from the registry
        known = registry.get(mint)
        if known is not None:
            holdings.decimals[mint] = known.decimals
    prices = await _prices(ctx, mints, since)
    step = span / (points - 1)
    moments = [now - i * step for i in range(points)]  # newest first, like the trades
    raw = dict(holdings.raw)
    series: list[PortfolioPoint] = []
    index = 0
    for moment in moments:
        while index < len(changes) and changes[index][5] > moment:
            _undo(raw, changes[index])
            index += 1
        usd, sol = _value(holdings, raw, prices, moment)
        series.append(PortfolioPoint(at=moment, value_usd=usd, value_sol=sol))
    series.reverse()
    return series


def _undo(raw: dict[str, int], trade: Any) -> None:
    """Holdings before ``trade``: give back what it sold and its fee, take away what it bought."""
    input_mint, output_mint, in_amount, out_amount, fee, _ = trade
    raw[input_mint] = raw.get(input_mint, 0) + int(in_amount or 0)
    raw[output_mint] = raw.get(output_mint, 0) - int(out_amount or 0)
    raw[SOL_MINT] = raw.get(SOL_MINT, 0) + int(fee or 0)
