"""The sandbox crowd's engagement with agents' posts, read through the production X client.

Public metrics come from ``GET /2/tweets?ids=…&tweet.fields=public_metrics`` (and the single
lookup); they grow over the post's first hours, depend on the post (fit, length, hour) and
replay identically for the same seed.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import httpx2
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import RateLimited
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.social.base import PostMetrics
from puppet_engine.twitter import TwitterClient, TwitterCredentials

HOUR = 3600.0
HOST = "http://sandbox.local"
DAY0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

ON_TOPIC = "validators keep solana honest: run one at home, watch the votes land, learn what consensus costs"
OFF_TOPIC = "my cat knocked a mug off the shelf again this morning and then stared at me like it was my fault"


class Env:
    def __init__(self, seed: int = 11) -> None:
        self.clock = VirtualClock(DAY0)
        self.sandbox = Sandbox(SandboxConfig(seed=seed, crowd_rate=0), clock=self.clock)
        self.http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.sandbox.app), base_url=HOST)

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.http.request(method, f"/sandbox{path}", **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    async def client(self, username: str) -> TwitterClient:
        c = await self.admin("POST", "/x/accounts", json={"username": username})
        creds = TwitterCredentials.of(api_key=c["consumer_key"], api_secret=c["consumer_secret"],
                                      access_token=c["access_token"], access_token_secret=c["access_token_secret"],
                                      bearer_token=c["bearer_token"])
        return TwitterClient(creds, base_url=f"{HOST}/x", http=self.http, clock=self.clock, rng=random.Random(1))

    async def post_at(self, client: TwitterClient, when: float, text: str) -> str:
        self.clock.set(when)
        return (await client.post_tweet(text)).id


@pytest.fixture
async def env():
    e = Env()
    await e.sandbox.start()
    yield e
    await e.sandbox.stop()
    await e.http.aclose()


async def test_metrics_grow_over_the_first_day_and_never_go_down(env: Env) -> None:
    ada = await env.client("ada")
    await env.admin("POST", "/crowd/interests", json={"username": "ada", "keywords": ["solana validators", "consensus"]})
    post = await env.post_at(ada, DAY0 + 17 * HOUR, ON_TOPIC)
    seen: list[PostMetrics] = []
    for hours in (0, 1, 6, 24, 72):
        env.clock.set(DAY0 + 17 * HOUR + hours * HOUR)
        seen.append((await ada.get_metrics([post]))[post])
    assert seen[0].interactions == 0 and seen[0].impressions == 0
    for earlier, later in itertools.pairwise(seen):
        assert later.impressions >= earlier.impressions and later.interactions >= earlier.interactions
    assert seen[1].impressions < seen[2].impressions < seen[3].impressions
    assert seen[-1].likes > 0 and seen[-1].impressions > 100
    # The single lookup shows the same counts X-style (public_metrics with impressions and bookmarks).
    single = await env.http.get(f"/x/2/tweets/{post}", params={"tweet.fields": "public_metrics"},
                                headers={"Authorization": f"Bearer {ada.credentials.bearer_token}"})
    pm = single.json()["data"]["public_metrics"]
    assert set(pm) == {"like_count", "reply_count", "retweet_count", "quote_count", "bookmark_count",
                       "impression_count"}
    assert pm["like_count"] == seen[-1].likes and pm["impression_count"] == seen[-1].impressions


async def test_the_crowd_rewards_fit_and_busy_hours(env: Env) -> None:
    ada = await env.client("ada")
    await env.admin("POST", "/crowd/interests", json={"username": "ada", "keywords": ["solana validators", "consensus"]})
    fits = await env.post_at(ada, DAY0 + 17 * HOUR, ON_TOPIC)
    misfits = await env.post_at(ada, DAY0 + 17 * HOUR + 60, OFF_TOPIC)
    night = await env.post_at(ada, DAY0 + 29 * HOUR, ON_TOPIC + " tonight")  # 05:00 UTC
    env.clock.set(DAY0 + 10 * 24 * HOUR)
    m = await ada.get_metrics([fits, misfits, night])

    def rate(p: PostMetrics) -> float:
        assert p.impressions
        return p.interactions / p.impressions

    assert m[fits].interactions > 3 * m[misfits].interactions
    assert rate(m[fits]) > 2 * rate(m[misfits])
    assert m[fits].impressions > 2 * m[night].impressions and rate(m[fits]) > rate(m[night])


async def test_the_same_seed_replays_the_same_numbers() -> None:
    counts = []
    for _ in range(2):
        env = Env(seed=23)
        await env.sandbox.start()
        ada = await env.client("ada")
        ids = [await env.post_at(ada, DAY0 + h * HOUR, f"post number {h} about solana and art") for h in range(5)]
        env.clock.set(DAY0 + 48 * HOUR)
        counts.append(await ada.get_metrics(ids))
        await env.sandbox.stop()
        await env.http.aclose()
    assert [counts[0][i] for i in counts[0]] == [counts[1][i] for i in counts[1]]
    assert len({m.likes for m in counts[0].values()}) > 1  # not one constant


async def test_lookups_take_at_most_100_ids_and_count_against_the_limit(env: Env) -> None:
    ada = await env.client("ada")
    ids = [await env.post_at(ada, DAY0 + i * 60, f"note {i} on open source") for i in range(3)]
    too_many = ",".join(ids * 34)  # 102 ids
    r = await env.http.get("/x/2/tweets", params={"ids": too_many, "tweet.fields": "public_metrics"},
                           headers={"Authorization": f"Bearer {ada.credentials.bearer_token}"})
    assert r.status_code == 400 and "between 1 and 100" in r.text
    await env.admin("POST", "/x/rate-limits", json={"profile": "payg",
                                                    "limits": {"GET /2/tweets": {"user": 2, "app": 2, "window": 900}}})
    await ada.get_metrics(ids)
    await ada.get_metrics(ids)
    with pytest.raises(RateLimited) as refused:
        await ada.get_metrics(ids, max_wait=1.0)
    assert 0 < refused.value.retry_after <= 901
