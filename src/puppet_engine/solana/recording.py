"""What a trading decision read (the market analysis and the wallet's balances), recorded for replay.

:func:`note_market` adds them to the event being recorded (see
:mod:`puppet_engine.events.recording`); :func:`market_from_json` gives them back to a replay.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from puppet_engine.events.recording import capturing, note
from puppet_engine.solana.market import MarketAnalysis, TokenStats
from puppet_engine.solana.risk import RiskLimits
from puppet_engine.solana.tokens import TokenInfo
from puppet_engine.solana.wallet import TokenBalance, WalletBalances


def note_market(analysis: MarketAnalysis, balances: WalletBalances, limits: RiskLimits) -> None:
    """Record the analysis and balances a ``trade.due`` decided on, and the risk limits then."""
    if capturing():
        note("read", {"what": "market", "analysis": dataclasses.asdict(analysis),
                      "balances": dataclasses.asdict(balances), "limits": dataclasses.asdict(limits)})


def note_market_error(exc: Exception) -> None:
    """Record that the market could not be read (the decision was then to skip)."""
    if capturing():
        note("read", {"what": "market", "error": {"type": exc.__class__.__name__, "message": str(exc)}})


def _token(data: dict[str, Any]) -> TokenInfo:
    return TokenInfo(**data)


def limits_from_json(data: dict[str, Any]) -> RiskLimits:
    """The risk limits recorded with a decision."""
    values: dict[str, Any] = {k: tuple(v) if k in ("always_tradable", "blacklist") else v for k, v in data.items()}
    return RiskLimits(**values)


def market_from_json(read: dict[str, Any]) -> tuple[MarketAnalysis, WalletBalances]:
    """The recorded analysis and balances, as the trader returned them."""
    a = read["analysis"]
    tokens = {mint: TokenStats(**{**s, "token": _token(s["token"])}) for mint, s in a["tokens"].items()}
    analysis = MarketAnalysis(at=a["at"], sol_price_usd=a["sol_price_usd"], tokens=tokens,
                              trending=tuple(a.get("trending", ())))
    b = read["balances"]
    held = {mint: TokenBalance(**{**t, "accounts": tuple(t.get("accounts", ()))}) for mint, t in b["tokens"].items()}
    return analysis, WalletBalances(lamports=int(b["lamports"]), tokens=held)
