"""Health, status, runtime settings, metrics, event history, news, restart of all agents, the live feed."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx2
from api_helpers import ADMIN, READ, assert_error, auth, eventually, harness

from puppet_engine.api.app import close_streams
from puppet_engine.serving import BackgroundServer


async def test_health_status_and_details(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert (await api.client.get("/health")).json() == {"status": "ok", "role": "all", "node": api.engine.owner}
        details = (await api.get("/health/details", key=READ)).json()
        assert details["status"] == "ok"
        assert details["components"]["database"]["status"] == "ok"
        assert "event_queue" in details["components"]

        status = (await api.get("/status", key=READ)).json()
        assert status["agents"] == {"total": 3, "running": 3}
        assert status["database"] == "sqlite" and status["sandbox"] is True
        assert status["events"]["pending"] >= 3


async def test_runtime_settings_apply_live(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        before = (await api.get("/config")).json()
        assert before["engine_concurrency"] == 16
        assert before["puppet_api_keys"] is None or before["puppet_api_keys"] == "***"
        updated = await api.put("/config", json={"log_level": "DEBUG", "mention_poll_seconds": 30,
                                                 "engine_concurrency": 4, "event_max_attempts": 3})
        assert updated.status_code == 200, updated.text
        assert updated.json()["engine_concurrency"] == 4 and updated.json()["log_level"] == "DEBUG"
        engine = api.engine
        assert engine.events.concurrency == 4 and engine.events.max_attempts == 3
        assert engine.services.mention_poll_seconds == 30
        assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
        assert (await api.get("/config")).json()["mention_poll_seconds"] == 30
        await api.put("/config", json={"log_level": "INFO"})

        error = assert_error(await api.put("/config", json={"engine_concurrency": 0}), 422, "validation_error")
        assert error["details"][0]["field"] == "body.engine_concurrency"
        assert_error(await api.put("/config", json={"database_url": "sqlite:///x.db"}), 422)
        assert_error(await api.put("/config", json={"log_level": "LOUD"}), 422)
        assert engine.events.concurrency == 4


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_change_as_agents_act(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        first = await api.get("/metrics", key=READ)
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
        assert 'puppet_agents{state="running"} 3.0' in first.text
        before = _sample(first.text, "puppet_api_request_latency_seconds_count", route="/agents/{agent_id}")
        handled = _sample(first.text, "puppet_events_processed_total", type="post.manual")

        await api.get("/agents/coby")
        accepted = (await api.post("/agents/nova/post", json={"topic": "metrics"})).json()

        async def counted():  # type: ignore[no-untyped-def]
            text = (await api.get("/metrics")).text
            return text if _sample(text, "puppet_events_processed_total", type="post.manual") > handled else None

        text = await eventually(counted)
        assert _sample(text, "puppet_api_request_latency_seconds_count", route="/agents/{agent_id}") > before
        assert accepted["event_id"]
        await api.post("/agents/coby/stop")
        assert 'puppet_agents{state="stopped"} 1.0' in (await api.get("/metrics")).text


async def test_events_history_filters_and_pages(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        everything = (await api.get("/events")).json()
        assert everything["total"] >= 3
        ids = [e["id"] for e in everything["items"]]
        assert ids == sorted(ids, reverse=True)
        posts = (await api.get("/events", params={"type": "post.due"})).json()
        assert posts["total"] == 3 and {e["agent_id"] for e in posts["items"]} == {"coby", "ledger", "nova"}
        prefix = (await api.get("/events", params={"type": "post.*"})).json()
        assert prefix["total"] >= posts["total"]
        coby = (await api.get("/events", params={"agent": "coby", "status": "pending"})).json()
        assert coby["total"] >= 1 and all(e["agent_id"] == "coby" for e in coby["items"])
        async def paged():  # type: ignore[no-untyped-def]  # the engine runs on: retry until no event came between
            every = (await api.get("/events")).json()
            page = (await api.get("/events", params={"limit": 1, "offset": 1})).json()
            same = page["items"][0]["id"] == every["items"][1]["id"] and page["total"] == every["total"]
            return page if same else None

        assert await eventually(paged)
        assert (await api.get("/events", params={"since": 1e10})).json()["total"] == 0
        assert_error(await api.get("/events", params={"status": "sleeping"}), 422)


async def test_news_and_restart_all(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        accepted = await api.post("/news", json={"text": "Validators ship a new client", "agents": ["coby", "nova"]})
        assert accepted.status_code == 202, accepted.text
        scheduled = accepted.json()["events"]
        assert [e["agent_id"] for e in scheduled] == ["coby", "nova"]
        assert all(e["type"] == "news" for e in scheduled)
        news = (await api.get("/events", params={"type": "news"})).json()
        assert news["total"] == 2 and news["items"][0]["payload"]["text"] == "Validators ship a new client"
        assert len({e["payload"]["id"] for e in news["items"]}) == 1  # one news item, one id across agents
        await api.post("/agents/ledger/stop")
        everyone = (await api.post("/news", json={"text": "gm"})).json()["events"]
        assert sorted(e["agent_id"] for e in everyone) == ["coby", "nova"]  # running agents only
        assert_error(await api.post("/news", json={"text": "x", "agents": ["zed"]}), 404)
        assert_error(await api.post("/news", json={}), 422)

        restarted = (await api.post("/system/restart")).json()
        assert restarted == {"restarted": ["coby", "nova"]}
        assert api.engine.manager.running == {"coby", "nova"}


async def test_error_format_for_unknown_routes_and_methods(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert_error(await api.get("/nope"), 404, "not_found")
        assert_error(await api.client.request("PATCH", "/agents", headers=auth(ADMIN)), 405, "method_not_allowed")
        bad_json = await api.client.post("/news", content=b"{not json", headers={**auth(ADMIN),
                                                                              "Content-Type": "application/json"})
        assert_error(bad_json, 422, "validation_error")


async def _read_feed(url: str, want: int, agent: str | None = None) -> list[dict]:
    items: list[dict] = []
    params = {"backlog": "0", **({"agent": agent} if agent else {})}
    async with httpx2.AsyncClient(timeout=30) as client, client.stream(
            "GET", f"{url}/feed", params=params, headers=auth(READ)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                items.append(json.loads(line[5:]))
                if len(items) >= want:
                    return items
    return items


def _listening(hub, count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(hub.listeners >= count)

    return check


async def test_feed_streams_new_activity(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        server = BackgroundServer(api.app)
        await server.start()
        try:
            hub = api.app.state.ctx.feed
            reader = asyncio.create_task(_read_feed(server.url, 1, agent="nova"))
            await eventually(_listening(hub, 1))  # subscribed before the post
            await api.post("/agents/nova/post", json={"text": "Steam rising from a cup, like a block confirming."})
            [item] = await asyncio.wait_for(reader, timeout=30)
            assert item["type"] == "post" and item["agent_id"] == "nova"
            assert item["text"] == "Steam rising from a cup, like a block confirming."

            async with httpx2.AsyncClient(timeout=30) as client, client.stream(
                    "GET", f"{server.url}/feed", params={"backlog": "5", "key": READ}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        assert json.loads(line[5:])["type"] == "post"  # the backlog, via ?key=
                        break
            async with httpx2.AsyncClient() as client:
                assert (await client.get(f"{server.url}/feed")).status_code == 401

            open_stream = asyncio.create_task(_read_feed(server.url, 1000))
            await eventually(_listening(hub, 1))
            close_streams(api.app)  # server shutdown: open streams end instead of holding it up
            assert await asyncio.wait_for(open_stream, timeout=30) == []
        finally:
            await server.stop()
