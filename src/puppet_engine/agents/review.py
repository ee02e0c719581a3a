"""The review gate: which of a handler's actions wait for a person's approval.

Every handler's result passes through :meth:`ReviewGate.apply` before it is committed. An
action matching the agent's ``review`` rules (its file's section, else ``REVIEW_DEFAULT``)
gets a review item: it is then recorded ``awaiting_review`` in the same transaction as the
rest of the result, and the outbox sends it only once it is approved. The rest of the result
(the next post's schedule, state changes) commits as usual, so the schedule never stalls.

Operator requests (``post.manual``, ``trade.manual``) never wait: an operator asked for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.agents.safety import assess
from puppet_engine.errors import ConfigError, ProviderError
from puppet_engine.events import ActionSpec, Event, HandlerResult
from puppet_engine.persona.problems import translate_validation_error
from puppet_engine.persona.review import ReviewRules
from puppet_engine.storage.repos import review as review_rows

log = structlog.get_logger("puppet_engine.review")

TWEET_KINDS = ("post", "thread", "reply", "quote")
OPERATOR_EVENTS = frozenset({"post.manual", "trade.manual"})


def parse_default(text: str) -> ReviewRules | None:
    """``REVIEW_DEFAULT`` (JSON of an agent file's ``review`` section), or None when empty;
    a ``ConfigError`` naming the variable and the field when it is wrong."""
    if not text.strip():
        return None
    try:
        return ReviewRules.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"REVIEW_DEFAULT: invalid JSON at column {exc.colno}: {exc.msg}") from None
    except ValidationError as exc:
        raise ConfigError("; ".join(translate_validation_error(exc, "REVIEW_DEFAULT", ReviewRules))) from None


def category_of(spec: ActionSpec) -> str | None:
    """What reviewers call an action: posts, replies, quotes, trade_announcements, trades;
    None for what is never held (likes, retweets)."""
    if spec.kind == "trade":
        return "trades"
    if spec.kind not in TWEET_KINDS:
        return None
    if spec.key.startswith("tradepost:"):
        return "trade_announcements"
    if spec.kind == "reply" or spec.payload.get("reply_to"):
        return "replies"
    return "quotes" if spec.kind == "quote" else "posts"


@dataclass
class ReviewGate:
    """Marks the actions that need approval (see the module doc)."""

    services: AgentServices
    default: ReviewRules | None = None
    notify: bool = False  # a webhook is configured: items get a notice

    def rules_for(self, agent: AgentRuntime) -> ReviewRules | None:
        rules = agent.config.review if agent.config.review is not None else self.default
        return rules if rules is not None and rules.holds_anything else None

    async def apply(self, event: Event, agent: AgentRuntime, hr: HandlerResult) -> HandlerResult:
        rules = self.rules_for(agent)
        if rules is None or not hr.actions or event.type in OPERATOR_EVENTS:
            return hr
        now = self.services.clock.now()
        for spec in hr.actions:
            category = category_of(spec)
            if category is None:
                continue
            reasons, context = await self._reasons(agent, rules, spec, category)
            if not reasons:
                continue
            expires = now + rules.expire_minutes * 60 if rules.expire_minutes else None
            spec.review = {"category": category, "reasons": reasons, "context": {**(spec.context or {}), **context},
                           "expires_at": expires, "on_expire": rules.on_expire, "notify": self.notify}
            log.info("action_held_for_review", agent_id=agent.id, action_key=spec.key, category=category,
                     reasons=reasons)
        return hr

    async def _reasons(self, agent: AgentRuntime, rules: ReviewRules, spec: ActionSpec,
                       category: str) -> tuple[list[str], dict[str, object]]:
        reasons: list[str] = []
        context: dict[str, object] = {}
        if category == "trades":
            if rules.trade_above_sol is not None:
                worth, checks = await self._trade_worth(agent, spec)
                context.update(amount_sol=worth, risk_checks=checks)
                if worth is None:
                    reasons.append(f"trade of unknown SOL value (limit {rules.trade_above_sol:g} SOL)")
                elif worth > rules.trade_above_sol:
                    reasons.append(f"trade of {worth:.4g} SOL above {rules.trade_above_sol:g} SOL")
            return reasons, context
        if category in rules.kinds:
            if category == "replies" and rules.reply_conditions:
                reasons += await self._reply_reasons(agent, rules, spec)
            else:
                reasons.append(f"{category} need approval")
        if rules.first_posts:
            sent = await review_rows.tweets_sent(self.services.db, agent.id, TWEET_KINDS)
            if sent < rules.first_posts:
                reasons.append(f"one of the agent's first {rules.first_posts} tweets ({sent} sent so far)")
        return reasons, context

    async def _reply_reasons(self, agent: AgentRuntime, rules: ReviewRules, spec: ActionSpec) -> list[str]:
        mention = (spec.context or {}).get("mention") or {}
        reasons = []
        author = str(mention.get("author_username") or "")
        if "stranger" in rules.reply_conditions:
            known = None
            if agent.memory is not None and author:
                known = await agent.memory.relationships.get(agent.id, author)
            peer = self.services.peer_by_user_id(mention.get("author_id"))
            # The mention itself created a bare row (one interaction, no notes): still a stranger.
            bare = known is None or (known.interactions <= 1 and not known.notes and known.familiarity <= 0.05 + 1e-9)
            if peer is None and bare:
                reasons.append(f"reply to @{author or 'unknown'}, an account the agent has no relationship with")
        if "hostile" in rules.reply_conditions:
            flags = (spec.context or {}).get("flags") or sorted(assess(str(mention.get("text", ""))).flags)
            if flags:
                reasons.append("reply to a mention flagged hostile: " + ", ".join(map(str, flags)))
        return reasons

    async def _trade_worth(self, agent: AgentRuntime, spec: ActionSpec) -> tuple[float | None, list[object]]:
        p = spec.payload
        unit = str(p.get("unit", "input"))
        if agent.trader is None:
            sol = unit == "sol" or str(p.get("input", "")).upper() in ("SOL", "WSOL")
            return (float(p["amount"]) if sol else None), []
        try:
            worth, checks = await agent.trader.risk_preview(str(p.get("input", "SOL")), str(p.get("output", "")),
                                                           float(p.get("amount", 0.0)), unit=unit)
        except ProviderError as exc:  # the chain or the price API is down: unknown value, held
            return None, [{"rule": "preview", "passed": False, "detail": str(exc)}]
        return worth, list(checks)
