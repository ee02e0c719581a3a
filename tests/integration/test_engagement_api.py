"""``GET /agents/{id}/engagement`` and the ``puppet_engagement_*`` metrics after days of posts."""

from __future__ import annotations

import re

import httpx2
import sqlalchemy as sa
from api_helpers import KEYS, READ, assert_error, auth
from engagement_helpers import make_engine, persona

from puppet_engine.api import KeyRing, create_app
from puppet_engine.clock import VirtualClock
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.storage.tables import post_metrics

HOUR = 3600.0


async def test_engagement_endpoint_and_metrics(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=4, crowd_rate=0), clock=clock)
    engine = make_engine(sqlite_url, clock, sandbox, persona("ada", peak=[9, 10], learn=True))
    await engine.start()
    await engine.run_until(clock.now() + 4 * 24 * HOUR)
    app = create_app(engine, keys=KeyRing.parse(KEYS))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
        r = await client.get("/agents/ada/engagement", params={"top": 3}, headers=auth(READ))
        assert r.status_code == 200, r.text
        body = r.json()
        assert_error(await client.get("/agents/nobody/engagement", headers=auth(READ)), 404)
        assert_error(await client.get("/agents/ada/engagement", params={"days": 0}, headers=auth(READ)), 422)
        assert (await client.get("/agents/ada/engagement")).status_code == 401
        metrics = (await client.get("/metrics", headers=auth(READ))).text

    async with engine.db.connect() as conn:
        sampled = {r[0] for r in (await conn.execute(sa.select(post_metrics.c.post_id))).fetchall()}
    assert body["posts"] == len(sampled) >= 20 and 0 < body["settled_posts"] < body["posts"]
    assert body["sample_hours"] == [1.0, 6.0, 24.0, 72.0] and body["retention_days"] == 90.0
    assert 0 < body["rate"] < 1 and body["impressions"] > body["interactions"] > 0
    best, worst = body["best"], body["worst"]
    assert len(best) == len(worst) == 3 and best[0]["rate"] >= best[-1]["rate"] >= worst[-1]["rate"]
    assert worst[0]["rate"] <= worst[-1]["rate"]
    for post in best + worst:
        assert post["interactions"] == sum(post[k] for k in ("likes", "replies", "reposts", "quotes", "bookmarks"))
        assert post["age_hours"] >= 0.9 * 24 and post["text"]  # the 24 h slot, taken at most a tenth early
    assert sum(h["posts"] for h in body["by_hour"]) == body["settled_posts"]
    assert len(body["by_hour"]) > 5 and all(0 <= h["hour"] < 24 for h in body["by_hour"])
    assert body["learn_peak_hours"] is True and body["peak_hours"] == (body["learned_peak_hours"] or [9, 10])
    assert body["recent"][0]["posted_at"] >= body["recent"][-1]["posted_at"]

    samples = re.search(r'^puppet_engagement_samples_total\{agent="ada"\} (\S+)$', metrics, re.M)
    rate = re.search(r'^puppet_engagement_rate\{agent="ada"\} (\S+)$', metrics, re.M)
    lookups = re.search(r'^puppet_engagement_lookups_total\{outcome="ok"\} (\S+)$', metrics, re.M)
    assert samples and float(samples.group(1)) >= len(sampled)
    assert rate and 0 < float(rate.group(1)) < 1
    assert lookups and float(lookups.group(1)) >= 10
    await engine.stop()
