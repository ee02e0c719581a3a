"""Market analysis from the price feed, and the rule-based trade decision.

:class:`MarketData` samples USD prices from Jupiter's price API into the
``price_samples`` table and turns the recent history into :class:`TokenStats`
(trend, momentum, volatility) and the set of trending tokens (biggest 24-hour
gainers with real liquidity). :func:`decide_trade` is a pure function of that
analysis, the risk limits, the balances and a random source; the trading behaviour
calls it and hands any :class:`TradeIdea` to ``SolanaTrader.execute_trade``.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from puppet_engine.clock import Clock
from puppet_engine.solana.jupiter import JupiterAPI, TokenPrice
from puppet_engine.solana.risk import RiskLimits, is_base_token, token_allowed
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT, TokenInfo
from puppet_engine.solana.wallet import WalletBalances
from puppet_engine.storage import Database
from puppet_engine.storage.repos import prices as price_rows

Trend = Literal["up", "down", "flat"]
HOUR = 3600.0
TRENDING_MIN_CHANGE = 3.0  # percent over 24 h
TRENDING_MIN_LIQUIDITY = 10_000.0  # USD


@dataclass(frozen=True)
class TokenStats:
    token: TokenInfo
    price_usd: float
    change_1h_pct: float | None
    change_24h_pct: float | None
    momentum: float  # fractional return over the last few hours of samples
    volatility: float  # standard deviation of per-sample log returns
    trend: Trend
    liquidity_usd: float | None
    samples: int


@dataclass(frozen=True)
class MarketAnalysis:
    at: float
    sol_price_usd: float | None
    tokens: dict[str, TokenStats] = field(default_factory=dict)  # by mint
    trending: tuple[str, ...] = ()  # mints, strongest first

    def stats(self, symbol_or_mint: str) -> TokenStats | None:
        found = self.tokens.get(symbol_or_mint)
        if found:
            return found
        return next((s for s in self.tokens.values() if s.token.symbol.upper() == symbol_or_mint.upper()), None)

    def summary(self) -> str:
        """One line per token, for prompts and posts."""
        lines = []
        for s in sorted(self.tokens.values(), key=lambda s: -(s.change_24h_pct or 0.0)):
            change = f"{s.change_24h_pct:+.1f}%" if s.change_24h_pct is not None else "n/a"
            hot = " (trending)" if s.token.mint in self.trending else ""
            lines.append(f"{s.token.symbol}: ${s.price_usd:.6g}, 24h {change}, trend {s.trend}{hot}")
        return "\n".join(lines)


@dataclass(frozen=True)
class TradeIdea:
    """A trade the rules suggest: ``amount`` is in whole units of ``token_in``."""

    token_in: str
    token_out: str
    amount: float
    reason: str
    confidence: float = 0.5


def compute_stats(token: TokenInfo, history: Sequence[tuple[float, float]], now: float,
                  feed: TokenPrice | None = None) -> TokenStats | None:
    """Stats from ``(time, usd)`` samples, oldest first; ``feed`` supplies the latest values."""
    if feed is None and not history:
        return None
    price = feed.usd_price if feed else history[-1][1]

    def change_since(seconds: float) -> float | None:
        # the sample nearest to ``seconds`` ago, if the history reaches back at least half that far
        old_enough = [(t, p) for t, p in history if t <= now - seconds / 2]
        if not old_enough:
            return None
        _, base = min(old_enough, key=lambda tp: abs(tp[0] - (now - seconds)))
        return (price / base - 1.0) * 100.0 if base else None

    recent = [p for t, p in history if t >= now - 6 * HOUR] or [price]
    momentum = price / recent[0] - 1.0 if recent[0] else 0.0
    logs = [math.log(b / a) for (_, a), (_, b) in itertools.pairwise(history) if a > 0 and b > 0]
    volatility = statistics.pstdev(logs) if len(logs) >= 2 else 0.0
    change_24h = feed.price_change_24h if feed and feed.price_change_24h is not None else change_since(24 * HOUR)
    threshold = max(0.005, 2 * volatility)
    trend: Trend = "up" if momentum > threshold else "down" if momentum < -threshold else "flat"
    return TokenStats(token, price, change_since(HOUR), change_24h, momentum, volatility, trend,
                      feed.liquidity if feed else None, len(history))


def trending_mints(stats: Iterable[TokenStats], limit: int = 3) -> tuple[str, ...]:
    """Biggest 24-hour gainers (≥ 3 %) with some liquidity, excluding SOL and stablecoins."""
    hot = [s for s in stats if not is_base_token(s.token) and (s.change_24h_pct or 0.0) >= TRENDING_MIN_CHANGE
           and (s.liquidity_usd is None or s.liquidity_usd >= TRENDING_MIN_LIQUIDITY)]
    hot.sort(key=lambda s: -(s.change_24h_pct or 0.0))
    return tuple(s.token.mint for s in hot[:limit])


class MarketData:
    """Price sampling into ``price_samples`` and analysis over it."""

    def __init__(self, db: Database, jupiter: JupiterAPI, clock: Clock, *, history_hours: float = 48.0) -> None:
        self.db = db
        self.jupiter = jupiter
        self.clock = clock
        self.history_hours = history_hours

    async def sample(self, tokens: Sequence[TokenInfo]) -> dict[str, TokenPrice]:
        prices = await self.jupiter.prices([t.mint for t in tokens])
        now = self.clock.now()
        await price_rows.record(self.db, [(p.mint, p.usd_price) for p in prices.values()], now)
        return prices

    async def history(self, mints: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
        return await price_rows.since(self.db, mints, self.clock.now() - self.history_hours * HOUR)

    async def analyze(self, tokens: Sequence[TokenInfo]) -> MarketAnalysis:
        feed = await self.sample(tokens)
        history = await self.history([t.mint for t in tokens])
        now = self.clock.now()
        stats = {}
        for token in tokens:
            found = compute_stats(token, history.get(token.mint, []), now, feed.get(token.mint))
            if found is not None:
                stats[token.mint] = found
        sol = stats.get(SOL_MINT)
        return MarketAnalysis(now, sol.price_usd if sol else None, stats, trending_mints(stats.values()))


def _value_in(token: TokenStats, sol_amount: float, sol_price: float) -> float:
    """``sol_amount`` SOL expressed in whole units of ``token``."""
    return sol_amount * sol_price / token.price_usd if token.price_usd > 0 else 0.0


def decide_trade(analysis: MarketAnalysis, limits: RiskLimits, balances: WalletBalances, rng: random.Random, *,
                 factors: Sequence[str] = ("trending_tokens", "top_gainers"),
                 random_probability: float = 0.2) -> TradeIdea | None:
    """One trade suggested by simple, explainable rules, or ``None`` to sit still.

    In order: cut a losing position (held token trending down) back to SOL; buy the
    strongest allowed trending / gaining token with SOL; rotate SOL↔USDC on a clear SOL
    trend; with ``random_probability`` buy a random allowed token. Sizes stay within
    the per-trade maximum and leave the SOL reserve untouched; the risk rules still
    check everything again before a quote.
    """
    sol_price = analysis.sol_price_usd
    if not limits.trading_enabled or not sol_price:
        return None
    max_sol = limits.per_trade_max_sol
    spendable = balances.sol - limits.min_wallet_balance_sol - limits.fee_reserve_sol
    trending = frozenset(analysis.trending)
    sol_stats = analysis.tokens.get(SOL_MINT)

    for stats in analysis.tokens.values():  # 1. cut losers
        held = balances.amount(stats.token.mint)
        if is_base_token(stats.token) or held <= 0 or stats.trend != "down":
            continue
        worth_sol = held * stats.price_usd / sol_price
        if worth_sol < 0.001:
            continue
        amount = held if worth_sol <= max_sol else _value_in(stats, max_sol, sol_price)
        return TradeIdea(stats.token.mint, SOL_MINT, amount,
                         f"{stats.token.symbol} is trending down ({stats.momentum:+.1%}); taking it back to SOL",
                         confidence=min(1.0, abs(stats.momentum) * 10))

    buyable = [s for s in analysis.tokens.values()
               if not is_base_token(s.token) and token_allowed(s.token, limits, trending)
               and (not limits.require_trending_validation or s.token.mint in trending)]
    movers = [s for s in buyable if s.trend == "up" or s.token.mint in trending]
    if spendable > 0.001 and movers and {"trending_tokens", "top_gainers"} & set(factors):  # 2. ride the best
        best = max(movers, key=lambda s: (s.change_24h_pct or 0.0) + 100 * s.momentum)
        confidence = min(1.0, max(0.2, (best.change_24h_pct or 0.0) / 20 + best.momentum * 5))
        size = min(max_sol * (0.5 + 0.5 * confidence), spendable)
        return TradeIdea(SOL_MINT, best.token.mint, round(size, 9),
                         f"{best.token.symbol} is up {best.change_24h_pct or 0.0:+.1f}% in 24h "
                         f"with momentum {best.momentum:+.1%}", confidence)
    usdc_ok = any(s.upper() == "USDC" or s == USDC_MINT for s in limits.always_tradable)
    if sol_stats and usdc_ok:  # 3. rotate on a clear SOL trend
        if sol_stats.trend == "down" and spendable > 0.001:
            return TradeIdea(SOL_MINT, USDC_MINT, round(min(max_sol, spendable) * 0.5, 9),
                             f"SOL is trending down ({sol_stats.momentum:+.1%}); parking some in USDC", 0.4)
        usdc = balances.amount(USDC_MINT)
        if sol_stats.trend == "up" and usdc >= 1.0:
            return TradeIdea(USDC_MINT, SOL_MINT, round(min(usdc, max_sol * 0.5 * sol_price), 6),
                             f"SOL is trending up ({sol_stats.momentum:+.1%}); buying back with USDC", 0.4)
    if buyable and spendable > 0.001 and rng.random() < random_probability:  # 4. a small random bet
        pick = rng.choice(sorted(buyable, key=lambda s: s.token.symbol))
        return TradeIdea(SOL_MINT, pick.token.mint, round(min(max_sol * rng.uniform(0.2, 0.5), spendable), 9),
                         f"a small speculative position in {pick.token.symbol}", 0.2)
    return None
