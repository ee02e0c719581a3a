"""Constant-product pools on the sandbox chain, and the random walk that moves them.

Every pool's reserves are two real SPL token accounts ("vaults") on the LiteSVM
chain, owned by the pool's authority address. Swaps move tokens in and out of the
vaults (see :mod:`.swaps`); between swaps the market drifts: each token's price
follows a geometric random walk whose drift itself wanders (an Ornstein–Uhlenbeck
trend), so markets have trends that persist for hours to days. The walk is driven
lazily by the sandbox clock in one-minute steps, from a random source seeded by the
sandbox's, and applied to the vaults keeping each pool's ``x·y`` constant.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from puppet_engine.sandbox.chain.ledger import Ledger
from puppet_engine.solana.tokens import SANDBOX_TOKENS, SOL_MINT, USDC_MINT, TokenInfo

STEP_SECONDS = 60.0
MAX_STEPS_PER_SYNC = 2_000
DAY = 86_400.0
TREND_REVERSION = 0.5  # per day: how fast a trend fades
HISTORY_POINTS = 1_000  # ≈ 7 days of ten-minute samples


@dataclass
class TokenSpec:
    """How one sandbox token starts: its price, pool side and the character of its walk."""

    symbol: str
    price_usd: float
    quote: str  # mint of the pool's other side (USDC or SOL)
    liquidity_usd: float  # value of each side of the pool
    volatility: float  # daily standard deviation of log returns against the quote
    drift: float = 0.0  # daily drift of the log price
    fee_bps: int = 30


DEFAULT_SPECS: tuple[TokenSpec, ...] = (
    TokenSpec("SOL", 150.0, USDC_MINT, 6_000_000.0, 0.05, fee_bps=25),
    TokenSpec("PUPPET", 0.042, USDC_MINT, 400_000.0, 0.15),
    TokenSpec("STRNG", 1.85, SOL_MINT, 300_000.0, 0.10),
    TokenSpec("WOOF", 0.0000213, SOL_MINT, 250_000.0, 0.25),
    TokenSpec("GLITCH", 0.0031, USDC_MINT, 150_000.0, 0.18),
)


@dataclass
class MarketToken:
    info: TokenInfo
    volatility: float
    drift: float
    created_at: float
    trend: float = 0.0
    listed: bool = True
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))


@dataclass
class Pool:
    """A constant-product pool: ``base`` priced in ``quote``; vaults are token accounts on chain."""

    key: Pubkey
    label: str
    base: str
    quote: str
    base_vault: Pubkey
    quote_vault: Pubkey
    authority: Pubkey
    fee_bps: int

    def vault_for(self, mint: str) -> Pubkey:
        return self.base_vault if mint == self.base else self.quote_vault

    def other(self, mint: str) -> str:
        return self.quote if mint == self.base else self.base


def derived_key(*parts: object) -> Pubkey:
    return Pubkey(hashlib.sha256(":".join(str(p) for p in ("puppet-sandbox", *parts)).encode()).digest())


class Market:
    """The sandbox tokens, their pools, and the clock-driven random walk."""

    def __init__(self, ledger: Ledger, rng: random.Random, specs: tuple[TokenSpec, ...] = DEFAULT_SPECS) -> None:
        self.ledger = ledger
        self.rng = rng
        self.tokens: dict[str, MarketToken] = {}  # by mint
        self.pools: list[Pool] = []
        self.mint_authority = derived_key("mint-authority")
        self._last_step = ledger.now()
        infos = {t.symbol: t for t in SANDBOX_TOKENS}
        now = ledger.now()
        usdc = infos["USDC"]
        self.tokens[usdc.mint] = MarketToken(usdc, 0.0, 0.0, now - 400 * DAY)
        ledger.create_mint(Pubkey.from_string(usdc.mint), usdc.decimals, Pubkey.from_string(usdc.program_id),
                           self.mint_authority)
        for spec in specs:
            info = infos[spec.symbol]
            self.tokens[info.mint] = MarketToken(info, spec.volatility, spec.drift,
                                                 now - (400 if info.is_sol else 30) * DAY)
            if not info.is_sol:
                ledger.create_mint(Pubkey.from_string(info.mint), info.decimals, Pubkey.from_string(info.program_id),
                                   self.mint_authority)
        for spec in specs:
            self._open_pool(infos[spec.symbol], spec)
        self._record_history(now)

    # -- lookup ----------------------------------------------------------------------

    def token(self, symbol_or_mint: str) -> MarketToken | None:
        if symbol_or_mint in self.tokens:
            return self.tokens[symbol_or_mint]
        wanted = symbol_or_mint.upper()
        return next((t for t in self.tokens.values() if t.info.symbol.upper() == wanted), None)

    def pool_by_key(self, key: str) -> Pool | None:
        return next((p for p in self.pools if str(p.key) == key), None)

    def pools_between(self, a: str, b: str) -> list[Pool]:
        return [p for p in self.pools if {p.base, p.quote} == {a, b}]

    def reserves(self, pool: Pool, input_mint: str) -> tuple[int, int]:
        """(input-side reserve, output-side reserve) in raw units."""
        x = self.ledger.token_amount(pool.vault_for(input_mint))
        y = self.ledger.token_amount(pool.vault_for(pool.other(input_mint)))
        return x, y

    def pool_price(self, pool: Pool) -> float:
        """Price of one whole ``base`` in whole ``quote`` units."""
        base_raw = self.ledger.token_amount(pool.base_vault)
        quote_raw = self.ledger.token_amount(pool.quote_vault)
        if base_raw == 0:
            return 0.0
        base_dec = self.tokens[pool.base].info.decimals
        quote_dec = self.tokens[pool.quote].info.decimals
        return (quote_raw / 10**quote_dec) / (base_raw / 10**base_dec)

    def price_usd(self, mint: str, _depth: int = 0) -> float | None:
        if mint == USDC_MINT:
            return 1.0
        if _depth > 2:
            return None
        for pool in self.pools:
            if pool.base == mint:
                quote_usd = self.price_usd(pool.quote, _depth + 1)
                return None if quote_usd is None else self.pool_price(pool) * quote_usd
        return None

    def liquidity_usd(self, mint: str) -> float:
        total = 0.0
        for pool in self.pools:
            if mint in (pool.base, pool.quote):
                quote_usd = self.price_usd(pool.quote) or 0.0
                quote_dec = self.tokens[pool.quote].info.decimals
                total += 2 * self.ledger.token_amount(pool.quote_vault) / 10**quote_dec * quote_usd
        return total

    def change_24h(self, mint: str) -> float | None:
        """Percent change of the USD price over the last 24 hours (or since the first sample)."""
        token = self.tokens.get(mint)
        current = self.price_usd(mint)
        if token is None or not token.history or current is None:
            return None
        cutoff = self.ledger.now() - DAY
        past = next((p for t, p in token.history if t >= cutoff), token.history[0][1])
        return (current / past - 1.0) * 100.0 if past else None

    # -- the walk --------------------------------------------------------------------

    def sync(self) -> None:
        """Advance the random walk up to the sandbox's current time."""
        now = self.ledger.now()
        elapsed = now - self._last_step
        steps = int(elapsed // STEP_SECONDS)
        if steps <= 0:
            return
        step = STEP_SECONDS if steps <= MAX_STEPS_PER_SYNC else elapsed / MAX_STEPS_PER_SYNC
        steps = min(steps, MAX_STEPS_PER_SYNC)
        dt = step / DAY
        log_moves = {mint: 0.0 for mint in self.tokens}
        for i in range(steps):
            for mint, token in self.tokens.items():
                if token.volatility <= 0:
                    continue
                token.trend += -TREND_REVERSION * token.trend * dt + 0.5 * token.volatility * math.sqrt(dt) * \
                    self.rng.gauss(0, 1)
                mu = token.drift + token.trend - token.volatility**2 / 2
                log_moves[mint] += mu * dt + token.volatility * math.sqrt(dt) * self.rng.gauss(0, 1)
            if (i + 1) % 10 == 0 or i == steps - 1:  # write the vaults every ten steps
                self._apply(log_moves, self._last_step + (i + 1) * step)
                log_moves = {mint: 0.0 for mint in self.tokens}
        self._last_step += steps * step

    def restart_walk(self) -> None:
        """Resume the walk from now (after a restore), without replaying the time in between."""
        self._last_step = self.ledger.now()

    def _apply(self, log_moves: dict[str, float], at: float) -> None:
        for pool in self.pools:
            move = log_moves.get(pool.base, 0.0)
            if move:
                self._reprice(pool, math.exp(move))
        self._record_history(at)

    def _reprice(self, pool: Pool, factor: float) -> None:
        """Multiply the pool's price by ``factor`` keeping ``x·y`` constant."""
        x = self.ledger.token_amount(pool.base_vault)
        y = self.ledger.token_amount(pool.quote_vault)
        root = math.sqrt(factor)
        self.ledger.write_token_account(pool.base_vault, Pubkey.from_string(pool.base), pool.authority,
                                        max(1, int(x / root)))
        self.ledger.write_token_account(pool.quote_vault, Pubkey.from_string(pool.quote), pool.authority,
                                        max(1, int(y * root)))

    def _record_history(self, at: float) -> None:
        for mint, token in self.tokens.items():
            price = self.price_usd(mint)
            if price is not None:
                token.history.append((at, price))

    # -- admin -----------------------------------------------------------------------

    def set_price(self, mint: str, price_usd: float) -> None:
        """Move the token's pool so its USD price becomes ``price_usd`` (liquidity unchanged)."""
        current = self.price_usd(mint)
        pool = next((p for p in self.pools if p.base == mint), None)
        if pool is None or not current or price_usd <= 0:
            raise ValueError("this token's price cannot be set (USDC is fixed at 1.0)")
        self._reprice(pool, price_usd / current)
        self._record_history(self.ledger.now())

    def _open_pool(self, info: TokenInfo, spec: TokenSpec) -> None:
        quote = self.tokens[spec.quote].info
        quote_usd = 1.0 if quote.mint == USDC_MINT else self._spec_price(quote.mint)
        base_amount = int(spec.liquidity_usd / spec.price_usd * 10**info.decimals)
        quote_amount = int(spec.liquidity_usd / quote_usd * 10**quote.decimals)
        authority = derived_key("pool-authority", info.symbol, quote.symbol)
        pool = Pool(
            key=derived_key("pool", info.symbol, quote.symbol), label="Sandbox CPMM",
            base=info.mint, quote=quote.mint, authority=authority, fee_bps=spec.fee_bps,
            base_vault=derived_key("vault", info.symbol, quote.symbol, info.symbol),
            quote_vault=derived_key("vault", info.symbol, quote.symbol, quote.symbol),
        )
        self.ledger.write_token_account(pool.base_vault, Pubkey.from_string(info.mint), authority, base_amount)
        self.ledger.write_token_account(pool.quote_vault, Pubkey.from_string(quote.mint), authority, quote_amount)
        self.pools.append(pool)

    def _spec_price(self, mint: str) -> float:
        price = self.price_usd(mint)
        if price is None:
            raise ValueError(f"pool for {mint} must be opened before pools quoted in it")
        return price
