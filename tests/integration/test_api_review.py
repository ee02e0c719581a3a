"""``/review`` over HTTP: list with context, approve (as is, edited, refused edit), reject with a
reason, bulk approve, scopes, the audit trail, the live feed and the rejection counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from api_helpers import ADMIN, CONTROL, KEYS, READ, assert_error, auth

from puppet_engine.api import KeyRing, create_app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import actions

HOUR = 3600.0


def persona(agent_id: str) -> dict[str, Any]:
    return {"id": agent_id, "llm_provider": "fake",
            "personality": {"interests": ["tea", "validators"]},
            "style_guide": {"vocabulary": {"avoid_terms": ["moon"]}},
            "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 1.5}},
            "review": {"kinds": ["posts"]}}


@asynccontextmanager
async def review_api(tmp_path: Path) -> AsyncIterator[tuple[Engine, httpx2.AsyncClient, VirtualClock]]:
    clock = VirtualClock()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", embedder="hashing",  # type: ignore[call-arg]
                        _env_file=None)
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(persona("ivy")), parse_agent_config(persona("jo"))],
                                            clock=clock, seed=5, sandbox=Sandbox(SandboxConfig(), clock=clock)))
    await engine.start()
    await engine.run_until(clock.now() + 3 * HOUR)  # a few held posts each
    app = create_app(engine, keys=KeyRing.parse(KEYS), feed_interval=0.1)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
        client.feed = app.state.ctx.feed  # type: ignore[attr-defined]
        yield engine, client, clock
    await engine.stop()


async def sent_texts(engine: Engine, agent_id: str) -> list[str]:
    body = (await engine.wiring.http.get(f"{engine.wiring.sandbox_url}/sandbox/x/tweets",
                                         params={"username": agent_id})).json()
    return [t["text"] for t in body.get("data", body.get("tweets", []))]


async def test_list_filter_and_decide_with_scopes_and_audit(tmp_path: Path) -> None:
    async with review_api(tmp_path) as (engine, client, clock):
        listed = (await client.get("/review", headers=auth(READ))).json()
        assert listed["total"] >= 4 and {i["agent_id"] for i in listed["items"]} == {"ivy", "jo"}
        ivy = (await client.get("/review", params={"agent": "ivy", "kind": "posts"}, headers=auth(READ))).json()
        assert ivy["items"] and all(i["agent_id"] == "ivy" and i["kind"] == "posts" for i in ivy["items"])
        assert (await client.get("/review", params={"kind": "replies"}, headers=auth(READ))).json()["total"] == 0
        first, second = ivy["items"][0], ivy["items"][1]
        assert first["text"] and first["reasons"] == ["posts need approval"] and first["state"] == "waiting"

        assert_error(await client.post(f"/review/{first['id']}/approve", headers=auth(READ)), 403)
        assert_error(await client.post(f"/review/{first['id']}/approve"), 401)
        refused = await client.post(f"/review/{first['id']}/approve", headers=auth(CONTROL),
                                    json={"text": "straight to the moon"})
        error = assert_error(refused, 422, "edit_refused")
        assert any("moon" in r for r in error["details"]["reasons"])
        edited = "Tea first, validators after. That is the whole plan."
        ok = await client.post(f"/review/{first['id']}/approve", headers=auth(CONTROL), json={"text": edited})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["state"] == "approved" and body["text"] == edited
        [decision] = body["decisions"]
        assert decision["decision"] == "approved" and decision["edited"] is True
        assert decision["decided_by"].startswith("control:") and CONTROL not in decision["decided_by"]
        assert decision["decided_at"] == clock.now()
        assert_error(await client.post(f"/review/{first['id']}/approve", headers=auth(CONTROL)), 409)

        assert_error(await client.post(f"/review/{second['id']}/reject", headers=auth(CONTROL), json={}), 422)
        rejected = await client.post(f"/review/{second['id']}/reject", headers=auth(ADMIN), json={"reason": "Off brand"})
        assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
        assert rejected.json()["decisions"][0]["reason"] == "Off brand"
        assert_error(await client.get("/review/999999", headers=auth(READ)), 404)

        await engine.run_until(clock.now() + 60)
        assert await sent_texts(engine, "ivy") == [edited]  # the approved one, as edited; never the rejected one
        counts = (await client.get("/review/rejections", headers=auth(READ))).json()
        assert counts == {"agents": {"ivy": {"rejected": 1, "reasons": [{"reason": "Off brand", "count": 1}]}}}
        metrics = (await client.get("/metrics", headers=auth(READ))).text
        assert 'puppet_review_rejections_total{agent="ivy",reason="off brand"} 1.0' in metrics
        assert 'puppet_review_decisions_total{agent="ivy",decision="approved"} 1.0' in metrics

        feed = await client.feed.recent(200)  # type: ignore[attr-defined]  # what GET /feed starts with
        reviews = [i for i in feed if i["type"] == "review"]
        assert any(i["status"] == "awaiting_review" for i in reviews)
        assert {i["status"] for i in reviews} >= {"approved", "rejected"}


async def test_bulk_approve_sends_every_waiting_item_of_one_agent_once(tmp_path: Path) -> None:
    async with review_api(tmp_path) as (engine, client, clock):
        assert_error(await client.post("/review/bulk-approve", headers=auth(READ), json={"agent": "jo"}), 403)
        waiting = (await client.get("/review", params={"agent": "jo"}, headers=auth(READ))).json()["items"]
        done = (await client.post("/review/bulk-approve", headers=auth(CONTROL), json={"agent": "jo"})).json()
        assert done == {"approved": [i["id"] for i in waiting], "skipped": []}
        again = (await client.post("/review/bulk-approve", headers=auth(CONTROL), json={"agent": "jo"})).json()
        assert again == {"approved": [], "skipped": []}
        await engine.run_until(clock.now() + 60)
        assert sorted(await sent_texts(engine, "jo")) == sorted(i["text"] for i in waiting)
        assert (await client.get("/review", params={"agent": "ivy"}, headers=auth(READ))).json()["total"] >= 2
        async with engine.db.connect() as conn:
            statuses = {r[0] for r in await conn.execute(sa.select(actions.c.status).where(actions.c.agent_id == "ivy"))}
        assert statuses == {"awaiting_review"}  # the other agent's items still wait
