"""Trade risk rules: pure functions over typed limits, a request and what the wallet holds.

:class:`RiskLimits` is built from an agent config (``solana_integration.trade_safety``,
``agent_kit_integration.autonomy_rules``, ``behavior.trading_behavior``).
:func:`check_trade` runs before any quote, :func:`check_quote` after it. Each runs
every rule and returns a :class:`RiskDecision` listing all of them (the audit trail);
the first failure, in the order below, names the rejection:

``trading_disabled``, ``human_request``, ``invalid_amount``, ``same_token``,
``blacklisted``, ``token_not_allowed``, ``not_trending``, ``amount_unvalued``,
``max_trade_amount_sol``, ``max_single_trade_amount_sol``, ``insufficient_balance``,
``min_wallet_balance_sol``, ``max_daily_trades``, ``max_daily_volume_sol``; then
``max_slippage_percent`` and ``max_price_impact_percent`` on the quote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from puppet_engine.persona import AgentConfig
from puppet_engine.solana.tokens import SOL_MINT, STABLECOINS, TokenInfo

RequestSource = Literal["autonomous", "operator", "human"]
REQUEST_SOURCES: tuple[str, ...] = get_args(RequestSource)  # the agent itself, the API, a mention


@dataclass(frozen=True)
class RiskLimits:
    """Hard limits for one agent. Amounts in SOL; tokens by symbol or mint."""

    trading_enabled: bool = False
    max_trade_amount_sol: float = 0.1  # trade_safety.max_trade_amount_sol ∧ max_trade_amount_per_transaction
    max_single_trade_amount_sol: float = 0.1  # autonomy_rules (only when agent_kit_integration.enabled)
    min_wallet_balance_sol: float = 0.05
    max_slippage_percent: float = 1.0
    max_price_impact_percent: float = 2.0
    max_daily_trades: int = 5
    max_daily_volume_sol: float | None = None  # None: max_daily_trades × the per-trade maximum
    always_tradable: tuple[str, ...] = ("SOL", "USDC")
    blacklist: tuple[str, ...] = ()
    consider_trending: bool = False
    require_trending_validation: bool = False
    ignore_human_trading_requests: bool = True
    fee_reserve_sol: float = 0.01  # kept aside for fees and token-account rent on top of the minimum

    @property
    def per_trade_max_sol(self) -> float:
        return min(self.max_trade_amount_sol, self.max_single_trade_amount_sol)

    @property
    def daily_volume_cap_sol(self) -> float:
        if self.max_daily_volume_sol is not None:
            return self.max_daily_volume_sol
        return self.max_daily_trades * self.per_trade_max_sol

    @property
    def max_slippage_bps(self) -> int:
        return round(self.max_slippage_percent * 100)

    @classmethod
    def from_agent_config(cls, config: AgentConfig) -> RiskLimits:
        sol = config.solana_integration
        trading = config.behavior.trading_behavior
        kit = config.agent_kit_integration
        safety = sol.trade_safety if sol is not None else None
        per_trade = safety.max_trade_amount_sol if safety else 0.1
        if trading.max_trade_amount_per_transaction is not None:
            per_trade = min(per_trade, trading.max_trade_amount_per_transaction)
        rules = kit.autonomy_rules
        return cls(
            trading_enabled=config.trading_enabled,
            max_trade_amount_sol=per_trade,
            max_single_trade_amount_sol=rules.max_single_trade_amount_sol if kit.enabled else per_trade,
            min_wallet_balance_sol=safety.min_wallet_balance_sol if safety else 0.05,
            max_slippage_percent=safety.max_slippage_percent if safety else 1.0,
            max_daily_trades=rules.max_daily_trades,
            always_tradable=tuple(trading.allowed_tokens.always_tradable),
            blacklist=tuple(trading.allowed_tokens.blacklist),
            consider_trending=trading.allowed_tokens.consider_trending,
            require_trending_validation=rules.require_trending_validation if kit.enabled else False,
            # Mentions never trigger trades, whatever the file says (the original's promise).
            ignore_human_trading_requests=True,
        )


@dataclass(frozen=True)
class TradeRequest:
    """A proposed swap of ``amount`` (whole units) of ``token_in`` into ``token_out``."""

    token_in: TokenInfo
    token_out: TokenInfo
    amount: float
    amount_sol: float | None  # the trade's value in SOL (None when it could not be priced)
    source: RequestSource = "autonomous"


@dataclass(frozen=True)
class RiskContext:
    """What the rules need to know about the wallet and today's activity."""

    sol_balance: float
    token_in_balance: float
    trades_today: int = 0
    volume_today_sol: float = 0.0
    trending: frozenset[str] = frozenset()  # mints currently trending


@dataclass(frozen=True)
class Check:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RiskDecision:
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.passed), None)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"rule": c.rule, "passed": c.passed, "detail": c.detail} for c in self.checks]


def _named(token: TokenInfo, names: Iterable[str]) -> bool:
    for name in names:
        text = name.strip()
        if text == token.mint or text.upper() == token.symbol.upper():
            return True
    return False


def is_base_token(token: TokenInfo) -> bool:
    """SOL and stablecoins: what trades are denominated in, never "bought" as a bet."""
    return token.mint == SOL_MINT or token.mint in STABLECOINS


def token_allowed(token: TokenInfo, limits: RiskLimits, trending: frozenset[str]) -> bool:
    if _named(token, limits.blacklist):
        return False
    return _named(token, limits.always_tradable) or (limits.consider_trending and token.mint in trending)


def check_trade(req: TradeRequest, limits: RiskLimits, ctx: RiskContext) -> RiskDecision:
    """Every pre-quote rule for ``req``; see the module docstring for the order."""
    checks: list[Check] = []

    def rule(name: str, passed: bool, detail: str) -> None:
        checks.append(Check(name, bool(passed), detail))

    tin, tout, amount = req.token_in, req.token_out, req.amount
    rule("trading_disabled", limits.trading_enabled, "trading_enabled is " + str(limits.trading_enabled).lower())
    refused = req.source == "human" and limits.ignore_human_trading_requests
    rule("human_request", not refused, f"requested by {req.source}"
         + ("; trades asked for in mentions are never made" if refused else ""))
    rule("invalid_amount", amount > 0, f"amount {amount} {tin.symbol} must be positive")
    rule("same_token", tin.mint != tout.mint, f"{tin.symbol} → {tout.symbol}")
    black = [t.symbol for t in (tin, tout) if _named(t, limits.blacklist)]
    rule("blacklisted", not black, f"blacklisted: {', '.join(black)}" if black else "neither token is blacklisted")
    allowed = token_allowed(tout, limits, ctx.trending)
    rule("token_not_allowed", allowed,
         f"{tout.symbol} is {'' if allowed else 'not '}in always_tradable"
         + (" or trending" if limits.consider_trending else ""))
    needs_trend = limits.require_trending_validation and not is_base_token(tout)
    rule("not_trending", not needs_trend or tout.mint in ctx.trending,
         f"{tout.symbol} {'is' if tout.mint in ctx.trending else 'is not'} trending"
         + ("" if needs_trend else " (not required)"))
    value = req.amount_sol
    rule("amount_unvalued", value is not None, "trade value in SOL " + ("known" if value is not None else "unknown"))
    value = value or 0.0
    rule("max_trade_amount_sol", value <= limits.max_trade_amount_sol + 1e-12,
         f"{value:.6f} SOL vs max {limits.max_trade_amount_sol}")
    rule("max_single_trade_amount_sol", value <= limits.max_single_trade_amount_sol + 1e-12,
         f"{value:.6f} SOL vs max {limits.max_single_trade_amount_sol}")
    rule("insufficient_balance", amount <= ctx.token_in_balance + 1e-12,
         f"need {amount} {tin.symbol}, hold {ctx.token_in_balance}")
    spent_sol = amount if tin.mint == SOL_MINT else 0.0
    after = ctx.sol_balance - spent_sol - limits.fee_reserve_sol
    rule("min_wallet_balance_sol", after >= limits.min_wallet_balance_sol - 1e-12,
         f"{after:.6f} SOL left after trade and fees vs reserve {limits.min_wallet_balance_sol}")
    rule("max_daily_trades", ctx.trades_today < limits.max_daily_trades,
         f"{ctx.trades_today} trades today vs max {limits.max_daily_trades}")
    cap = limits.daily_volume_cap_sol
    rule("max_daily_volume_sol", ctx.volume_today_sol + value <= cap + 1e-12,
         f"{ctx.volume_today_sol + value:.6f} SOL today with this trade vs cap {cap}")
    return RiskDecision(tuple(checks))


def check_quote(slippage_bps: int, price_impact_pct: float, limits: RiskLimits) -> RiskDecision:
    """The quote's slippage tolerance and price impact (a fraction, as Jupiter gives it)."""
    impact = price_impact_pct * 100.0
    return RiskDecision((
        Check("max_slippage_percent", slippage_bps <= limits.max_slippage_bps,
              f"slippage {slippage_bps / 100:.2f}% vs max {limits.max_slippage_percent}%"),
        Check("max_price_impact_percent", impact <= limits.max_price_impact_percent + 1e-12,
              f"price impact {impact:.4f}% vs max {limits.max_price_impact_percent}%"),
    ))
