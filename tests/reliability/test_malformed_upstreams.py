"""Malformed answers from every upstream become that service's error, never a crash.

Each emulator is made to answer with truncated JSON (fault kind ``garbage``) or with a
200 whose body has the wrong shape (missing fields, wrong types, the wrong container),
and the production client for it is called: it must raise a ``ProviderError`` naming
the service (``BadResponse`` when the body is unreadable), and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair
from solders.signature import Signature

from puppet_engine.errors import BadResponse, ProviderError
from puppet_engine.llm.base import ChatMessage, CompletionRequest
from puppet_engine.llm.openai import OpenAIProvider
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.solana.jupiter import JupiterAPI
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT
from puppet_engine.twitter.client import TwitterClient
from puppet_engine.twitter.credentials import TwitterCredentials
from puppet_engine.twitter.ratelimit import RateLimiter

BASE = "http://sandbox.test"

# 200 answers in the wrong shape, shared by every JSON API.
WRONG_SHAPES: list[Any] = [
    None, [], "text", 42, {}, {"data": None}, {"data": "a string"}, {"data": [1, 2]},
    {"data": {"id": 5}}, {"data": [{"id": None, "text": 7}]}, {"result": "x"},
    {"result": {"value": "not an int"}}, {"choices": []}, {"choices": "x"},
    {"choices": [{"message": {"content": 5}}]}, {"outAmount": "lots"},
]


@dataclass
class Upstreams:
    http: httpx2.AsyncClient
    x: TwitterClient
    llm: OpenAIProvider
    rpc: SolanaRpc
    jupiter: JupiterAPI

    async def fault(self, **spec: Any) -> None:
        (await self.http.post("/sandbox/faults", json={"count": 100, **spec})).raise_for_status()

    async def clear(self) -> None:
        (await self.http.delete("/sandbox/faults")).raise_for_status()


@pytest.fixture
async def up() -> AsyncIterator[Upstreams]:
    sandbox = Sandbox(SandboxConfig(seed=5))
    await sandbox.start()
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=BASE, timeout=10)
    body = (await http.post("/sandbox/x/accounts", json={"username": "shape"})).json()
    creds = TwitterCredentials.of(api_key=body["consumer_key"], api_secret=body["consumer_secret"],
                                  access_token=body["access_token"], access_token_secret=body["access_token_secret"],
                                  bearer_token=body["bearer_token"])
    # max_wait 0: an injected 429 is raised at once rather than waited out in real time.
    x = TwitterClient(creds, base_url=f"{BASE}/x", http=http, max_attempts=2, backoff=0.0,
                      limiter=RateLimiter(max_wait=0.0))
    llm = OpenAIProvider("sk-sandbox", base_url=f"{BASE}/openai/v1", http_client=http, max_retries=0)
    rpc = SolanaRpc(f"{BASE}/solana", http=http)
    jupiter = JupiterAPI(f"{BASE}/jupiter/swap/v1", http=http)
    try:
        yield Upstreams(http, x, llm, rpc, jupiter)
    finally:
        await llm.aclose()
        await http.aclose()
        await sandbox.stop()


Call = Callable[[Upstreams], Awaitable[Any]]
WALLET = Keypair().pubkey()
SIGNATURE = Signature.default()

CALLS: dict[str, list[tuple[str, str, Call]]] = {
    "x": [
        ("GET", "/2/users/me", lambda u: u.x.get_me()),
        ("GET", "/2/users/*", lambda u: u.x.get_user_tweets("12345")),
        ("GET", "/2/users/*", lambda u: u.x.get_mentions(since_id="1")),
        ("GET", "/2/tweets/*", lambda u: u.x.get_tweet("12345")),
        ("GET", "/2/tweets/search/recent", lambda u: u.x.search_recent("tea")),
        ("POST", "/2/tweets", lambda u: u.x.post_tweet("a perfectly normal post about tea")),
    ],
    "openai": [
        ("POST", "/v1/chat/completions", lambda u: u.llm.complete(CompletionRequest(
            [ChatMessage("user", "say something about tea")], max_tokens=20))),
    ],
    "solana": [
        ("POST", None, lambda u: u.rpc.lamports(WALLET)),
        ("POST", None, lambda u: u.rpc.block_height()),
        ("POST", None, lambda u: u.rpc.signature_state(SIGNATURE)),
        ("POST", None, lambda u: u.rpc.token_holdings(WALLET)),
    ],
    "jupiter": [
        ("GET", "/swap/v1/quote", lambda u: u.jupiter.quote(SOL_MINT, USDC_MINT, 10_000_000)),
        ("GET", "/price/v3", lambda u: u.jupiter.prices([SOL_MINT, USDC_MINT])),
    ],
}
CASES = [(service, method, path, call) for service, calls in CALLS.items() for method, path, call in calls]
IDS = [f"{service}-{i}" for service, calls in CALLS.items() for i in range(len(calls))]


async def expect_service_error(up: Upstreams, service: str, call: Call, what: str) -> ProviderError:
    try:
        result = await call(up)
    except ProviderError as exc:
        return exc
    except Exception as exc:  # anything else is the bug this file looks for
        raise AssertionError(f"{service} {what}: {type(exc).__name__}: {exc} escaped as a non-service error") from exc
    raise AssertionError(f"{service} {what}: a malformed answer was accepted as {result!r}")


@pytest.mark.parametrize(("service", "method", "path", "call"), CASES, ids=IDS)
async def test_truncated_json_is_a_bad_response_of_that_service(up: Upstreams, service: str, method: str,
                                                                path: str | None, call: Call) -> None:
    await up.fault(service=service, method=method, path=path, kind="garbage")
    error = await expect_service_error(up, service, call, "garbage")
    assert isinstance(error, ProviderError)
    assert isinstance(error, BadResponse) or error.status in (None, 200), repr(error)


@pytest.mark.parametrize(("service", "method", "path", "call"), CASES, ids=IDS)
async def test_wrong_shapes_are_errors_of_that_service(up: Upstreams, service: str, method: str,
                                                       path: str | None, call: Call) -> None:
    accepted = []
    for body in WRONG_SHAPES:
        await up.clear()
        await up.fault(service=service, method=method, path=path, status=200, body=body)
        try:
            result = await call(up)
        except ProviderError:
            continue
        except Exception as exc:
            raise AssertionError(f"{service}: body {body!r}: {type(exc).__name__}: {exc} escaped") from exc
        accepted.append((body, result))
    # A shape may be harmless for one call (an empty list of tweets is a valid answer), but
    # nothing may come back that carries values of the wrong type.
    for body, result in accepted:
        assert_well_typed(result, f"{service} accepted {body!r}")


def assert_well_typed(value: Any, where: str) -> None:
    """What a client returns must hold the types its dataclasses promise."""
    import dataclasses

    if isinstance(value, list | tuple):
        for item in value:
            assert_well_typed(item, where)
    elif isinstance(value, dict):
        for item in value.values():
            assert_well_typed(item, where)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name in ("id", "text", "username", "mint") and item is not None:
                assert isinstance(item, str), f"{where}: {type(value).__name__}.{f.name} = {item!r}"
            assert_well_typed(item, where)


async def test_a_swap_answer_in_the_wrong_shape_is_a_bad_response(up: Upstreams) -> None:
    quote = await up.jupiter.quote(SOL_MINT, USDC_MINT, 10_000_000)
    for body in [{}, {"swapTransaction": "!!not base64!!", "lastValidBlockHeight": 1},
                 {"swapTransaction": 5, "lastValidBlockHeight": "x"}, [], {"swapTransaction": "AAAA"}]:
        await up.clear()
        await up.fault(service="jupiter", method="POST", path="/swap/v1/swap", status=200, body=body)
        error = await expect_service_error(up, "jupiter", lambda u: u.jupiter.swap(quote, str(WALLET)), str(body))
        assert error.service == "jupiter", repr(error)


async def test_error_statuses_with_garbage_bodies_are_still_service_errors(up: Upstreams) -> None:
    for service, method, path, call in CASES:
        for status, body in ((500, "<html>oops</html>"), (429, {"weird": True}), (400, [1, 2]), (404, None)):
            await up.clear()
            await up.fault(service=service, method=method, path=path, status=status, body=body)
            error = await expect_service_error(up, service, call, f"HTTP {status}")
            assert error.service, repr(error)
