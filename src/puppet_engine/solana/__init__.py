"""Solana trading: wallet, Jupiter client, risk rules, market analysis and the trader.

What the engine's trading behaviour uses::

    trader = build_trader(config, settings=…, db=…, clock=…, http=…, sandbox=SandboxEndpoints(url))
    await trader.reconcile()                                  # once at start
    result = await trader.consider_trade(rng, key=event_key)  # analyse → decide → execute, or None
    # or step by step:
    analysis = await trader.analyze_market()
    idea = decide_trade(analysis, trader.limits, await trader.wallet.balances(), rng)
    result = await trader.execute_trade(idea.token_in, idea.token_out, idea.amount, key=…)
"""

from puppet_engine.solana.factory import SandboxEndpoints, build_trader, fund_sandbox_wallet
from puppet_engine.solana.jupiter import JupiterAPI, Quote, SwapTransaction, TokenPrice
from puppet_engine.solana.market import (
    MarketAnalysis,
    MarketData,
    TokenStats,
    TradeIdea,
    decide_trade,
)
from puppet_engine.solana.risk import (
    RiskContext,
    RiskDecision,
    RiskLimits,
    TradeRequest,
    check_quote,
    check_trade,
)
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT, TokenInfo, TokenRegistry
from puppet_engine.solana.trader import SolanaTrader, TradeExecutor, TradeResult
from puppet_engine.solana.wallet import SolanaWallet, WalletBalances, parse_keypair, sandbox_keypair

__all__ = [
    "SOL_MINT", "USDC_MINT", "JupiterAPI", "MarketAnalysis", "MarketData", "Quote", "RiskContext", "RiskDecision",
    "RiskLimits", "SandboxEndpoints", "SolanaRpc", "SolanaTrader", "SolanaWallet", "SwapTransaction", "TokenInfo",
    "TokenPrice", "TokenRegistry", "TokenStats", "TradeExecutor", "TradeIdea", "TradeRequest", "TradeResult",
    "WalletBalances", "build_trader", "check_quote", "check_trade", "decide_trade", "fund_sandbox_wallet",
    "parse_keypair", "sandbox_keypair",
]
