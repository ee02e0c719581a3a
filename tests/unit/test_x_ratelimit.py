"""The header-driven RateLimiter and the X error mapping, without a network."""

from __future__ import annotations

import asyncio

import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    BudgetExceeded,
    ContentRejected,
    DuplicateContent,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.twitter.errors import error_for, retry_after
from puppet_engine.twitter.ratelimit import RateLimiter

EP = "GET /2/users/:id/mentions"


def headers(remaining: int, reset: float, limit: int = 5) -> dict[str, str]:
    return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(reset))}


async def test_unknown_endpoints_go_at_once_and_spent_windows_wait(virtual_clock: VirtualClock) -> None:
    limiter = RateLimiter(virtual_clock, margin=0)
    await limiter.acquire("u", EP)
    reset = virtual_clock.now() + 100
    limiter.release("u", EP, headers(0, reset))
    assert limiter.wait_time("u", EP) == pytest.approx(100)
    assert limiter.wait_time("other", EP) == 0 and limiter.wait_time("u", "GET /2/users/me") == 0
    waiter = asyncio.ensure_future(limiter.acquire("u", EP))
    await asyncio.sleep(0)
    assert not waiter.done() and virtual_clock.next_deadline() == pytest.approx(reset)
    virtual_clock.set(reset)
    await asyncio.wait_for(waiter, 1)
    assert virtual_clock.now() == reset


async def test_in_flight_calls_count_against_what_is_left(virtual_clock: VirtualClock) -> None:
    limiter = RateLimiter(virtual_clock, max_wait=10)
    await limiter.acquire("u", EP)
    limiter.release("u", EP, headers(2, virtual_clock.now() + 900))
    await limiter.acquire("u", EP)
    await limiter.acquire("u", EP)  # two in flight use the two calls left
    with pytest.raises(RateLimited) as info:
        await limiter.acquire("u", EP)
    assert info.value.retry_after == pytest.approx(901)
    limiter.release("u", EP, headers(0, virtual_clock.now() + 900))
    limiter.release("u", EP, headers(1, virtual_clock.now() + 900))  # answers out of order: keep the lower
    assert limiter.wait_time("u", EP) > 0


async def test_a_new_window_replaces_the_old_and_429_spends_it(virtual_clock: VirtualClock) -> None:
    limiter = RateLimiter(virtual_clock, margin=0)
    limiter.release("u", EP, headers(0, virtual_clock.now() + 50))
    limiter.release("u", EP, headers(4, virtual_clock.now() + 950))
    assert limiter.wait_time("u", EP) == 0
    limiter.release("u", EP, {}, status=429)  # a 429 without headers spends the known window
    assert limiter.wait_time("u", EP) == pytest.approx(950)
    fresh = RateLimiter(virtual_clock, margin=0)
    fresh.release("u", EP, {}, status=429)  # ... or, with none known, a minute
    assert fresh.wait_time("u", EP) == pytest.approx(60)


async def test_daily_post_cap_blocks_too(virtual_clock: VirtualClock) -> None:
    limiter = RateLimiter(virtual_clock, margin=0, max_wait=100)
    day = virtual_clock.now() + 86_400
    limiter.release("u", "POST /2/tweets", {**headers(50, virtual_clock.now() + 900, 100),
                                            "x-user-limit-24hour-limit": "17", "x-user-limit-24hour-remaining": "0",
                                            "x-user-limit-24hour-reset": str(int(day))})
    with pytest.raises(RateLimited) as info:
        await limiter.acquire("u", "POST /2/tweets")
    assert info.value.retry_after == pytest.approx(86_400)


def _err(status: int, body: bytes, posting: bool = False, hdrs: dict[str, str] | None = None) -> Exception:
    return error_for(status, body, hdrs or {}, where="POST /2/tweets", now=1000.0, posting=posting)


def test_error_mapping() -> None:
    assert isinstance(_err(401, b'{"title":"Unauthorized","status":401,"detail":"Unauthorized"}'), AuthError)
    dup = _err(403, b'{"detail":"You are not allowed to create a Tweet with duplicate content.","status":403}')
    assert isinstance(dup, DuplicateContent) and "duplicate content" in str(dup) and str(dup).startswith("x: ")
    assert isinstance(_err(403, b'{"detail":"Reply to this conversation is not allowed"}'), ContentRejected)
    assert isinstance(_err(403, b'{"type":"https://api.twitter.com/2/problems/unsupported-authentication"}'),
                      AuthError)
    too_long = b'{"errors":[{"message":"Your Tweet text is too long."}],"title":"Invalid Request"}'
    assert isinstance(_err(400, too_long, posting=True), ContentRejected)
    assert isinstance(_err(400, too_long), BadResponse)
    assert isinstance(_err(402, b'{"title":"CreditsDepleted"}'), BudgetExceeded)
    assert isinstance(_err(503, b"<html>"), ServiceUnavailable)
    assert isinstance(_err(403, b"<html>"), BadResponse)
    limited = _err(429, b'{"title":"Too Many Requests"}', hdrs=headers(0, 1120))
    assert isinstance(limited, RateLimited) and limited.retry_after == 120
    assert retry_after({}, 1000.0) == 60.0
