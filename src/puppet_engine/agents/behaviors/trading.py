"""Trading: on the persona's schedule, analyse the market, decide, and trade through the outbox.

The decision is rule-based (:func:`puppet_engine.solana.decide_trade`: trend, momentum,
volatility, the persona's decision factors, ``random_probability``); every risk rule
is enforced again by the trader whatever led to the idea. The trade itself is an
outbox action keyed ``trade:<agent>:<n>``: recorded before it is sent, reconciled by
signature after a crash, never executed twice. Operator trades from the API
(``trade.manual``) go through the same limits. Mentions never reach this module.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Set
from typing import Any

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.behaviors.posting import compose, post_action
from puppet_engine.agents.mood import Mood, after_trade
from puppet_engine.agents.runtime import AgentRuntime
from puppet_engine.content.prompts import PromptContext
from puppet_engine.errors import BudgetExceeded, ProviderError, ValidationFailed
from puppet_engine.events import Action, ActionOutcome, ActionSpec, Event, HandlerResult
from puppet_engine.events.scheduler import HOUR, next_trade_check_at, slot_key
from puppet_engine.solana import decide_trade
from puppet_engine.solana.recording import note_market, note_market_error

log = structlog.get_logger("puppet_engine.trading")

MARKET_RETRY_SECONDS = 30 * 60.0
FIRST_CHECK_SECONDS = 3 * 60.0


class TradingBehavior(Behavior):
    name = "trading"

    def handlers(self) -> dict[str, BehaviorHandler]:
        return {"trade.due": self.on_trade_due, "trade.manual": self.on_manual_trade,
                "trade.announce": self.on_announce}

    def applies_to(self, agent: AgentRuntime) -> bool:
        return agent.trader is not None

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        if "trade.due" in pending:
            return []
        now = self.services.clock.now()
        state = await self.services.states.get(agent.id)
        freq = agent.config.behavior.trading_behavior.trading_frequency
        seq = state.trade_seq + 1
        due = next_trade_check_at(freq.min_hours_between_trades, freq.max_hours_between_trades,
                                  state.last_trade_check_at, now, agent.rng)
        if state.last_trade_check_at is None:
            # A new trader looks at the market soon: within 3 minutes, or its max gap if shorter.
            window = min(FIRST_CHECK_SECONDS, freq.max_hours_between_trades * HOUR)
            due = now + agent.rng.uniform(min(60.0, window / 4), window)
        return [Event("trade.due", agent.id, {"seq": seq}, due_at=due, key=slot_key("trade", agent.id, seq))]

    async def on_trade_due(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        seq = int(event.payload.get("seq", 1))
        freq = agent.config.behavior.trading_behavior.trading_frequency
        rng = random.Random(zlib.crc32((event.key or str(event.id)).encode()))
        nxt = next_trade_check_at(freq.min_hours_between_trades, freq.max_hours_between_trades, now, now, rng)
        actions: list[ActionSpec] = []
        result: dict[str, Any]
        if agent.trader is None:
            return HandlerResult(result={"skipped": "trading is not enabled"})
        try:
            trader = agent.trader
            analysis = await trader.analyze_market()
            balances = await trader.wallet.balances()
            note_market(analysis, balances, trader.limits)  # for replay
            idea = decide_trade(analysis, trader.limits, balances, rng,
                                factors=trader.factors, random_probability=trader.random_probability)
        except ProviderError as exc:
            note_market_error(exc)
            # RPC or Jupiter down: no trade, nothing half-done; look again sooner than a full gap.
            nxt = min(nxt, now + MARKET_RETRY_SECONDS)
            result = {"skipped": f"market unavailable: {exc}"}
        else:
            if idea is None:
                result = {"decision": "hold", "market": analysis.summary()}
            else:
                key = f"trade:{agent.id}:{seq}"
                actions.append(ActionSpec(key, agent.id, "trade", {
                    "input": idea.token_in, "output": idea.token_out, "amount": idea.amount,
                    "reasoning": idea.reason, "source": "autonomous"}, context={"market": analysis.summary()}))
                result = {"decision": "trade", "idea": {"input": idea.token_in, "output": idea.token_out,
                                                        "amount": idea.amount, "reason": idea.reason}}
        follow = Event("trade.due", agent.id, {"seq": seq + 1}, due_at=nxt, key=slot_key("trade", agent.id, seq + 1))
        return HandlerResult(result=result, actions=actions, follow_ups=[follow],
                             state={"trade_seq": seq, "last_trade_check_at": now, "next_trade_check_at": nxt})

    async def on_manual_trade(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        """``POST /agents/{id}/trade``: an operator's trade, under the same risk limits."""
        if agent.trader is None:
            return HandlerResult(result={"skipped": "trading is not enabled for this agent"})
        p = event.payload
        # The API sizes a trade in SOL (``amount_sol``): the trader values other inputs at the market.
        amount, unit = (p["amount"], "input") if "amount" in p else (p.get("amount_sol", 0.0), "sol")
        key = f"manual-trade:{agent.id}:{event.key or event.id}"
        return HandlerResult(result={"queued": key}, actions=[ActionSpec(key, agent.id, "trade", {
            "input": p.get("input", "SOL"), "output": p["output"], "amount": float(amount), "unit": unit,
            "reasoning": p.get("reasoning", "operator request"), "source": "operator"})])

    async def on_announce(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        """Post about a completed trade (chosen with ``trade_tweet_probability``)."""
        trade = event.payload.get("trade", {})
        state = await self.services.states.get(agent.id)
        context = PromptContext(purpose="trade", mood=state.mood, trade=trade_facts(trade),
                                now=self.services.clock.now(), seed=zlib.crc32((event.key or "").encode()))
        try:
            validated = await compose(self.services, agent, context)
        except (ValidationFailed, BudgetExceeded) as exc:
            return HandlerResult(result={"skipped": str(exc)})
        action = post_action(agent.id, f"tradepost:{agent.id}:{trade.get('key')}", list(validated.parts))
        action.context = {"trade": trade_facts(trade)}  # what a reviewer checks the post against
        return HandlerResult(result={"parts": list(validated.parts)}, actions=[action])


def _is_sol(symbol: str) -> bool:
    return symbol.upper() in ("SOL", "WSOL")


def _amount(value: float) -> str:
    """A token amount as a person writes it: 12,345 · 3.5 · 0.00987 (no exponent)."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if value <= 0:
        return "0"
    digits = max(2, 2 - math.floor(math.log10(value)))  # three significant figures, at least two decimals
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def trade_facts(result: dict[str, Any]) -> dict[str, str]:
    """What an announcement must say about a trade: ``action`` (bought, sold, swapped), ``token``
    and, when known, ``amount`` (what was bought or sold) and ``price`` (what it cost or fetched),
    each with its symbol. Buying is paying SOL for a token, selling is getting SOL for one."""
    paid_in = str(result.get("input_symbol") or result.get("input") or "?")
    got_out = str(result.get("output_symbol") or result.get("output") or "?")
    paid, got = result.get("amount_in"), result.get("amount_out")
    if _is_sol(paid_in) and not _is_sol(got_out):
        action, token = "bought", got_out
    elif _is_sol(got_out) and not _is_sol(paid_in):
        action, token = "sold", paid_in
    else:
        action, token = "swapped", paid_in
    facts = {"action": action, "token": token, "status": str(result.get("status") or "confirmed")}
    if isinstance(paid, int | float) and isinstance(got, int | float):
        spent, received = f"{_amount(float(paid))} {paid_in}", f"{_amount(float(got))} {got_out}"
        facts["amount"], facts["price"] = (received, spent) if action == "bought" else (spent, received)
    if reason := " ".join(str(result.get("reasoning") or "").replace(";", ",").split())[:160]:
        facts["why"] = reason
    return facts


async def after_trade_action(services: Any, agents: dict[str, AgentRuntime], schedule: Any,
                             action: Action, outcome: ActionOutcome) -> None:
    """Outbox hook: mood moves with the outcome; a completed trade may be announced."""
    if action.kind != "trade":
        return
    agent = agents.get(action.agent_id)
    if agent is None:
        return
    result = outcome.result or {}
    status = result.get("status")
    state = await services.states.get(agent.id)
    mood = after_trade(Mood.from_state(state.mood), 0.0, failed=status == "failed")
    await services.states.merge(agent.id, {"mood": mood.to_state()}, services.clock.now())
    if status != "confirmed":
        return
    probability = agent.config.behavior.trading_behavior.trade_tweet_probability
    if random.Random(zlib.crc32(action.key.encode())).random() < probability:
        await schedule(Event("trade.announce", agent.id, {"trade": result}, due_at=services.clock.now(),
                             key=f"announce:{action.key}"))
