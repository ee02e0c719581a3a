"""The clients a replay's agent acts through. None of them can reach X or the chain: the
social client is a dry-run one serving recorded reads, and the LLM is the recorded answers,
the offline fake, or (``--llm live`` only) the real provider under a call cap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from puppet_engine.agents.engagement_store import (
    EngagementStore,
    sample_from_json,
    tracked_from_json,
)
from puppet_engine.clock import Clock
from puppet_engine.errors import BudgetExceeded, ProviderError, RateLimited
from puppet_engine.llm.base import Completion, CompletionRequest, LLMProvider
from puppet_engine.llm.fake import FakeProvider
from puppet_engine.llm.wrappers import (
    WrapperProvider,
    completion_from_json,
    estimate_cost,
    request_digest,
)
from puppet_engine.memory.base import Memory, ScoredMemory
from puppet_engine.memory.recording import hit_from_json, memory_from_json, relationship_from_json
from puppet_engine.memory.relationships import Relationship
from puppet_engine.persona import AgentConfig
from puppet_engine.replay.inputs import error_from
from puppet_engine.social.base import Post, PostMetrics
from puppet_engine.social.dryrun import DryRunClient
from puppet_engine.social.recording import metrics_from_json, post_from_json
from puppet_engine.solana.market import MarketAnalysis
from puppet_engine.solana.recording import limits_from_json, market_from_json
from puppet_engine.solana.risk import RiskContext, RiskLimits, TradeRequest, check_trade
from puppet_engine.solana.wallet import WalletBalances
from puppet_engine.storage.repos.engagement import Sample, TrackedPost

LLMMode = Literal["exact", "recorded", "sandbox", "live"]


class ReplaySocial(DryRunClient):
    """Publishes nothing (a :class:`DryRunClient`); its reads answer what the recorded event read."""

    def __init__(self, username: str, user_id: str | None, clock: Clock) -> None:
        super().__init__(username, user_id, clock)
        self._reads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.missing = 0  # reads the current code made that the recording does not have

    def load(self, reads: list[dict[str, Any]]) -> None:
        self._reads.clear()
        for read in reads:
            self._reads[read.get("what", "")].append(read)

    def _next(self, what: str) -> dict[str, Any] | None:
        queue = self._reads.get(what)
        if not queue:
            self.missing += 1
            return None
        read = queue.pop(0)
        if "error" in read:
            raise error_from(read["error"])
        return read

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Post]:
        read = self._next("mentions")
        return [post_from_json(p) for p in read["posts"]] if read else []

    async def get_conversation(self, tweet: Post, depth: int = 5) -> list[Post]:
        read = self._next("conversation")
        return [post_from_json(p) for p in read["posts"]] if read else [tweet]

    async def get_tweet(self, tweet_id: str) -> Post | None:
        read = self._next("tweet")
        return post_from_json(read["posts"][0]) if read and read["posts"] else None

    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Post]:
        read = self._next("user_tweets")
        return [post_from_json(p) for p in read["posts"]] if read else []

    async def get_metrics(self, post_ids: list[str], *, max_wait: float | None = None) -> dict[str, PostMetrics]:
        queue = self._reads.get("metrics")
        if not queue:
            self.missing += 1
            raise NotImplementedError("no recorded metrics for this lookup")
        read = queue.pop(0)
        if read.get("unsupported"):
            raise NotImplementedError("the network gave no metrics then")
        if "error" in read:
            error = read["error"]
            if error.get("type") == "RateLimited":  # the wait asked then sets the next round
                raise RateLimited(service="replay", retry_after=float(error.get("retry_after") or 60.0))
            raise error_from(error)
        return metrics_from_json(read.get("metrics") or {})


class ReplayMentionFeed:
    """The mentions stream as the recorded poll found it: covering the poll (no X call) when
    it did, with the newest id it knew then."""

    def __init__(self) -> None:
        self._read: dict[str, Any] | None = None

    def load(self, reads: list[dict[str, Any]]) -> None:
        self._read = next((r for r in reads if r.get("what") == "mention_stream"), None)

    def covers(self, agent_id: str, since: float) -> bool:
        return self._read is not None and bool(self._read.get("covered"))

    def newest(self, agent_id: str) -> str | None:
        return None if self._read is None else self._read.get("newest")


class ReplayEngagement(EngagementStore):
    """The engagement samples the recorded event read (its tracked posts, an earlier attempt's
    samples, the history its effects were judged on, the rows it pruned); samples it takes now
    are kept here for the event only, nothing is written."""

    def __init__(self) -> None:  # no database: every answer is recorded
        self._reads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._earlier: list[Sample] = []
        self._taken: list[Sample] = []
        self.missing = 0

    def load(self, reads: list[dict[str, Any]]) -> None:
        self._reads.clear()
        for read in reads:
            if str(read.get("what", "")).startswith("engagement_"):
                self._reads[read["what"]].append(read)
        first = self._reads.get("engagement_taken")
        self._earlier = [sample_from_json(s) for s in first[0]["samples"]] if first else []
        self._taken = []

    def _next(self, what: str) -> dict[str, Any] | None:
        queue = self._reads.get(what)
        if not queue:
            self.missing += 1
            return None
        return queue.pop(0)

    async def tracked_posts(self, agent_id: str, since: float) -> list[TrackedPost]:
        read = self._next("engagement_posts")
        return [tracked_from_json(p) for p in read["posts"]] if read else []

    async def taken_by(self, event_key: str) -> list[Sample]:
        """The earlier attempt's samples (as read then), then those taken now (a slot once)."""
        seen: set[tuple[str, int]] = set()
        found = []
        for sample in self._earlier + self._taken:
            if (sample.post_id, sample.slot) not in seen:
                seen.add((sample.post_id, sample.slot))
                found.append(sample)
        return found

    async def samples(self, agent_id: str, since: float) -> list[Sample]:
        read = self._next("engagement_history")
        return [sample_from_json(s) for s in read["samples"]] if read else []

    async def record(self, samples: Sequence[Sample], event_key: str) -> None:
        self._taken.extend(samples)

    async def prune(self, agent_id: str, before: float) -> int:
        read = self._next("engagement_pruned")
        return int(read["rows"]) if read else 0


@dataclass
class LLMUse:
    """How a replay's LLM calls were answered."""

    calls: int = 0
    recorded: int = 0  # answered from the recording
    generated: int = 0  # written by the sandbox fake or the live provider
    changed_requests: int = 0  # (exact replays) the current code asked something else than then
    missing: int = 0  # asked more than was recorded
    cost_usd: float = 0.0
    by_mode: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "recorded": self.recorded, "generated": self.generated,
                "changed_requests": self.changed_requests, "missing": self.missing,
                "cost_usd": round(self.cost_usd, 6)}


class ReplayLLM(LLMProvider):
    """Answers a replay's calls.

    ``exact``: the event's recorded answers in the order they were given, whatever the
    request (a changed prompt is counted in ``changed_requests``); past them, a non-retryable
    failure. ``recorded``: the recorded answer to the same request (same digest) where there
    is one, else ``fallback``. ``sandbox`` / ``live``: always ``fallback``.
    """

    name = "replay"

    def __init__(self, mode: LLMMode, fallback: LLMProvider | None = None) -> None:
        self.mode = mode
        self.fallback = fallback or FakeProvider()
        self.use = LLMUse()
        self._queue: list[dict[str, Any]] = []
        self._by_digest: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def load(self, calls: list[dict[str, Any]]) -> None:
        self._queue = list(calls)
        self._by_digest.clear()
        for call in calls:
            self._by_digest[call.get("digest", "")].append(call)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.use.calls += 1
        if self.mode == "exact":
            if not self._queue:
                self.use.missing += 1
                raise ProviderError("no recorded answer left for this event (the current code asks "
                                    "the LLM more often than the recorded run did)", service="replay")
            call = self._queue.pop(0)
            if call.get("digest") != request_digest(request):
                self.use.changed_requests += 1
            return self._answer(call)
        if self.mode == "recorded":
            found = self._by_digest.get(request_digest(request))
            if found:
                return self._answer(found.pop(0))
        completion = await self.fallback.complete(request)
        self.use.generated += 1
        self.use.cost_usd += estimate_cost(completion.model, completion.usage.prompt_tokens,
                                           completion.usage.completion_tokens)
        return completion

    def _answer(self, call: dict[str, Any]) -> Completion:
        self.use.recorded += 1
        if "error" in call:
            raise error_from(call["error"])
        return completion_from_json(call["answer"])

    async def aclose(self) -> None:
        await self.fallback.aclose()


class CappedProvider(WrapperProvider):
    """At most ``max_calls`` calls reach ``inner``; later ones are refused as over budget
    (the persona's code then skips, as it does when an agent's daily budget is spent)."""

    def __init__(self, inner: LLMProvider, max_calls: int) -> None:
        super().__init__(inner)
        self.max_calls, self.calls = max_calls, 0

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.calls >= self.max_calls:
            raise BudgetExceeded(f"--max-calls {self.max_calls} reached", service="replay")
        self.calls += 1
        return await self.inner.complete(request)


def estimated_live_cost(calls: list[dict[str, Any]], model: str) -> tuple[int, float]:
    """(calls, US dollars) that replaying these recorded calls with ``model`` may cost: the
    recorded token counts priced at ``model``'s rate (an estimate: a changed persona changes them)."""
    total = 0.0
    for call in calls:
        prompt, answer = (call.get("answer") or {}).get("usage", [0, 0])
        if not prompt:  # an error was recorded: count the request's length
            prompt = sum(len(m[1]) for m in call["request"]["messages"]) // 4
        total += estimate_cost(model, int(prompt), int(answer or 200))
    return len(calls), total


class ReplayWallet:
    """The balances the recorded decision read."""

    def __init__(self) -> None:
        self.now: WalletBalances | None = None

    async def balances(self) -> WalletBalances:
        if self.now is None:
            raise ProviderError("no recorded balances for this event", service="replay")
        return self.now


class ReplayTrader:
    """A trader that never trades: its market and balances are the recorded ones, its rules the
    (possibly changed) persona's. Trade actions a replay decides are only compared and checked
    against the risk rules (:func:`risk_verdict`), never sent."""

    def __init__(self, config: AgentConfig) -> None:
        trading = config.behavior.trading_behavior
        self.limits = RiskLimits.from_agent_config(config)
        self.factors = tuple(trading.trade_decision_factors)
        self.random_probability = trading.trading_frequency.random_probability
        self.wallet = ReplayWallet()
        self.analysis: MarketAnalysis | None = None
        self.limits_then: RiskLimits | None = None  # the limits the recorded decision ran under
        self._error: dict[str, Any] | None = None

    def load(self, reads: list[dict[str, Any]]) -> None:
        self.analysis, self.wallet.now, self._error, self.limits_then = None, None, None, None
        read = next((r for r in reads if r.get("what") == "market"), None)
        if read is not None and "error" in read:
            self._error = read["error"]
        elif read is not None:
            self.analysis, self.wallet.now = market_from_json(read)
            self.limits_then = limits_from_json(read["limits"]) if "limits" in read else None

    async def analyze_market(self) -> MarketAnalysis:
        if self._error is not None:
            raise error_from(self._error)
        if self.analysis is None:
            raise ProviderError("no recorded market analysis for this event", service="replay")
        return self.analysis


def risk_verdict(trader: ReplayTrader, payload: dict[str, Any], limits: RiskLimits | None = None
                 ) -> list[dict[str, Any]] | None:
    """The pre-quote risk rules for a trade action, on the recorded market and balances
    (today's count and volume are not known to a replay: taken as none yet). ``None`` when the
    tokens are not in the recorded analysis."""
    analysis, balances = trader.analysis, trader.wallet.now
    if analysis is None or balances is None:
        return None
    tin, tout = analysis.stats(str(payload.get("input"))), analysis.stats(str(payload.get("output")))
    if tin is None or tout is None:
        return None
    amount = float(payload.get("amount", 0.0))
    sol = analysis.sol_price_usd
    value = amount if tin.token.is_sol else (amount * tin.price_usd / sol if sol else None)
    request = TradeRequest(tin.token, tout.token, amount, value, "autonomous")
    context = RiskContext(sol_balance=balances.sol, token_in_balance=balances.amount(tin.token.mint),
                          trending=frozenset(analysis.trending))
    return check_trade(request, limits or trader.limits, context).to_json()


async def _nothing(*_args: Any, **_kwargs: Any) -> None:
    """What a replay's memory does with a write: nothing (it is not the agent's memory)."""


#: The memory store's writes: a replay's memory does nothing with them. Any other attribute
#: is a read the recording does not serve, and fails loudly rather than answering ``None``.
MEMORY_WRITES = frozenset({"add_memory", "add_many", "update", "delete", "clear", "seed_initial", "reindex",
                           "close"})
RELATIONSHIP_WRITES = frozenset({"update_from_interaction", "update_from_interactions", "seed", "upsert",
                                 "delete", "clear"})


def _unrecorded(owner: str, name: str) -> Any:
    raise AttributeError(f"replay: {owner}.{name} is a read the recording does not serve "
                         "(record it in puppet_engine.memory.recording and serve it here)")


class ReplayRelationships:
    def __init__(self, memory: ReplayMemory) -> None:
        self.memory = memory

    def __getattr__(self, name: str) -> Any:
        return _nothing if name in RELATIONSHIP_WRITES else _unrecorded("relationships", name)

    def interactions_write(self, *_args: Any, **_kwargs: Any) -> None:
        """A write for the event's outcome: none (a replay commits no outcome)."""
        return None

    async def get(self, agent_id: str, other: str) -> Relationship | None:
        read = self.memory.next("relationship")
        return relationship_from_json(read.get("relationship")) if read else None


class ReplayMemory:
    """Recalls what the recorded event recalled (the same memories, in the same order); writes
    go nowhere. Searches, latest and listed memories and relationship look-ups answer as
    recorded; another read fails (see :data:`MEMORY_WRITES`)."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.relationships = ReplayRelationships(self)
        self._reads: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        return _nothing if name in MEMORY_WRITES else _unrecorded("memory", name)

    def load(self, reads: list[dict[str, Any]]) -> None:
        self._reads.clear()
        for read in reads:
            if read.get("what") in ("memories", "relationship", "recent_memories", "listed_memories"):
                self._reads[read["what"]].append(read)

    def next(self, what: str) -> dict[str, Any] | None:
        queue = self._reads.get(what)
        return queue.pop(0) if queue else None

    async def search_memories(self, agent_id: str, query: str, limit: int = 10,
                              kinds: Any = None) -> list[ScoredMemory]:
        read = self.next("memories")
        return [hit_from_json(h, agent_id) for h in read["hits"]][:limit] if read else []

    async def recent_memories(self, agent_id: str, kind: str = "post", limit: int = 20) -> list[Memory]:
        read = self.next("recent_memories")
        return [memory_from_json(m, agent_id) for m in read["memories"]][:limit] if read else []

    async def list_memories(self, agent_id: str, kind: str | None = None, since: float | None = None,
                            until: float | None = None, limit: int = 50, offset: int = 0) -> list[Memory]:
        read = self.next("listed_memories")
        return [memory_from_json(m, agent_id) for m in read["memories"]][:limit] if read else []
