"""Cached reads against the emulators on a loopback port: X users and tweets, Jupiter prices.

Calls are counted where they leave the process (an httpx request hook), lookups on a real
Prometheus registry (``puppet_cache_requests_total``); expiry runs on the virtual clock.
"""

from __future__ import annotations

import collections
import random

import httpx2
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.observability.metrics import Metrics
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.social.base import Account, Post
from puppet_engine.solana.jupiter import PRICE_TTL_SECONDS, JupiterAPI, price_cache
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT
from puppet_engine.twitter import TwitterClient, TwitterCredentials
from puppet_engine.twitter.cache import TWEET_TTL_SECONDS, USER_TTL_SECONDS, XReadCache
from puppet_engine.twitter.client import XAccount


class Env:
    def __init__(self, clock: VirtualClock, server: BackgroundServer, http: httpx2.AsyncClient,
                 calls: collections.Counter[str], metrics: Metrics) -> None:
        self.clock, self.server, self.http, self.calls, self.metrics = clock, server, http, calls, metrics
        self.cache = XReadCache(clock.now, metrics.cache_requests)

    async def account(self, username: str) -> TwitterCredentials:
        r = await self.http.post(f"{self.server.url}/sandbox/x/accounts", json={"username": username})
        c = r.json()
        return TwitterCredentials.of(api_key=c["consumer_key"], api_secret=c["consumer_secret"],
                                     access_token=c["access_token"], access_token_secret=c["access_token_secret"],
                                     bearer_token=c["bearer_token"])

    async def client(self, username: str, cache: XReadCache | None = None) -> TwitterClient:
        """A connected agent's client: it knows its own account, as the engine's start makes it."""
        client = TwitterClient(await self.account(username), base_url=f"{self.server.url}/x", http=self.http,
                               clock=self.clock, rng=random.Random(1), cache=cache or self.cache)
        client.remember_me(Account(client.credentials.user_id, username))
        return client

    def looked(self, cache: str, result: str) -> float:
        return self.metrics.registry.get_sample_value(
            "puppet_cache_requests_total", {"cache": cache, "result": result}) or 0.0


@pytest.fixture
async def env():
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=5), clock=clock)
    server = BackgroundServer(sandbox.app)
    await server.start()
    calls: collections.Counter[str] = collections.Counter()

    async def count(request: httpx2.Request) -> None:
        path = request.url.path
        if "/sandbox/" not in path:
            calls[f"{request.method} {path}"] += 1

    async with httpx2.AsyncClient(timeout=10, event_hooks={"request": [count]}) as http:
        yield Env(clock, server, http, calls, Metrics(enabled=True, process_metrics=False))
    await server.stop()


def tweet_reads(env: Env) -> int:
    return sum(n for call, n in env.calls.items() if call.startswith("GET ") and "/2/tweets/" in call)


async def test_a_tweet_and_a_user_are_read_once_for_every_agent(env: Env) -> None:
    ada, bob = await env.client("ada"), await env.client("bob")
    post = await bob.post_tweet("tea at the validator meetup")
    other = XReadCache(env.clock.now)  # a cache of its own: bob's post is not in it
    cara = await env.client("cara", cache=other)
    assert (await cara.get_tweet(post.id)) is not None
    before = tweet_reads(env)
    first = await ada.get_tweet(post.id)  # bob's client stored its own post: no call for ada
    assert first is not None and first.text == "tea at the validator meetup"
    assert tweet_reads(env) == before
    env.cache.forget_tweet(ada.base_url, post.id)
    fetched = [await ada.get_tweet(post.id), await bob.get_tweet(post.id), await ada.get_tweet(post.id)]
    assert all(p is not None and p.id == post.id for p in fetched)
    assert tweet_reads(env) == before + 1  # one call, then two hits from two agents
    assert env.looked("x_tweet", "hit") == 3 and env.looked("x_tweet", "miss") == 1

    assert env.cache.user_by_name(ada.base_url, "bob") is not None  # the tweet's author came with it
    await env.account("erin")  # never seen by any agent
    found = [await ada.get_user("@erin"), await bob.get_user("ERIN")]
    assert found[0] == found[1] and found[0] is not None and found[0].username == "erin"
    assert env.calls["GET /x/2/users/by/username/erin"] == 1
    assert env.looked("x_user_by_username", "hit") == 2 and env.looked("x_user_by_username", "miss") == 1


async def test_entries_expire_on_the_virtual_clock(env: Env) -> None:
    ada = await env.client("ada")
    post = await ada.post_tweet("the kettle sings at dawn")
    await env.account("finn")
    await ada.get_user("finn")
    env.clock.advance(TWEET_TTL_SECONDS - 1)
    before = tweet_reads(env)
    assert await ada.get_tweet(post.id) is not None
    assert tweet_reads(env) == before  # still fresh
    env.clock.advance(2)
    assert await ada.get_tweet(post.id) is not None
    assert tweet_reads(env) == before + 1  # expired: asked again
    env.clock.advance(USER_TTL_SECONDS - TWEET_TTL_SECONDS - 2)
    await ada.get_user("finn")
    assert env.calls["GET /x/2/users/by/username/finn"] == 1  # still fresh
    env.clock.advance(2)
    await ada.get_user("finn")
    assert env.calls["GET /x/2/users/by/username/finn"] == 2  # expired: asked again


async def test_our_own_writes_update_the_cache(env: Env) -> None:
    ada, bob = await env.client("ada"), await env.client("bob")
    post = await ada.post_tweet("maps of rain over the city")
    cached = await bob.get_tweet(post.id)  # posted by us: known without a call…
    assert tweet_reads(env) == 0
    cara = await env.client("cara", cache=XReadCache(env.clock.now))
    assert cached == await cara.get_tweet(post.id)  # …and as X answers for it
    await ada.delete(post.id)
    assert await bob.get_tweet(post.id) is None  # deleted by us: asked again, and gone
    assert tweet_reads(env) == 2

    # Our own account is read again when the client connects: a rename between starts.
    creds = await env.account("dora")
    base = f"{env.server.url}/x"

    async def keys() -> XAccount:
        return XAccount(creds, base)

    dora = TwitterClient(keys=keys, http=env.http, clock=env.clock, cache=env.cache)
    await dora.connect()
    me = await dora.get_me()
    assert env.cache.user_by_id(base, me.id) == me
    env.cache.remember_user(base, Account(me.id, "dora_old"))  # what an earlier start had seen
    await dora.connect()
    assert env.cache.user_by_id(base, me.id) is None and env.cache.user_by_name(base, "dora_old") is None
    assert (await dora.get_me()).username == "dora"
    env.cache.remember_user(base, Account(me.id, "dora2"))  # a rename seen in a read
    assert env.cache.user_by_name(base, "dora") is None and env.cache.user_by_name(base, "dora2") is not None


def test_caches_are_bounded_least_recently_used_first() -> None:
    clock = VirtualClock()
    cache = XReadCache(clock.now, max_tweets=3, max_users=2)
    posts = [Post(id=str(i), text=f"t{i}", author_id=f"u{i}", author_username=f"user{i}") for i in range(5)]
    cache.remember_tweets("x", posts[:3])
    assert cache.tweet("x", "0") is not None  # used: kept over 1
    cache.remember_tweets("x", posts[3:])
    assert len(cache.tweets) == 3 and cache.tweets.maxsize == 3
    assert {p.id for p in posts if cache.tweets.peek(("x", p.id))} == {"0", "3", "4"}
    assert len(cache.users_by_id) == 2 and len(cache.users_by_name) == 2
    assert cache.tweet("elsewhere", "0") is None  # keys carry the API's base URL

    # Our own post is stored only as X would answer for it: with our username and its thread.
    cache.remember_user("x", Account("me", "me_here"))
    cache.remember_own("x", Post(id="10", text="mine", author_id="me"))
    assert cache.tweets.peek(("x", "10")) == Post(id="10", text="mine", author_id="me", author_username="me_here",
                                                  conversation_id="10")
    cache.remember_own("x", Post(id="11", text="reply", author_id="me", referenced_tweets=(("replied_to", "10"),)))
    assert cache.tweets.peek(("x", "11")).conversation_id == "10"
    cache.remember_own("x", Post(id="12", text="to an unknown parent", author_id="me",
                                 referenced_tweets=(("replied_to", "999"),)))
    cache.remember_own("x", Post(id="13", text="by an unknown author", author_id="who"))
    assert cache.tweets.peek(("x", "12")) is None and cache.tweets.peek(("x", "13")) is None


async def test_jupiter_prices_shared_within_their_lifetime(env: Env) -> None:
    shared = price_cache(env.clock.now, env.metrics.cache_requests)
    url = f"{env.server.url}/jupiter/swap/v1"
    one, two = (JupiterAPI(url, http=env.http, clock=env.clock, prices_cache=shared) for _ in range(2))
    first = await one.prices([SOL_MINT, USDC_MINT])
    again = await two.prices([USDC_MINT, SOL_MINT])
    assert first == again
    price_calls = sum(n for call, n in env.calls.items() if "/price/" in call)
    assert price_calls == 1 and env.looked("jupiter_price", "hit") == 2
    env.clock.advance(PRICE_TTL_SECONDS + 1)
    await two.prices([SOL_MINT])
    assert sum(n for call, n in env.calls.items() if "/price/" in call) == 2


async def test_a_disabled_cache_reads_every_time(env: Env) -> None:
    off = XReadCache(env.clock.now, env.metrics.cache_requests, enabled=False)
    ada = await env.client("ada", cache=off)
    post = await ada.post_tweet("every read goes to X")
    for _ in range(3):
        assert await ada.get_tweet(post.id) is not None
    assert tweet_reads(env) == 3 and len(off.tweets) == 0
    assert env.looked("x_tweet", "miss") == 0  # a disabled cache counts nothing
