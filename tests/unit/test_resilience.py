"""One circuit breaker and one retry policy (resilience.py), and the one own-post matcher."""

from __future__ import annotations

import asyncio
import random

import pytest

from puppet_engine.clock import Clock, VirtualClock
from puppet_engine.errors import BadResponse, ContentRejected, RateLimited, ServiceUnavailable
from puppet_engine.resilience import CircuitBreaker, RetryPolicy, transient
from puppet_engine.social import CLOCK_SKEW, Post, find_own


class SteppingClock(Clock):
    """A virtual clock whose sleeps return at once, having moved time on (and noted them)."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_breaker_opens_fails_fast_naming_the_call_and_recovers_after_cooldown() -> None:
    clock, heard = VirtualClock(), []
    breaker = CircuitBreaker("x", clock=clock, failures=3, cooldown=30, on_state=lambda n, s: heard.append((n, s)))
    for _ in range(3):
        breaker.before("POST /2/tweets")
        breaker.failed()
    assert breaker.state == "open"
    with pytest.raises(ServiceUnavailable, match=r"^x: POST /2/tweets: circuit open after 3 failures; next try in 30s"):
        breaker.before("POST /2/tweets")
    clock.advance(30)
    breaker.before("GET /2/users/me")  # the trial
    assert breaker.state == "half_open"
    breaker.failed()  # a failed trial opens it for another cooldown
    assert breaker.state == "open"
    clock.advance(30)
    breaker.before()
    breaker.answered()
    assert breaker.state == "closed" and breaker.consecutive == 0
    assert heard == [("x", "open"), ("x", "half_open"), ("x", "open"), ("x", "half_open"), ("x", "closed")]


def test_a_shared_breaker_lets_every_caller_try_while_half_open_and_a_one_trial_breaker_only_one() -> None:
    clock = VirtualClock()
    shared = CircuitBreaker("x", clock=clock, failures=1, cooldown=10)
    single = CircuitBreaker("llm:openai", clock=clock, failures=1, cooldown=10, service="openai", one_trial=True)
    for breaker in (shared, single):
        breaker.before()
        breaker.failed()
    clock.advance(10)
    shared.before()
    shared.before()  # X: every account's call goes through once cooled down
    single.before()
    with pytest.raises(ServiceUnavailable, match="trial call in progress") as busy:
        single.before()
    assert busy.value.service == "openai"
    single.released()  # the trial was refused (say, content): no verdict, the next call may try
    single.before()
    single.answered()
    assert single.state == "closed"


async def test_retry_policy_retries_transient_failures_with_capped_jittered_backoff() -> None:
    clock = SteppingClock()
    policy = RetryPolicy(attempts=4, backoff=0.5, max_backoff=1.0, rng=random.Random(3))
    failures = [ServiceUnavailable("down", service="jupiter"), BadResponse("garbled", service="jupiter")]
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "quote"

    assert await policy.call(flaky, clock=clock, retry_on=transient) == "quote"
    assert calls == 3
    assert 0.25 <= clock.slept[0] <= 0.5 and 0.5 <= clock.slept[1] <= 1.0  # half to all of 0.5·2^(n-1)
    assert all(policy.delay(n) <= 1.0 for n in range(1, 10))  # capped


async def test_retry_policy_gives_up_on_refusals_and_after_the_last_attempt() -> None:
    clock = SteppingClock()
    policy = RetryPolicy(attempts=3, backoff=0.1)
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise ContentRejected("no", service="jupiter")

    with pytest.raises(ContentRejected):
        await policy.call(refused, clock=clock, retry_on=transient)
    assert calls == 1 and clock.slept == []

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailable("down", service="solana")

    calls = 0
    with pytest.raises(ServiceUnavailable):
        await policy.call(down, clock=clock, retry_on=transient)
    assert calls == 3 and len(clock.slept) == 2


async def test_retry_policy_goes_through_the_breaker_and_stops_retrying_once_it_opens() -> None:
    clock = SteppingClock()
    breaker = CircuitBreaker("solana", clock=clock, failures=2, cooldown=60)
    policy = RetryPolicy(attempts=5, backoff=0.1)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailable("node down", service="solana")

    with pytest.raises(ServiceUnavailable, match="node down"):
        await policy.call(down, clock=clock, breaker=breaker, where="getBalance", retry_on=transient, unwell=transient)
    assert calls == 2 and breaker.state == "open"  # no third try into an open circuit
    with pytest.raises(ServiceUnavailable, match="getBalance: circuit open"):
        await policy.call(down, clock=clock, breaker=breaker, where="getBalance", retry_on=transient, unwell=transient)
    assert calls == 2

    async def limited() -> None:
        raise RateLimited("slow down", service="solana", retry_after=1)

    clock.t += 60
    with pytest.raises(RateLimited):  # an answer, even a refusal, closes the breaker
        await policy.call(limited, clock=clock, breaker=breaker, retry_on=transient, unwell=transient)
    assert breaker.state == "closed"


async def test_a_cancelled_trial_frees_the_one_trial_breaker() -> None:
    breaker = CircuitBreaker("jupiter", failures=1, cooldown=0, one_trial=True)
    breaker.before()
    breaker.failed()

    async def hangs() -> None:
        await asyncio.sleep(10)

    task = asyncio.ensure_future(RetryPolicy(attempts=1).call(hangs, breaker=breaker))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    breaker.before()  # not stuck "in progress"


def test_find_own_matches_text_and_parent_since_the_attempt_within_the_skew() -> None:
    since = 10_000.0
    older = Post("1", "gm", created_at=since - CLOCK_SKEW - 1)  # another action's, with the same words
    skewed = Post("2", "gm ", created_at=since - CLOCK_SKEW + 1, referenced_tweets=(("replied_to", "9"),))
    other_parent = Post("3", "gm", created_at=since, referenced_tweets=(("replied_to", "8"),))
    assert find_own([older, other_parent, skewed], "gm", "9", since=since) is skewed
    assert find_own([older], "gm", None, since=since) is None
    assert find_own([other_parent], "gm", None, since=since) is other_parent
    assert find_own([Post("4", "gm")], " gm", None, since=since) is not None  # no timestamp: text decides
