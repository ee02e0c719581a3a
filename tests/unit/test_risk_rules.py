"""Trade risk rules (pure) and the rule-based trade decision."""

from __future__ import annotations

import random

import pytest

from puppet_engine.persona import AgentConfig
from puppet_engine.solana.market import (
    MarketAnalysis,
    TokenStats,
    compute_stats,
    decide_trade,
    trending_mints,
)
from puppet_engine.solana.risk import (
    RiskContext,
    RiskLimits,
    TradeRequest,
    check_quote,
    check_trade,
)
from puppet_engine.solana.tokens import SANDBOX_TOKENS, SOL_MINT, USDC_MINT, TokenRegistry
from puppet_engine.solana.wallet import TokenBalance, WalletBalances

REG = TokenRegistry(SANDBOX_TOKENS)
SOL, USDC, PUPPET, GLITCH = (REG.get(s) for s in ("SOL", "USDC", "PUPPET", "GLITCH"))
LIMITS = RiskLimits(trading_enabled=True, max_trade_amount_sol=0.5, max_single_trade_amount_sol=0.5,
                    min_wallet_balance_sol=0.1, max_daily_trades=3, always_tradable=("SOL", "USDC", "PUPPET"))
RICH = RiskContext(sol_balance=10.0, token_in_balance=10.0)


def request(tin=SOL, tout=USDC, amount=0.2, amount_sol=0.2, source="autonomous") -> TradeRequest:
    return TradeRequest(tin, tout, amount, amount_sol, source)


def test_a_reasonable_trade_passes_every_rule():
    decision = check_trade(request(), LIMITS, RICH)
    assert decision.ok and decision.failed is None
    assert len(decision.checks) == 14 and all(c.detail for c in decision.checks)


@pytest.mark.parametrize(("req", "limits", "ctx", "rule", "detail"), [
    (request(), RiskLimits(), RICH, "trading_disabled", "trading_enabled is false"),
    (request(source="human"), LIMITS, RICH, "human_request", "never made"),
    (request(amount=0), LIMITS, RICH, "invalid_amount", "must be positive"),
    (request(tout=SOL), LIMITS, RICH, "same_token", "SOL → SOL"),
    (request(tout=PUPPET), RiskLimits(trading_enabled=True, always_tradable=("SOL", "USDC", "PUPPET"),
                                      blacklist=("PUPPET",)), RICH, "blacklisted", "PUPPET"),
    (request(tout=GLITCH), LIMITS, RICH, "token_not_allowed", "GLITCH is not in always_tradable"),
    (request(tout=PUPPET), RiskLimits(trading_enabled=True, always_tradable=("SOL", "PUPPET"),
                                      require_trending_validation=True), RICH, "not_trending", "is not trending"),
    (request(tin=USDC, tout=SOL, amount_sol=None), LIMITS, RICH, "amount_unvalued", "unknown"),
    (request(amount=0.6, amount_sol=0.6), LIMITS, RICH, "max_trade_amount_sol", "0.600000 SOL vs max 0.5"),
    (request(amount=0.3, amount_sol=0.3), RiskLimits(trading_enabled=True, max_single_trade_amount_sol=0.25,
                                                     max_trade_amount_sol=1.0), RICH,
     "max_single_trade_amount_sol", "vs max 0.25"),
    (request(tin=USDC, tout=SOL, amount=50, amount_sol=0.3), LIMITS, RiskContext(10.0, 20.0),
     "insufficient_balance", "need 50 USDC, hold 20.0"),
    (request(amount=0.4, amount_sol=0.4), LIMITS, RiskContext(0.45, 0.45), "min_wallet_balance_sol",
     "vs reserve 0.1"),
    (request(), LIMITS, RiskContext(10.0, 10.0, trades_today=3), "max_daily_trades", "3 trades today vs max 3"),
    (request(amount=0.5, amount_sol=0.5), LIMITS, RiskContext(10.0, 10.0, trades_today=2, volume_today_sol=1.2),
     "max_daily_volume_sol", "vs cap 1.5"),
])
def test_each_rule_rejects_with_its_reason(req, limits, ctx, rule, detail):
    decision = check_trade(req, limits, ctx)
    assert not decision.ok
    assert decision.failed.rule == rule
    assert detail in decision.failed.detail
    assert {"rule": rule, "passed": False, "detail": decision.failed.detail} in decision.to_json()


def test_trending_tokens_are_allowed_only_when_configured():
    limits = RiskLimits(trading_enabled=True, consider_trending=True)
    hot = RiskContext(10.0, 10.0, trending=frozenset({GLITCH.mint}))
    small = request(tout=GLITCH, amount=0.05, amount_sol=0.05)
    assert check_trade(small, limits, hot).ok
    assert check_trade(small, limits, RICH).failed.rule == "token_not_allowed"
    assert check_trade(small, RiskLimits(trading_enabled=True), hot).failed.rule == "token_not_allowed"


def test_selling_a_held_token_back_to_sol_is_allowed():
    assert check_trade(request(tin=GLITCH, tout=SOL, amount=5, amount_sol=0.01), LIMITS, RICH).ok


def test_quote_rules():
    assert check_quote(100, 0.001, LIMITS).ok
    assert check_quote(150, 0.001, LIMITS).failed.rule == "max_slippage_percent"
    too_deep = check_quote(50, 0.05, LIMITS)
    assert too_deep.failed.rule == "max_price_impact_percent" and "5.0000%" in too_deep.failed.detail


def test_limits_come_from_the_original_config_fields():
    config = AgentConfig.model_validate({
        "id": "coby",
        "solana_integration": {"trading_enabled": True, "trade_safety": {
            "max_trade_amount_sol": 0.5, "min_wallet_balance_sol": 0.2, "max_slippage_percent": 2.5}},
        "behavior": {"trading_behavior": {"max_trade_amount_per_transaction": 0.3, "allowed_tokens": {
            "always_tradable": ["SOL", "USDC", "BONK"], "blacklist": ["SCAM"], "consider_trending": True}}},
        "agent_kit_integration": {"enabled": True, "autonomy_rules": {
            "max_daily_trades": 7, "max_single_trade_amount_sol": 0.2, "require_trending_validation": True,
            "ignore_human_trading_requests": False}},
    })
    limits = RiskLimits.from_agent_config(config)
    assert limits.trading_enabled
    assert limits.max_trade_amount_sol == 0.3  # the smaller of trade_safety and per-transaction
    assert limits.max_single_trade_amount_sol == 0.2 and limits.per_trade_max_sol == 0.2
    assert (limits.min_wallet_balance_sol, limits.max_slippage_bps, limits.max_daily_trades) == (0.2, 250, 7)
    assert limits.always_tradable == ("SOL", "USDC", "BONK") and limits.blacklist == ("SCAM",)
    assert limits.consider_trending and limits.require_trending_validation
    assert limits.ignore_human_trading_requests  # mentions never trade, whatever the file says
    assert limits.daily_volume_cap_sol == pytest.approx(1.4)
    plain = RiskLimits.from_agent_config(AgentConfig.model_validate({"id": "quiet"}))
    assert not plain.trading_enabled and plain.max_daily_trades == 5


def stats(token, price, *, change=0.0, momentum=0.0, trend="flat", liquidity=1e6) -> TokenStats:
    return TokenStats(token, price, None, change, momentum, 0.01, trend, liquidity, 10)


def analysis(*items: TokenStats) -> MarketAnalysis:
    by_mint = {s.token.mint: s for s in items}
    return MarketAnalysis(0.0, by_mint[SOL_MINT].price_usd, by_mint, trending_mints(items))


def test_decide_buys_the_strongest_allowed_mover_within_limits():
    market = analysis(stats(SOL, 150.0), stats(USDC, 1.0), stats(PUPPET, 0.05, change=12.0, momentum=0.04,
                                                                       trend="up"),
                      stats(GLITCH, 0.003, change=30.0, momentum=0.1, trend="up"))
    idea = decide_trade(market, LIMITS, WalletBalances(2 * 10**9), random.Random(1))
    assert idea is not None and idea.token_in == SOL_MINT and idea.token_out == PUPPET.mint  # GLITCH not allowed
    assert 0 < idea.amount <= LIMITS.per_trade_max_sol and "PUPPET" in idea.reason


def test_decide_cuts_a_falling_position_and_respects_the_reserve():
    held = {PUPPET.mint: TokenBalance(PUPPET.mint, 1_000 * 10**6, 6, PUPPET.program_id)}
    market = analysis(stats(SOL, 150.0), stats(USDC, 1.0), stats(PUPPET, 0.05, momentum=-0.08, trend="down"))
    idea = decide_trade(market, LIMITS, WalletBalances(2 * 10**9, held), random.Random(1))
    assert idea is not None and (idea.token_in, idea.token_out) == (PUPPET.mint, SOL_MINT)
    assert idea.amount == pytest.approx(1_000)  # $50 ≈ 0.33 SOL: the whole position fits one trade
    broke = decide_trade(analysis(stats(SOL, 150.0), stats(PUPPET, 0.05, change=20.0, momentum=0.1, trend="up")),
                         LIMITS, WalletBalances(int(0.1 * 10**9)), random.Random(1))
    assert broke is None  # nothing to spend above the reserve
    assert decide_trade(market, RiskLimits(), WalletBalances(10**10, held), random.Random(1)) is None


def test_stats_from_samples_show_the_trend():
    now = 100_000.0
    rising = [(now - 3600 * h, 1.0 * (1.01 ** (24 - h))) for h in range(24, -1, -1)]
    up = compute_stats(PUPPET, rising, now)
    assert up.trend == "up" and up.momentum > 0 and up.change_24h_pct == pytest.approx(26.97, abs=0.1)
    falling = [(t, 1 / p) for t, p in rising]
    assert compute_stats(PUPPET, falling, now).trend == "down"
    assert compute_stats(PUPPET, [], now) is None
    assert trending_mints([up, compute_stats(USDC, rising, now)]) == (PUPPET.mint,)  # stablecoins never trend
    assert USDC_MINT not in trending_mints([compute_stats(USDC, rising, now)])
