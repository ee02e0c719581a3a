"""The X emulator's filtered stream over real HTTP on loopback: rules CRUD with X's bodies and
errors, delivery with matching_rules and keep-alives, one connection per app, faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer

RULES = "/x/2/tweets/search/stream/rules"
STREAM = "/x/2/tweets/search/stream"


class Box:
    def __init__(self, url: str, http: httpx2.AsyncClient) -> None:
        self.url, self.http = url, http
        self.app: dict[str, str] = {}

    async def account(self, username: str) -> dict[str, str]:
        return (await self.http.post("/sandbox/x/accounts", json={"username": username})).json()

    def bearer(self, creds: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(creds or self.app)['bearer_token']}"}

    async def rules(self, body: dict[str, Any], **params: str) -> httpx2.Response:
        return await self.http.post(RULES, json=body, params=params, headers=self.bearer())

    async def post(self, username: str, text: str, **extra: Any) -> str:
        r = await self.http.post("/sandbox/x/tweets", json={"username": username, "text": text, **extra})
        assert r.status_code == 201, r.text
        return str(r.json()["data"]["id"])


async def _serve(**extra: Any):
    sandbox = Sandbox(SandboxConfig(seed=5, extra={"x_stream_keepalive": 0.2, **extra}))
    server = BackgroundServer(sandbox.app)
    await server.start()
    http = httpx2.AsyncClient(base_url=server.url, timeout=10)
    box = Box(server.url, http)
    box.app = await box.account("engineapp")
    return sandbox, server, box


@pytest.fixture
async def box():
    _, server, box = await _serve()
    yield box
    await box.http.aclose()
    await server.stop()


async def _read(response: httpx2.Response, until: int, timeout: float = 5.0) -> list[bytes]:
    """Raw lines (keep-alives included) until ``until`` JSON lines arrived."""
    lines: list[bytes] = []

    async def go() -> None:
        buffer = b""
        async for chunk in response.aiter_raw():
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                lines.append(line)
                if sum(1 for x in lines if x.strip()) >= until:
                    return

    await asyncio.wait_for(go(), timeout)
    return lines


async def test_rules_crud_with_x_bodies_and_errors(box: Box) -> None:
    await box.account("ada")
    r = await box.rules({"add": [{"value": "@ada -from:ada", "tag": "agent:ada"}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["meta"]["summary"] == {"created": 1, "not_created": 0, "valid": 1, "invalid": 0}
    rule_id = body["data"][0]["id"]
    assert body["data"][0] == {"id": rule_id, "value": "@ada -from:ada", "tag": "agent:ada"}

    dup = await box.rules({"add": [{"value": "@ada -from:ada"}]})
    assert dup.status_code == 400
    assert dup.json()["errors"][0]["title"] == "DuplicateRule" and dup.json()["errors"][0]["id"] == rule_id

    bad = await box.rules({"add": [{"value": "(@ada OR"}, {"value": "-from:ada"}, {"value": "nope:x"}]})
    assert bad.status_code == 400
    assert [e["title"] for e in bad.json()["errors"]] == ["UnprocessableEntity"] * 3
    assert "non-negation" in bad.json()["errors"][1]["details"][0]
    assert "invalid operator 'nope:'" in bad.json()["errors"][2]["details"][0]
    assert bad.json()["meta"]["summary"]["invalid"] == 3

    dry = await box.rules({"add": [{"value": "(@ada OR @bob) -is:retweet", "tag": "t"}]}, dry_run="true")
    assert dry.status_code == 200 and dry.json()["meta"]["summary"]["created"] == 0
    listed = (await box.http.get(RULES, headers=box.bearer())).json()
    assert listed["meta"]["result_count"] == 1 and listed["data"][0]["id"] == rule_id

    gone = await box.rules({"delete": {"ids": [rule_id, "123"]}})
    assert gone.json()["meta"]["summary"] == {"deleted": 1, "not_deleted": 1}
    empty = (await box.http.get(RULES, headers=box.bearer())).json()
    assert set(empty) == {"meta"} and empty["meta"]["result_count"] == 0


async def test_rule_limits_follow_the_access_level() -> None:
    sandbox, server, box = await _serve(x_stream_max_rules=2, x_stream_rule_length=20)
    try:
        long = await box.rules({"add": [{"value": "@a OR @b OR @c OR @d OR @e"}]})
        assert long.status_code == 400 and "too long" in long.json()["errors"][0]["details"][0]
        ok = await box.rules({"add": [{"value": "@a"}, {"value": "@b"}]})
        assert ok.status_code == 201
        cap = await box.rules({"add": [{"value": "@c"}]})
        assert cap.status_code == 400 and cap.json()["errors"][0]["title"] == "RulesCapExceeded"
        sandbox.service("x").limits.set_profile("basic")  # no filtered stream on Basic
        refused = await box.http.get(RULES, headers=box.bearer())
        assert refused.status_code == 403 and refused.json()["reason"] == "client-not-enrolled"
        user = await box.account("someone")
        signed_only = await box.http.get(RULES, headers={"Authorization": "OAuth oauth_consumer_key=x"})
        assert signed_only.status_code == 401 and user
    finally:
        await box.http.aclose()
        await server.stop()


async def test_stream_delivers_matches_with_rules_and_keepalives(box: Box) -> None:
    await box.account("ada")
    await box.account("bob")
    added = (await box.rules({"add": [{"value": "@ada -from:ada", "tag": "agent:ada"},
                                      {"value": "(@bob OR @carol) -is:retweet", "tag": "group:1"}]})).json()
    ids = {r["tag"]: r["id"] for r in added["data"]}
    params = {"tweet.fields": "author_id,created_at,conversation_id", "expansions": "author_id"}
    async with box.http.stream("GET", STREAM, params=params, headers=box.bearer()) as response:
        assert response.status_code == 200
        await asyncio.sleep(0.5)  # keep-alives flow while nothing matches
        await box.post("ada", "talking to myself @ada")  # excluded by -from:ada
        first = await box.post("bob", "hello @ada")
        second = await box.post("ada", "hey @bob and @carol")
        lines = await _read(response, until=2)
    payloads = [json.loads(x) for x in lines if x.strip()]
    assert any(not x.strip() for x in lines), "keep-alive newlines expected"
    assert [p["data"]["id"] for p in payloads] == [first, second]
    assert payloads[0]["matching_rules"] == [{"id": ids["agent:ada"], "tag": "agent:ada"}]
    assert payloads[1]["matching_rules"] == [{"id": ids["group:1"], "tag": "group:1"}]
    assert payloads[0]["includes"]["users"][0]["username"] == "bob"
    assert set(payloads[0]["data"]) >= {"author_id", "created_at", "conversation_id", "edit_history_tweet_ids"}


async def test_one_connection_per_app_and_faults(box: Box) -> None:
    await box.account("ada")
    await box.rules({"add": [{"value": "@ada", "tag": "a"}]})
    async with box.http.stream("GET", STREAM, headers=box.bearer()) as first:
        second = await box.http.get(STREAM, headers=box.bearer())
        assert second.status_code == 429
        assert second.json()["connection_issue"] == "TooManyConnections"
        assert second.json()["title"] == "ConnectionException"
        await box.http.post("/sandbox/faults", json={"service": "x", "path": "/2/tweets/search/stream",
                                                     "kind": "drop"})
        lines = await _read(first, until=1)
        assert json.loads(next(x for x in lines if x.strip()))["errors"][0]["title"] == "operational-disconnect"
    # refused: an injected status on the next connection
    await box.http.post("/sandbox/faults", json={"service": "x", "path": "/2/tweets/search/stream",
                                                 "status": 503})
    refused = await box.http.get(STREAM, headers=box.bearer())
    assert refused.status_code == 503
    # stalled: no data, no keep-alive while it lasts; posts meanwhile are lost to this connection
    async with box.http.stream("GET", STREAM, headers=box.bearer()) as response:
        await box.http.post("/sandbox/faults", json={"service": "x", "path": "/2/tweets/search/stream",
                                                     "kind": "stall", "latency_ms": 800})
        await asyncio.sleep(0.15)
        await box.post("bob", "lost @ada")
        got: list[bytes] = []

        async def collect() -> None:
            async for chunk in response.aiter_raw():
                got.append(chunk)

        task = asyncio.create_task(collect())
        await asyncio.sleep(0.5)
        silent = b"".join(got)
        await asyncio.sleep(0.4)  # the stall is over
        kept = await box.post("bob", "after the stall @ada")
        await asyncio.sleep(0.8)
        task.cancel()
    assert silent.strip() == b""
    tail = b"".join(got)
    assert kept.encode() in tail and b"lost @ada" not in tail
