"""TwitterClient against the X emulator served on a loopback port, on a shared virtual clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx2
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ContentRejected,
    DuplicateContent,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.twitter import TwitterClient, TwitterCredentials
from puppet_engine.twitter.ratelimit import RateLimiter

T = TypeVar("T")


class Env:
    def __init__(self, clock: VirtualClock, server: BackgroundServer, http: httpx2.AsyncClient) -> None:
        self.clock, self.server, self.http = clock, server, http

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.http.request(method, f"{self.server.url}/sandbox{path}", **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    async def client(self, username: str, *, bearer_only: bool = False, **kwargs: Any) -> TwitterClient:
        c = await self.admin("POST", "/x/accounts", json={"username": username})
        creds = (TwitterCredentials.of(bearer_token=c["bearer_token"]) if bearer_only else TwitterCredentials.of(
            api_key=c["consumer_key"], api_secret=c["consumer_secret"], access_token=c["access_token"],
            access_token_secret=c["access_token_secret"], bearer_token=c["bearer_token"]))
        return TwitterClient(creds, base_url=f"{self.server.url}/x", http=self.http, clock=self.clock,
                             rng=random.Random(1), **kwargs)

    async def drive(self, work: Awaitable[T]) -> T:
        """Run ``work``, moving the virtual clock to the next sleeper's deadline whenever one waits."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.sleep(0.002)
            deadline = self.clock.next_deadline()
            if deadline is not None:
                self.clock.set(deadline)
        return task.result()


@pytest.fixture
async def env():
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=5), clock=clock)
    server = BackgroundServer(sandbox.app)
    await server.start()
    async with httpx2.AsyncClient(timeout=10) as http:
        yield Env(clock, server, http)
    await server.stop()


async def test_post_reply_read_and_delete(env: Env) -> None:
    ada = await env.client("ada")
    me = await ada.get_me()
    assert me.username == "ada" and me.id == ada.credentials.user_id
    first = await ada.post_tweet("validators dream of $SOL")
    assert first.author_id == me.id and first.text == "validators dream of $SOL"
    reply = await ada.post_tweet("and of electric sheep", reply_to=first.id)
    assert reply.replied_to == first.id
    fetched = await ada.get_tweet(reply.id)
    assert fetched is not None and fetched.author_username == "ada" and fetched.conversation_id == first.id
    assert fetched.created_at == pytest.approx(env.clock.now(), abs=1)
    chain = await ada.get_conversation(fetched)
    assert [t.id for t in chain] == [first.id, reply.id]
    assert [t.id for t in await ada.get_user_tweets()] == [reply.id, first.id]
    assert await ada.get_tweet("42") is None
    bob = await env.client("bob")
    await bob.like(first.id)
    assert await bob.retweet(first.id)
    found = await bob.search_recent("from:ada sheep")
    assert [t.id for t in found] == [reply.id]
    assert (await bob.get_user("ada")) == me and await bob.get_user("nobody") is None
    await ada.delete(reply.id)
    await ada.delete(reply.id)  # already gone: nothing to do
    assert await ada.get_tweet(reply.id) is None


async def test_mentions_since_id_pagination_oldest_first(env: Env) -> None:
    ada = await env.client("ada")
    ids = []
    for i in range(130):
        body = await env.admin("POST", "/x/tweets", json={"username": f"fan{i % 7}", "text": f"@ada question {i}"})
        ids.append(body["data"]["id"])
    first_poll = await ada.get_mentions(limit=20)
    assert [t.id for t in first_poll] == ids[-20:]  # no cursor yet: only the newest, oldest first
    mentions = await ada.get_mentions(since_id=ids[0])
    assert [t.id for t in mentions] == ids[1:101]  # the oldest 100 after the cursor: moving it skips none
    assert mentions[0].author_username == "fan1" and mentions[0].text == "@ada question 1"
    rest = await ada.get_mentions(since_id=mentions[-1].id)
    assert [t.id for t in rest] == ids[101:]
    assert await ada.get_mentions(since_id=ids[-1]) == []
    assert [t.id for t in await ada.get_mentions(since_id=ids[9], limit=5)] == ids[10:15]


async def test_never_sends_a_call_the_headers_said_would_be_refused(env: Env) -> None:
    ada = await env.client("ada")
    await env.admin("POST", "/x/rate-limits", json={"profile": "payg", "limits": {
        "GET /2/users/:id/mentions": {"user": 5, "window": 900}}})
    await env.admin("POST", "/x/tweets", json={"username": "bob", "text": "@ada hi"})
    start = env.clock.now()
    for _ in range(12):
        assert len(await env.drive(ada.get_mentions())) == 1
    stats = await env.admin("GET", "/x/stats")
    assert "429" not in stats["responses"]
    assert env.clock.now() - start >= 2 * 900  # two full windows were waited out, not hit
    impatient = await env.client("ada", limiter=RateLimiter(env.clock, max_wait=10))
    env.clock.advance(901)  # a fresh window
    for _ in range(5):
        await impatient.get_mentions()
    with pytest.raises(RateLimited) as info:
        await impatient.get_mentions()
    assert info.value.retry_after > 10 and info.value.service == "x"
    assert "429" not in (await env.admin("GET", "/x/stats"))["responses"]


async def test_survives_injected_429_and_503(env: Env) -> None:
    ada = await env.client("ada")
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/tweets", "method": "POST", "status": 503,
                                             "count": 2})
    tweet = await env.drive(ada.post_tweet("through the storm"))
    assert tweet.id and (await env.admin("GET", "/faults"))["faults"] == []
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/users/*", "status": 429})
    before = env.clock.now()
    assert await env.drive(ada.get_mentions()) == []
    assert env.clock.now() - before >= 60  # waited for the reset the 429 carried
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/tweets/*", "kind": "garbage"})
    assert await env.drive(ada.get_tweet(tweet.id)) is not None  # a garbled 200 is retried
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/tweets", "status": 503, "count": 9})
    with pytest.raises(ServiceUnavailable):
        await env.drive(ada.post_tweet("never makes it"))
    await env.admin("DELETE", "/faults")
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/tweets/*", "kind": "garbage", "count": 9})
    with pytest.raises(BadResponse):
        await env.drive(ada.get_tweet(tweet.id))


async def test_rule_errors_are_mapped_and_never_retried(env: Env) -> None:
    ada = await env.client("ada")
    await ada.post_tweet("same words")
    with pytest.raises(DuplicateContent) as dup:
        await ada.post_tweet("same words")
    assert dup.value.status == 403 and "duplicate content" in str(dup.value)
    with pytest.raises(ContentRejected, match="deleted or not visible"):
        await ada.post_tweet("hello?", reply_to="12345")
    served = (await env.admin("GET", "/x/stats"))["total"]
    with pytest.raises(ContentRejected, match="weighted length 281"):
        await ada.post_tweet("x" * 281)
    with pytest.raises(ContentRejected, match="cashtag"):
        await ada.post_tweet("$SOL vs $ETH")
    assert (await env.admin("GET", "/x/stats"))["total"] == served  # refused before sending
    await env.admin("POST", "/faults", json={"service": "x", "path": "/2/tweets", "status": 400, "count": 5})
    with pytest.raises(ContentRejected):
        await ada.post_tweet("a fine post")
    assert len((await env.admin("GET", "/faults"))["faults"]) == 1  # one 400, no retry
    await env.admin("DELETE", "/faults")


async def test_bad_credentials_and_bearer_only(env: Env) -> None:
    ada = await env.client("ada")
    forged = TwitterCredentials.of(api_key=ada.credentials.api_key, api_secret="wrong-secret-value",
                                   access_token=ada.credentials.access_token,
                                   access_token_secret=ada.credentials.access_token_secret)
    bad = TwitterClient(forged, base_url=f"{env.server.url}/x", http=env.http, clock=env.clock)
    with pytest.raises(AuthError) as info:
        await bad.get_me()
    message = str(info.value) + repr(forged) + repr(bad)
    for secret in forged.secrets():
        assert secret not in message
    reader = await env.client("ada", bearer_only=True)
    await env.admin("POST", "/x/tweets", json={"username": "bob", "text": "public words"})
    assert [t.text for t in await reader.search_recent("public")] == ["public words"]
    with pytest.raises(AuthError):
        await reader.post_tweet("cannot post")
    with pytest.raises(AuthError):
        TwitterClient(TwitterCredentials(), http=env.http)


class _LosesFirstPostAnswer(httpx2.AsyncBaseTransport):
    """Delivers requests, but drops X's answer to the first post (as a timeout)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.dropped = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/2/tweets") and not self.dropped:
            self.dropped = True
            await response.aclose()
            raise httpx2.ReadTimeout("answer lost", request=request)
        return response


async def test_retried_post_whose_first_attempt_landed_returns_that_post(env: Env) -> None:
    ada = await env.client("ada")
    async with httpx2.AsyncClient(transport=_LosesFirstPostAnswer(), timeout=10) as flaky:
        ada.http = flaky
        tweet = await env.drive(ada.post_tweet("exactly once"))
    posted = (await env.admin("GET", "/x/tweets", params={"username": "ada"}))["data"]
    assert [t["id"] for t in posted] == [tweet.id]


def test_credentials_from_settings_per_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    from puppet_engine.settings import Settings

    monkeypatch.setenv("TWITTER_API_KEY", "shared-key")
    monkeypatch.setenv("TWITTER_API_SECRET", "shared-secret")
    monkeypatch.setenv("TWITTER_ACCESS_TOKEN_COBY", "77-own")
    monkeypatch.setenv("TWITTER_ACCESS_TOKEN_SECRET_COBY", "own-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    coby = TwitterCredentials.from_settings(settings, "coby")
    assert (coby.api_key, coby.access_token, coby.user_id, coby.has_user_context) == ("shared-key", "77-own", "77",
                                                                                       True)
    assert TwitterCredentials.from_settings(settings, "other").access_token == ""
    assert "own-secret" not in repr(coby) and "shared-secret" not in str(coby)
