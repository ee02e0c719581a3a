"""The X client sends the very request httpx2's ``build_request`` makes (what it did before
building requests itself), and learns rate limits from ``httpx2.Headers`` as from a dict."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx2
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.twitter import TwitterClient, TwitterCredentials
from puppet_engine.twitter.client import encode_query
from puppet_engine.twitter.ratelimit import RateLimiter

ALPHABET = "abcXYZ019-._~ !\"#$%&'()*+,/:;<=>?@[\\]^`{|}é☃😀\u00a0"
BASES = ["https://api.x.com", "http://127.0.0.1:8080/x", "HTTP://Sandbox.Local:80/x", "https://api.x.com:8443"]
PATHS = ["/2/tweets", "/2/users/123/mentions", "/2/users/by/username/é b%41c", "/2/a;b/c~d", "/2/tweets/9?x=1"]
CREDS = TwitterCredentials.of(api_key="ck", api_secret="cs", access_token="42-tok", access_token_secret="ts",
                              bearer_token="bt")


def _text(rng: random.Random, most: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, most)))


def _params(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.2:
        return rng.choice([None, {}])
    values = [lambda: _text(rng), lambda: rng.randint(0, 10**19), lambda: rng.choice([True, False, None]),
              lambda: rng.random(), lambda: [_text(rng), rng.randint(0, 9)], lambda: ()]
    names = ["tweet.fields", "max_results", "since_id", "ids", "query", ""]
    return {rng.choice([*names, _text(rng, 5)]): rng.choice(values)() for _ in range(rng.randint(1, 5))}


class Recorder:
    """A transport that keeps every request and answers with a user."""

    def __init__(self) -> None:
        self.sent: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        return httpx2.Response(200, json={"data": {"id": "1", "username": "someone"}})


def _wire(request: httpx2.Request) -> tuple[Any, ...]:
    """What goes on the wire, but the signature (its nonce is fresh each time)."""
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"authorization"]
    return (request.method, str(request.url), request.url.raw_path, request.url.raw_host, request.url.port,
            headers, request.content, request.extensions)


def test_the_query_is_encoded_as_httpx2_encodes_it() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        params = _params(rng) or {"a": "b"}
        assert encode_query(params) == str(httpx2.QueryParams(params))


@pytest.mark.parametrize("client_kwargs", [{}, {"params": {"lang": "en"}}, {"cookies": {"c": "1"}},
                                           {"base_url": "http://127.0.0.1:9/x"},
                                           {"headers": {"User-Agent": "bench", "X-Extra": "1"}},
                                           {"timeout": httpx2.Timeout(3, read=7)}])
async def test_requests_are_the_ones_build_request_makes(client_kwargs: dict[str, Any]) -> None:
    rng = random.Random(11)
    recorder = Recorder()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(recorder), **client_kwargs) as http:
        for _ in range(400):
            base = rng.choice([*BASES, ""]) if "base_url" in client_kwargs else rng.choice(BASES)
            client = TwitterClient(CREDS, base_url=base, http=http, clock=VirtualClock())
            method, path, params = rng.choice(["GET", "POST", "DELETE"]), rng.choice(PATHS), _params(rng)
            body = {"text": _text(rng), "n": rng.randint(0, 9)} if method == "POST" and rng.random() < 0.8 else None
            try:
                expected = http.build_request(method, client.base_url + path, params=params, json=body)
            except httpx2.InvalidURL:
                with pytest.raises(httpx2.InvalidURL):
                    await client._call(method, path, "endpoint", params=params, body=body)
                continue
            await client._call(method, path, "endpoint", params=params, body=body)
            sent = recorder.sent[-1]
            assert _wire(sent) == _wire(expected)
            assert sent.headers["Authorization"].startswith('OAuth oauth_nonce="')


async def test_a_bearer_only_client_sends_its_token() -> None:
    recorder = Recorder()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(recorder)) as http:
        client = TwitterClient(TwitterCredentials.of(bearer_token="bt"), base_url=BASES[0], http=http)
        await client.get_user("someone")
    assert recorder.sent[-1].headers["Authorization"] == "Bearer bt"
    assert str(recorder.sent[-1].url) == "https://api.x.com/2/users/by/username/someone"


def test_rate_limit_headers_are_read_as_httpx2_headers_answer_them() -> None:
    """Names in any case, a repeated header joined as ``Headers.get`` joins it."""
    clock = VirtualClock()
    reset = int(clock.now()) + 300
    raw = [("X-Rate-Limit-Limit", "50"), ("x-rate-limit-remaining", "0"), ("X-RATE-LIMIT-RESET", str(reset)),
           ("x-user-limit-24hour-remaining", "3"), ("x-user-limit-24hour-reset", str(reset + 900)),
           ("x-app-limit-24hour-reset", "1"), ("x-app-limit-24hour-reset", "2"),
           ("x-app-limit-24hour-remaining", "0")]
    from_headers, from_dict = RateLimiter(clock, margin=0), RateLimiter(clock, margin=0)
    from_headers.release("u", "e", httpx2.Headers(raw))
    joined: dict[str, str] = {}
    for name, value in raw:
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    from_dict.release("u", "e", joined)
    assert from_headers._buckets == from_dict._buckets
    assert from_headers.wait_time("u", "e") == pytest.approx(300)
    assert json.dumps(sorted(from_headers._buckets[("u", "e")].windows)) == \
        '["x-rate-limit", "x-user-limit-24hour"]'
