"""Solana trading: wallet, Jupiter client, risk rules, market analysis and the trader."""

from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT, TokenInfo, TokenRegistry

__all__ = ["SOL_MINT", "USDC_MINT", "TokenInfo", "TokenRegistry"]
