"""LLM wrappers (fallback, breaker, budget, recording, metrics), the registry and structured decisions."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import (
    BadResponse,
    BudgetExceeded,
    ConfigError,
    ContentRejected,
    ServiceUnavailable,
)
from puppet_engine.llm import (
    BudgetProvider,
    CircuitBreakerProvider,
    FakeProvider,
    FallbackProvider,
    MetricsProvider,
    RecordingProvider,
    build_provider,
    prometheus_hook,
)
from puppet_engine.llm.base import ChatMessage, Completion, CompletionRequest, LLMProvider, Usage
from puppet_engine.llm.structured import decide, strict_schema
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import llm_calls

DAY = 86_400.0


def request(agent: str | None = "ada", text: str = "hello") -> CompletionRequest:
    return CompletionRequest(messages=[ChatMessage("user", text)], agent_id=agent, purpose="post")


class Flaky(LLMProvider):
    """Fails while ``failing`` is set; counts the calls that reached it."""

    def __init__(self, name: str = "grok") -> None:
        self.name, self.failing, self.calls = name, True, 0

    async def complete(self, req: CompletionRequest) -> Completion:
        self.calls += 1
        if self.failing:
            raise ServiceUnavailable("upstream 503", service=self.name, status=503)
        return Completion(text="ok", model="grok-4", provider=self.name, usage=Usage(10, 5))


class Scripted(LLMProvider):
    name = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    async def complete(self, req: CompletionRequest) -> Completion:
        return Completion(text=self.texts.pop(0), model="m", provider=self.name)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_fallback_moves_to_the_next_provider_when_the_primary_is_down() -> None:
    primary, backup = Flaky("grok"), FakeProvider()
    provider = FallbackProvider([primary, backup])
    completion = await provider.complete(request())
    assert completion.provider == "fake" and primary.calls == 1
    primary.failing = False
    assert (await provider.complete(request())).provider == "grok"


async def test_fallback_reports_every_failure_and_never_bypasses_a_budget() -> None:
    with pytest.raises(ServiceUnavailable, match="every provider failed: grok: upstream 503; openai: upstream 503"):
        await FallbackProvider([Flaky("grok"), Flaky("openai")]).complete(request())
    broke = FakeProvider(fail_with=BudgetExceeded("out of tokens", service="budget"))
    backup = FakeProvider()
    with pytest.raises(BudgetExceeded):
        await FallbackProvider([broke, backup]).complete(request())
    assert backup.calls == 0


async def test_breaker_opens_after_consecutive_failures_and_recovers_after_cooldown() -> None:
    clock, inner, states = VirtualClock(), Flaky(), []
    breaker = CircuitBreakerProvider(inner, clock=clock, failures=3, cooldown=60,
                                     on_state=lambda dep, state: states.append((dep, state)))
    for _ in range(3):
        with pytest.raises(ServiceUnavailable, match="upstream"):
            await breaker.complete(request())
    assert breaker.state == "open"
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await breaker.complete(request())
    assert inner.calls == 3  # fails fast without calling the provider
    clock.advance(61)
    with pytest.raises(ServiceUnavailable, match="upstream"):  # the half-open trial fails: open again
        await breaker.complete(request())
    assert breaker.state == "open" and inner.calls == 4
    clock.advance(30)
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await breaker.complete(request())
    clock.advance(31)
    inner.failing = False
    assert (await breaker.complete(request())).text == "ok"
    assert breaker.state == "closed"
    assert [s for _, s in states] == ["open", "half_open", "open", "half_open", "closed"]
    assert states[0][0] == "llm:grok"


async def test_breaker_ignores_refused_content() -> None:
    breaker = CircuitBreakerProvider(FakeProvider(fail_with=ContentRejected("policy")), failures=1)
    with pytest.raises(ContentRejected):
        await breaker.complete(request())
    assert breaker.state == "closed"


async def test_budget_runs_out_per_agent_and_resets_the_next_day() -> None:
    clock = VirtualClock()
    provider = BudgetProvider(FakeProvider(), 60, clock=clock)
    used = 0
    while used < 60:
        used += (await provider.complete(request("ada"))).usage.total_tokens
    with pytest.raises(BudgetExceeded, match=f"agent ada used {used} of its 60 daily tokens"):
        await provider.complete(request("ada"))
    assert (await provider.complete(request("bob"))).text  # others keep their own budget
    assert (await provider.complete(request(None))).text  # calls for no agent are not counted
    assert await provider.remaining("ada") == 0
    clock.advance(DAY)
    assert await provider.remaining("ada") == 60
    assert (await provider.complete(request("ada"))).text


async def test_recording_writes_every_call_and_a_restart_keeps_the_budget(database, virtual_clock) -> None:
    budgeted = BudgetProvider(FakeProvider("gpt-4o-mini"), 40, clock=virtual_clock, db=database)
    provider = RecordingProvider(budgeted, database, clock=virtual_clock)
    with pytest.raises(BudgetExceeded):
        for _ in range(10):
            await provider.complete(request("ada", "write something long about compost " * 5))
    failing = RecordingProvider(Flaky(), database, clock=virtual_clock)
    with pytest.raises(ServiceUnavailable):
        await failing.complete(request("ada"))
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(llm_calls).order_by(llm_calls.c.id))).mappings().all()
    outcomes = [r["outcome"] for r in rows]
    assert outcomes[-2:] == ["skipped", "error"] and set(outcomes[:-2]) == {"ok"}
    ok = rows[0]
    assert ok["agent_id"] == "ada" and ok["provider"] == "fake" and ok["model"] == "gpt-4o-mini"
    assert ok["purpose"] == "post" and ok["prompt_tokens"] > 0 and ok["cost_usd"] > 0
    assert ok["created_at"] == virtual_clock.now()
    assert "upstream 503" in rows[-1]["error"]
    restarted = BudgetProvider(FakeProvider(), 40, clock=virtual_clock, db=database)
    with pytest.raises(BudgetExceeded):
        await restarted.complete(request("ada"))


async def test_metrics_hook_counts_tokens_per_agent_and_provider() -> None:
    from puppet_engine.observability.metrics import Metrics

    metrics = Metrics(enabled=True, process_metrics=False)
    seen = []
    provider = MetricsProvider(MetricsProvider(FakeProvider(), prometheus_hook(metrics)), seen.append)
    completion = await provider.complete(request("ada"))
    value = metrics.registry.get_sample_value("puppet_llm_tokens_total",
                                              {"agent": "ada", "provider": "fake", "kind": "completion"})
    assert value == completion.usage.completion_tokens
    assert seen[0].outcome == "ok" and seen[0].agent_id == "ada"


async def test_registry_builds_from_the_config_string() -> None:
    assert isinstance(build_provider("fake", settings()), FakeProvider)
    wrapped = build_provider("fake", settings(llm_daily_token_budget=100, llm_fallback="openai,fake"))
    assert isinstance(wrapped, BudgetProvider)  # openai has no key: skipped as a fallback
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_provider("openai", settings())
    with pytest.raises(ConfigError, match="unknown llm provider 'claude'"):
        build_provider("claude", settings())
    chain = build_provider("grok", settings(grok_api_key="xai-test", llm_fallback="fake"))
    assert isinstance(chain, FallbackProvider)
    assert isinstance(chain.providers[0], CircuitBreakerProvider) and "xai-test" not in repr(chain.providers[0].inner)
    await chain.aclose()


class Verdict(BaseModel):
    class Reason(BaseModel):
        text: str
        weight: float = 0.5

    reply: bool
    reasons: list[Reason]
    note: str | None = None


def test_strict_schema_inlines_refs_and_requires_every_field() -> None:
    schema = strict_schema(Verdict)
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    assert schema["additionalProperties"] is False and schema["required"] == ["reply", "reasons", "note"]
    item = schema["properties"]["reasons"]["items"]
    assert item["required"] == ["text", "weight"] and item["additionalProperties"] is False


async def test_decide_retries_invalid_json_then_gives_up_clearly() -> None:
    good = json.dumps({"reply": True, "reasons": [{"text": "kind", "weight": 1}], "note": None})
    result = await decide(Scripted("not json at all", f"```json\n{good}\n```"), Verdict,
                          [ChatMessage("user", "decide")])
    assert result.reply and result.reasons[0].text == "kind"
    with pytest.raises(BadResponse, match="no valid Verdict after 2 attempts"):
        await decide(Scripted("{}", "[1]"), Verdict, [ChatMessage("user", "decide")], attempts=2)
    assert isinstance(await FakeProvider().decide(Verdict, [ChatMessage("user", "decide")]), Verdict)


async def test_calls_of_many_agents_finishing_together_are_recorded_in_one_commit(database, virtual_clock) -> None:
    from puppet_engine.llm.wrappers import _call_writer

    providers = [RecordingProvider(FakeProvider(), database, clock=virtual_clock) for _ in range(5)]
    before = _call_writer(database).groups
    await asyncio.gather(*(p.complete(request(f"agent{i}")) for i, p in enumerate(providers)))
    assert _call_writer(database).groups - before == 1
    async with database.connect() as conn:
        agents = (await conn.execute(sa.select(llm_calls.c.agent_id).order_by(llm_calls.c.agent_id))).scalars().all()
    assert agents == [f"agent{i}" for i in range(5)]


async def test_budget_read_live_applies_at_the_next_call() -> None:
    limit = {"tokens": 0}
    provider = BudgetProvider(FakeProvider(), lambda: limit["tokens"], clock=VirtualClock())
    first = await provider.complete(request("ada"))  # unlimited, but counted
    limit["tokens"] = first.usage.total_tokens  # the operator lowers the budget to what was used
    with pytest.raises(BudgetExceeded, match=f"of its {first.usage.total_tokens} daily tokens"):
        await provider.complete(request("ada"))
    limit["tokens"] = 0
    assert (await provider.complete(request("ada"))).text


async def test_an_unlimited_budget_reads_nothing_and_a_later_limit_sees_the_days_use(database, virtual_clock) -> None:
    limit = {"tokens": 0}
    budgeted = BudgetProvider(FakeProvider(), lambda: limit["tokens"], clock=virtual_clock, db=database)
    provider = RecordingProvider(budgeted, database, clock=virtual_clock)
    used = sum([(await provider.complete(request("ada"))).usage.total_tokens for _ in range(3)])
    assert budgeted.used == {}  # unlimited: no read of llm_calls, nothing counted
    limit["tokens"] = used  # the operator sets a budget of what was already used today
    with pytest.raises(BudgetExceeded, match=f"agent ada used {used} of its {used} daily tokens"):
        await provider.complete(request("ada"))
    limit["tokens"] = used + 1000
    assert (await provider.complete(request("bob"))).text  # bob's day is read on his first call


async def test_upstream_error_text_is_trimmed_and_redacted() -> None:
    from puppet_engine.llm.wrappers import UpstreamTextProvider

    class Echo(LLMProvider):
        name = "echo"

        async def complete(self, req: CompletionRequest) -> Completion:
            raise ContentRejected("you sent passphrase-123; " + "x" * 1000, service="echo", status=400)

    provider = UpstreamTextProvider(Echo(), redact=lambda text: text.replace("passphrase-123", "***"))
    with pytest.raises(ContentRejected) as caught:
        await provider.complete(request())
    assert len(str(caught.value)) == 200 and "passphrase-123" not in str(caught.value)
    assert caught.value.status == 400 and caught.value.service == "echo"
