"""The sandbox issues X accounts one at a time or in a batch, and a fault can refuse issuance
(an agent's start then fails as it would with X down)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.sandbox import Sandbox, SandboxConfig

HOST = "http://sandbox.local"
KEYS = {"user_id", "username", "consumer_key", "consumer_secret", "access_token", "access_token_secret",
        "bearer_token"}


@pytest.fixture
async def http():
    sandbox = Sandbox(SandboxConfig(seed=3), clock=VirtualClock(time.time()))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=HOST) as client:
        yield client


async def fault(http: httpx2.AsyncClient, **spec: Any) -> None:
    assert (await http.post("/sandbox/faults", json={"service": "x", **spec})).status_code == 201


async def usernames(http: httpx2.AsyncClient) -> set[str]:
    return {a["username"] for a in (await http.get("/sandbox/x/accounts")).json()["accounts"]}


async def test_a_fault_on_issuance_refuses_that_many_accounts_with_xs_error_body(http: httpx2.AsyncClient) -> None:
    await fault(http, method="POST", path="/sandbox/x/accounts", status=503, count=2)
    for _ in range(2):
        refused = await http.post("/sandbox/x/accounts", json={"username": "ada"})
        assert refused.status_code == 503
        assert refused.json() == {"title": "Service Unavailable", "detail": "Service Unavailable",
                                  "type": "about:blank", "status": 503}
    assert "ada" not in await usernames(http)  # nothing was issued
    issued = await http.post("/sandbox/x/accounts", json={"username": "ada"})
    assert issued.status_code == 200 and set(issued.json()) == KEYS
    assert (await http.get("/sandbox/faults")).json()["faults"] == []


async def test_x_down_as_a_whole_issues_no_keys_but_a_fault_on_the_api_alone_does(http: httpx2.AsyncClient) -> None:
    await fault(http, path="/2/*", status=503, count=5)
    await fault(http, method="GET", status=500, count=5)
    assert (await http.post("/sandbox/x/accounts", json={"username": "bo"})).status_code == 200
    assert [f["remaining"] for f in (await http.get("/sandbox/faults")).json()["faults"]] == [5, 5]
    await http.delete("/sandbox/faults")
    await fault(http, status=401, count=1)  # every X call: issuance too
    refused = await http.post("/sandbox/x/accounts", json={"username": "cy"})
    assert refused.status_code == 401 and refused.json()["title"] == "Unauthorized"
    assert (await http.post("/sandbox/x/accounts", json={"username": "cy"})).status_code == 200


async def test_a_latency_fault_slows_issuance_and_still_issues(http: httpx2.AsyncClient) -> None:
    await fault(http, method="POST", path="/sandbox/x/accounts", kind="latency", latency_ms=50)
    started = time.monotonic()
    issued = await http.post("/sandbox/x/accounts", json={"username": "dee"})
    assert issued.status_code == 200 and issued.json()["username"] == "dee"
    assert time.monotonic() - started >= 0.05


async def test_a_batch_issues_the_same_accounts_in_order_and_names_each_refused_one(http: httpx2.AsyncClient) -> None:
    known = (await http.post("/sandbox/x/accounts", json={"username": "eve"})).json()
    await fault(http, method="POST", path="/sandbox/x/accounts", status=429, count=2)
    wanted = [{"username": "fay", "name": "Fay"}, {"username": "@gus"}, {"username": "eve"}, {"username": "hal"}]
    answer = await http.post("/sandbox/x/accounts/batch", json={"accounts": wanted})
    assert answer.status_code == 200
    fay, gus, eve, hal = answer.json()["accounts"]
    assert fay == {"username": "fay", "status": 429, "error": {"title": "Too Many Requests",
                                                              "detail": "Too Many Requests",
                                                              "type": "about:blank", "status": 429}}
    assert gus["username"] == "gus" and gus["status"] == 429
    assert eve == known  # idempotent by username, as one at a time
    assert set(hal) == KEYS and hal["access_token"].startswith(hal["user_id"] + "-")
    assert await usernames(http) == {"eve", "hal"}
    again = (await http.post("/sandbox/x/accounts/batch", json={"accounts": wanted})).json()["accounts"]
    assert [a["username"] for a in again] == ["fay", "gus", "eve", "hal"] and again[2:] == [eve, hal]
    assert again[0] == (await http.post("/sandbox/x/accounts", json={"username": "fay"})).json()


async def test_a_batch_is_bounded_and_a_garbled_answer_is_the_whole_batchs(http: httpx2.AsyncClient) -> None:
    too_many = [{"username": f"u{i}"} for i in range(1001)]
    refused = await http.post("/sandbox/x/accounts/batch", json={"accounts": too_many})
    assert refused.status_code == 422 and "1000" in refused.text
    bad = await http.post("/sandbox/x/accounts/batch", json={"accounts": [{"username": "no spaces"}]})
    assert bad.status_code == 422
    await fault(http, method="POST", path="/sandbox/x/accounts", kind="garbage")
    garbled = await http.post("/sandbox/x/accounts/batch", json={"accounts": [{"username": "ivy"}]})
    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.text)
