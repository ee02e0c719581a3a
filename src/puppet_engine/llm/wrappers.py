"""Cross-cutting LLM behaviour as composable wrappers around any ``LLMProvider``.

- :class:`UpstreamTextProvider` trims and redacts the text of a provider's errors;
- :class:`FallbackProvider` tries providers in order (e.g. grok → openai → fake);
- :class:`CircuitBreakerProvider` stops calling a failing provider for a cooldown;
- :class:`BudgetProvider` enforces a per-agent daily token budget;
- :class:`RecordingProvider` writes every call to the ``llm_calls`` table (inside a recorded event, with
  its outcome: ``events.recording.ride_along``);
- :class:`MetricsProvider` reports every call to a callback (e.g. Prometheus);
- :class:`CaptureProvider` notes each request and answer in the event being recorded (replay).

Each wrapper is itself an ``LLMProvider``, so they stack in any order; the usual
one is ``Recording(Metrics(Budget(Fallback([Breaker(grok), Breaker(openai)]))))``.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import orjson

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    BudgetExceeded,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.events.recording import capturing, note, ride_along
from puppet_engine.llm.base import Completion, CompletionRequest, LLMProvider
from puppet_engine.llm.messages import ChatMessage, Usage
from puppet_engine.resilience import CircuitBreaker
from puppet_engine.storage.repos import llm_calls

if TYPE_CHECKING:

    from puppet_engine.storage import Database
    from puppet_engine.storage.group_commit import GroupCommitter

# US dollars per million tokens (prompt, completion); unknown models cost 0.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00), "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00), "gpt-5": (1.25, 10.00), "grok-3-mini": (0.30, 0.50), "grok-3": (3.00, 15.00),
    "grok-4-fast": (0.20, 0.50), "grok-4-1-fast": (0.20, 0.50), "grok-4": (3.00, 15.00),
}
# Failures that mean "this provider is unwell", as opposed to "this request was refused".
BREAKER_ERRORS = (ServiceUnavailable, RateLimited, BadResponse, AuthError)


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Estimated US dollars for one call, by the longest matching model prefix."""
    matches = [k for k in PRICES if model.startswith(k)]
    if not matches:
        return 0.0
    p_in, p_out = PRICES[max(matches, key=len)]
    return (prompt_tokens * p_in + completion_tokens * p_out) / 1_000_000


class WrapperProvider(LLMProvider):
    """Delegates to ``inner``; subclasses override :meth:`complete`."""

    def __init__(self, inner: LLMProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class UpstreamTextProvider(WrapperProvider):
    """Errors from ``inner`` carry at most ``limit`` characters, with ``redact`` applied.

    An error's text comes partly from the server (possibly one an agent file chose), and it
    ends up in events, the API and logs: a server must not be able to push long text or a
    key it was sent back through them.
    """

    def __init__(self, inner: LLMProvider, *, limit: int = 200, redact: Callable[[str], str] | None = None) -> None:
        super().__init__(inner)
        self.limit, self.redact = limit, redact

    async def complete(self, request: CompletionRequest) -> Completion:
        try:
            return await self.inner.complete(request)
        except ProviderError as exc:
            text = self.redact(str(exc)) if self.redact is not None else str(exc)
            exc.args = (text if len(text) <= self.limit else text[: self.limit - 1] + "…",)
            raise


class FallbackProvider(LLMProvider):
    """The first provider that answers wins; provider failures move on to the next one.

    ``BudgetExceeded`` is not a provider failure (the agent is out of tokens
    whichever model it asks) and is raised at once.
    """

    def __init__(self, providers: Sequence[LLMProvider]) -> None:
        if not providers:
            raise ValueError("FallbackProvider needs at least one provider")
        self.providers = list(providers)
        self.name = self.providers[0].name

    async def complete(self, request: CompletionRequest) -> Completion:
        errors: list[ProviderError] = []
        for provider in self.providers:
            try:
                return await provider.complete(request)
            except BudgetExceeded:
                raise
            except ProviderError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        summary = "; ".join(str(e) for e in errors)
        last = errors[-1]
        raise ServiceUnavailable(f"every provider failed: {summary}", service="llm", status=last.status) from last

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()


class CircuitBreakerProvider(WrapperProvider):
    """Open after ``failures`` consecutive provider failures; one trial call after ``cooldown``.

    While open, calls fail fast with ``ServiceUnavailable`` (so a fallback moves
    on at once). States are ``closed``, ``open`` and ``half_open``; ``on_state``
    hears every transition (e.g. ``Metrics.set_breaker``) as ``llm:<provider>``.
    Only :data:`BREAKER_ERRORS` count as failures; a refused request says nothing.
    """

    def __init__(self, inner: LLMProvider, *, clock: Clock | None = None, failures: int = 5,
                 cooldown: float = 60.0, on_state: Callable[[str, str], None] | None = None) -> None:
        super().__init__(inner)
        self.breaker = CircuitBreaker(f"llm:{self.name}", clock=clock, failures=failures, cooldown=cooldown,
                                      on_state=on_state, service=self.name, one_trial=True)

    @property
    def state(self) -> str:
        return self.breaker.state

    async def complete(self, request: CompletionRequest) -> Completion:
        self.breaker.before()
        try:
            completion = await self.inner.complete(request)
        except BREAKER_ERRORS:
            self.breaker.failed()
            raise
        except BaseException:
            self.breaker.released()
            raise
        self.breaker.answered()
        return completion


class BudgetProvider(WrapperProvider):
    """At most ``daily_tokens`` per agent per calendar day (in ``tz``); beyond it ``BudgetExceeded``.

    ``daily_tokens`` is a number or a function read before every call (a live runtime
    setting); 0 means unlimited. With a ``db`` the day's usage is first read from
    ``llm_calls``, so a restart does not reset the budget; while unlimited it is neither read
    nor counted (``llm_calls`` records every call: a limit set later reads the day's use
    then). Requests without ``agent_id`` are not counted.
    """

    def __init__(self, inner: LLMProvider, daily_tokens: int | Callable[[], int], *, clock: Clock | None = None,
                 tz: tzinfo = UTC, db: Database | None = None) -> None:
        super().__init__(inner)
        self._limit = daily_tokens if callable(daily_tokens) else (lambda: daily_tokens)
        self.clock, self.tz, self.db = clock or WallClock(), tz, db
        self.used: dict[tuple[str, str], int] = {}

    @property
    def daily_tokens(self) -> int:
        """Today's limit as it stands now."""
        return int(self._limit())

    def _day(self) -> tuple[str, float]:
        now = datetime.fromtimestamp(self.clock.now(), self.tz)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return now.date().isoformat(), start.timestamp()

    async def _used(self, agent_id: str) -> int:
        day, start = self._day()
        key = (agent_id, day)
        if key not in self.used:
            self.used = {k: v for k, v in self.used.items() if k[1] == day}  # forget past days
            self.used[key] = await self._stored(agent_id, start) if self.db is not None else 0
        return self.used[key]

    async def _stored(self, agent_id: str, since: float) -> int:
        assert self.db is not None
        return await llm_calls.tokens_since(self.db, agent_id, since)

    async def remaining(self, agent_id: str) -> int:
        """Tokens ``agent_id`` may still use today."""
        return max(0, self.daily_tokens - await self._used(agent_id))

    async def complete(self, request: CompletionRequest) -> Completion:
        agent = request.agent_id
        limit = self.daily_tokens
        if agent is None:
            return await self.inner.complete(request)
        if limit <= 0 and self.db is not None and (agent, self._day()[0]) not in self.used:
            return await self.inner.complete(request)  # no read per agent and day while unlimited
        used = await self._used(agent)  # counted even while unlimited, so a later limit sees today's use
        if 0 < limit <= used:
            raise BudgetExceeded(f"agent {agent} used {used} of its {limit} daily tokens", service=self.name)
        completion = await self.inner.complete(request)
        key = (agent, self._day()[0])
        self.used[key] = self.used.get(key, used) + completion.usage.total_tokens
        return completion


@dataclass(frozen=True)
class LLMCall:
    """One call as wrappers report it."""

    agent_id: str | None
    provider: str
    model: str
    purpose: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float
    outcome: str  # ok, error, skipped
    error: str | None = None


async def _observed(inner: LLMProvider, request: CompletionRequest) -> tuple[Completion | None, LLMCall, Exception | None]:
    started = time.perf_counter()
    try:
        completion = await inner.complete(request)
    except ProviderError as exc:
        latency = (time.perf_counter() - started) * 1000
        outcome = "skipped" if isinstance(exc, BudgetExceeded) else "error"
        call = LLMCall(request.agent_id, exc.service or inner.name, request.model or "", request.purpose,
                       0, 0, latency, 0.0, outcome, str(exc)[:500])
        return None, call, exc
    latency = completion.latency_ms or (time.perf_counter() - started) * 1000
    u = completion.usage
    call = LLMCall(request.agent_id, completion.provider, completion.model, request.purpose, u.prompt_tokens,
                   u.completion_tokens, latency, estimate_cost(completion.model, u.prompt_tokens, u.completion_tokens),
                   "ok")
    return completion, call, None


class MetricsProvider(WrapperProvider):
    """Reports every call (tokens, latency, cost, outcome) to ``on_call``."""

    def __init__(self, inner: LLMProvider, on_call: Callable[[LLMCall], None]) -> None:
        super().__init__(inner)
        self.on_call = on_call

    async def complete(self, request: CompletionRequest) -> Completion:
        completion, call, exc = await _observed(self.inner, request)
        self.on_call(call)
        if exc is not None:
            raise exc
        assert completion is not None
        return completion


def prometheus_hook(metrics: object) -> Callable[[LLMCall], None]:
    """An ``on_call`` that feeds ``puppet_engine.observability.metrics.Metrics.record_llm_usage``."""

    def record(call: LLMCall) -> None:
        if call.outcome == "ok":
            metrics.record_llm_usage(call.agent_id or "-", call.provider, call.prompt_tokens,  # type: ignore[attr-defined]
                                     call.completion_tokens, call.cost_usd)

    return record


class RecordingProvider(WrapperProvider):
    """Writes every call to ``llm_calls`` (agent, provider, model, purpose, tokens, latency, cost, outcome)."""

    def __init__(self, inner: LLMProvider, db: Database, *, clock: Clock | None = None) -> None:
        super().__init__(inner)
        self.db, self.clock = db, clock or WallClock()

    async def complete(self, request: CompletionRequest) -> Completion:
        completion, call, exc = await _observed(self.inner, request)
        await self.record(call)
        if exc is not None:
            raise exc
        assert completion is not None
        return completion

    async def record(self, call: LLMCall) -> None:
        row = {"agent_id": call.agent_id, "provider": call.provider[:64], "model": (call.model or "-")[:128],
               "purpose": call.purpose[:64], "prompt_tokens": call.prompt_tokens,
               "completion_tokens": call.completion_tokens, "latency_ms": round(call.latency_ms, 3),
               "cost_usd": call.cost_usd, "outcome": call.outcome, "error": call.error,
               "created_at": self.clock.now()}
        if not ride_along(row):  # outside an event's recording: a group commit of its own
            await _call_writer(self.db).write(row)


_CALL_WRITERS: weakref.WeakKeyDictionary[Database, GroupCommitter[dict[str, Any], None]] = weakref.WeakKeyDictionary()


def _call_writer(db: Database) -> GroupCommitter[dict[str, Any], None]:
    """One committer per database for every agent's provider: calls that finish together
    (many agents writing at once) share one transaction."""
    writer = _CALL_WRITERS.get(db)
    if writer is None:
        from puppet_engine.storage.group_commit import GroupCommitter

        writer = _CALL_WRITERS[db] = GroupCommitter(db, llm_calls.insert_calls)
    return writer



def request_json(request: CompletionRequest) -> dict[str, Any]:
    """A request as recorded: messages, model and parameters (not the agent, which the row has)."""
    return {"messages": [[m.role, m.content] for m in request.messages], "model": request.model,
            "temperature": request.temperature, "max_tokens": request.max_tokens, "json_schema": request.json_schema,
            "schema_name": request.schema_name, "purpose": request.purpose, "seed": request.seed}


def request_from_json(data: dict[str, Any], agent_id: str | None = None) -> CompletionRequest:
    return CompletionRequest(messages=[ChatMessage(role, content) for role, content in data["messages"]],
                             model=data.get("model"), temperature=data.get("temperature"),
                             max_tokens=data.get("max_tokens"), json_schema=data.get("json_schema"),
                             schema_name=data.get("schema_name", "decision"), purpose=data.get("purpose", "content"),
                             agent_id=agent_id, seed=data.get("seed"))


def request_digest(request: CompletionRequest) -> str:
    """Same digest, same question: what a replay matches recorded answers by."""
    return _digest(request_json(request))


def _digest(asked: dict[str, Any]) -> str:
    """:func:`request_digest` of a request already made into :func:`request_json`."""
    return hashlib.sha256(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def completion_json(completion: Completion) -> dict[str, Any]:
    return {"text": completion.text, "model": completion.model, "provider": completion.provider,
            "usage": [completion.usage.prompt_tokens, completion.usage.completion_tokens]}


def completion_from_json(data: dict[str, Any]) -> Completion:
    prompt, answer = data.get("usage", [0, 0])
    return Completion(text=data["text"], model=data.get("model", ""), provider=data.get("provider", "recorded"),
                      usage=Usage(int(prompt), int(answer)))


class CaptureProvider(WrapperProvider):
    """Notes each call made while an event is recorded: the request, and the answer or the error.

    Outermost in an agent's stack, so what it records is what the agent's code saw (a budget
    refusal included). Costs nothing outside a recorded event.
    """

    async def complete(self, request: CompletionRequest) -> Completion:
        if not capturing():
            return await self.inner.complete(request)
        asked = request_json(request)
        try:
            completion = await self.inner.complete(request)
        except ProviderError as exc:
            note("llm", {"request": asked, "digest": _digest(asked),
                         "error": {"type": exc.__class__.__name__, "message": str(exc), "retryable": exc.retryable}})
            raise
        note("llm", {"request": asked, "digest": _digest(asked), "answer": completion_json(completion)})
        return completion
