"""The X API v2 emulator in-process: auth, rate limits, text rules, lists and pagination, faults."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from authlib.oauth1.rfc5849.client_auth import ClientAuth
from oauthlib.oauth1 import Client

from puppet_engine.clock import VirtualClock
from puppet_engine.sandbox import Sandbox, SandboxConfig

HOST = "https://sandbox.local"  # authlib signs https URLs only
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}


class X:
    """A test driver: admin calls, and API calls signed with the sandbox clock's time."""

    def __init__(self, sandbox: Sandbox, http: httpx2.AsyncClient) -> None:
        self.sandbox, self.http = sandbox, http
        self.clock: VirtualClock = sandbox.clock  # type: ignore[assignment]

    async def account(self, username: str) -> dict[str, str]:
        return (await self.http.post("/sandbox/x/accounts", json={"username": username})).json()

    async def script(self, username: str, text: str, **extra: Any) -> str:
        r = await self.http.post("/sandbox/x/tweets", json={"username": username, "text": text, **extra})
        assert r.status_code == 201, r.text
        return r.json()["data"]["id"]

    def sign(self, creds: dict[str, str], method: str, path: str) -> tuple[str, dict[str, str]]:
        client = Client(creds["consumer_key"], creds["consumer_secret"], creds["access_token"],
                        creds["access_token_secret"], timestamp=str(int(self.clock.now())))
        url, headers, _ = client.sign(f"{HOST}/x{path}", method, headers={"Content-Type": "application/json"})
        return url, headers

    async def call(self, creds: dict[str, str], method: str, path: str, json: Any = None,
                   bearer: bool = False) -> httpx2.Response:
        if bearer:
            return await self.http.request(method, f"/x{path}", json=json,
                                           headers={"Authorization": f"Bearer {creds['bearer_token']}"})
        url, headers = self.sign(creds, method, path)
        return await self.http.request(method, url, json=json, headers=headers)


@pytest.fixture
async def x():
    sandbox = Sandbox(SandboxConfig(seed=3), clock=VirtualClock(time.time()))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=HOST) as http:
        yield X(sandbox, http)


async def test_accounts_are_idempotent_and_tokens_carry_the_user_id(x: X) -> None:
    first = await x.account("ada")
    assert first == await x.account("ada")
    assert first["access_token"].partition("-")[0] == first["user_id"]
    assert set(first) == {"user_id", "username", "consumer_key", "consumer_secret", "access_token",
                          "access_token_secret", "bearer_token"}
    listed = (await x.http.get("/sandbox/x/accounts")).json()["accounts"]
    assert listed == [{"user_id": first["user_id"], "username": "ada", "name": "ada"}]


async def test_independent_signer_accepted_and_tampering_refused(x: X) -> None:
    ada = await x.account("ada")
    auth = ClientAuth(ada["consumer_key"], ada["consumer_secret"], ada["access_token"], ada["access_token_secret"])
    url = f"{HOST}/x/2/users/me?user.fields=created_at"
    _, headers, _ = auth.prepare("GET", url, {}, b"")
    r = await x.http.get(url, headers=headers)
    assert r.status_code == 200 and r.json()["data"]["username"] == "ada" and "created_at" in r.json()["data"]
    _, headers, _ = auth.prepare("GET", url, {}, b"")
    r = await x.http.get(url.replace("created_at", "description"), headers=headers)  # query not as signed
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    assert (await x.http.get(url, headers=headers)).status_code == 200  # a refused call burns no nonce
    replay = await x.http.get(url, headers=headers)
    assert (replay.status_code, replay.json()) == (401, UNAUTHORIZED)
    stranger = ClientAuth("unknown", "s", ada["access_token"], ada["access_token_secret"])
    _, headers, _ = stranger.prepare("GET", url, {}, b"")
    assert (await x.http.get(url, headers=headers)).status_code == 401
    assert (await x.http.get(url)).json() == UNAUTHORIZED


async def test_stale_timestamp_refused(x: X) -> None:
    ada = await x.account("ada")
    url, headers = x.sign(ada, "GET", "/2/users/me")
    x.clock.advance(301)
    r = await x.http.get(url, headers=headers)
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)


async def test_signature_checked_against_the_public_base_url() -> None:
    sandbox = Sandbox(SandboxConfig(x_public_base_url="https://api.x.com"), clock=VirtualClock(time.time()))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=HOST) as http:
        ada = (await http.post("/sandbox/x/accounts", json={"username": "ada"})).json()
        auth = ClientAuth(ada["consumer_key"], ada["consumer_secret"], ada["access_token"],
                          ada["access_token_secret"])
        _, headers, _ = auth.prepare("GET", "https://api.x.com/2/users/me", {}, b"")
        assert (await http.get("/x/2/users/me", headers=headers)).status_code == 200
        _, headers, _ = auth.prepare("GET", f"{HOST}/x/2/users/me", {}, b"")
        assert (await http.get("/x/2/users/me", headers=headers)).status_code == 401


async def test_bearer_reads_but_cannot_write(x: X) -> None:
    ada = await x.account("ada")
    r = await x.call(ada, "GET", f"/2/users/{ada['user_id']}/tweets", bearer=True)
    assert r.status_code == 200 and r.json() == {"meta": {"result_count": 0}}
    assert r.headers["x-rate-limit-limit"] == "10000"  # the per-app window
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "hi"}, bearer=True)
    assert r.status_code == 403
    assert r.json() == {
        "title": "Unsupported Authentication",
        "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
                  "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
        "type": "https://api.twitter.com/2/problems/unsupported-authentication", "status": 403}
    r = await x.http.get("/x/2/users/me", headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)


async def test_rate_limit_headers_429_and_reset(x: X) -> None:
    ada = await x.account("ada")
    await x.http.post("/sandbox/x/rate-limits", json={"profile": "payg", "limits": {
        "GET /2/users/:id/mentions": {"user": 3, "window": 900}}})
    path = f"/2/users/{ada['user_id']}/mentions"
    remaining = []
    for _ in range(3):
        r = await x.call(ada, "GET", path)
        assert r.status_code == 200
        remaining.append(r.headers["x-rate-limit-remaining"])
    assert remaining == ["2", "1", "0"]
    reset = int(r.headers["x-rate-limit-reset"])
    assert reset == pytest.approx(x.clock.now() + 900, abs=2)
    r = await x.call(ada, "GET", path)
    assert (r.status_code, r.json()) == (429, TOO_MANY)
    assert "retry-after" not in r.headers and r.headers["x-rate-limit-remaining"] == "0"
    assert (await x.call(ada, "GET", path, bearer=True)).status_code == 200  # the app window is separate
    x.clock.set(reset)
    r = await x.call(ada, "GET", path)
    assert r.status_code == 200 and r.headers["x-rate-limit-remaining"] == "2"


async def test_post_tweet_shape_and_daily_headers(x: X) -> None:
    ada = await x.account("ada")
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "gm"})
    assert r.status_code == 201
    tweet_id = r.json()["data"]["id"]
    assert r.json() == {"data": {"id": tweet_id, "text": "gm", "edit_history_tweet_ids": [tweet_id]}}
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        assert {f"{prefix}-limit", f"{prefix}-remaining", f"{prefix}-reset"} <= set(r.headers)
    assert r.headers["x-rate-limit-limit"] == "100" and r.headers["x-app-limit-24hour-remaining"] == "9999"
    second = (await x.call(ada, "POST", "/2/tweets", json={"text": "gn"})).json()["data"]["id"]
    assert int(second) > int(tweet_id) and len(second) == 19


async def test_text_rules(x: X) -> None:
    ada = await x.account("ada")
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "x" * 281})
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"].startswith("Your Tweet text is too long.")
    assert r.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert (await x.call(ada, "POST", "/2/tweets", json={"text": "x" * 280})).status_code == 201
    assert (await x.call(ada, "POST", "/2/tweets", json={"text": "👨‍👩‍👧‍👦" * 140})).status_code == 201
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "$SOL and $JUP"})
    assert r.status_code == 403 and r.json()["title"] == "Forbidden"
    assert (await x.call(ada, "POST", "/2/tweets", json={"text": "only $SOL"})).status_code == 201
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "only $SOL"})
    assert (r.status_code, r.json()) == (403, {
        "detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank",
        "title": "Forbidden", "status": 403})
    x.clock.advance(24 * 3600 + 1)
    assert (await x.call(ada, "POST", "/2/tweets", json={"text": "only $SOL"})).status_code == 201
    r = await x.call(ada, "POST", "/2/tweets", json={"text": ""})
    assert r.status_code == 400
    url, headers = x.sign(ada, "POST", "/2/tweets")
    r = await x.http.post(url, content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["title"] == "Invalid Request"


async def test_replies_rules_and_mentions(x: X) -> None:
    ada, bob = await x.account("ada"), await x.account("bob")
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "hi", "reply": {"in_reply_to_tweet_id": "123"}})
    assert (r.status_code, r.json()["detail"]) == (403, "You attempted to reply to a Tweet that is deleted or not "
                                                        "visible to you.")
    lonely = await x.script("bob", "thinking about tea")
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "me too", "reply": {"in_reply_to_tweet_id": lonely}})
    assert r.status_code == 403 and r.json()["detail"].startswith("Reply to this conversation is not allowed")
    summons = await x.script("bob", "@ada what do you think?")
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "tea", "reply": {"in_reply_to_tweet_id": summons}})
    assert r.status_code == 201
    reply_id = r.json()["data"]["id"]
    fields = "tweet.fields=author_id,conversation_id,in_reply_to_user_id,referenced_tweets&expansions=author_id"
    body = (await x.call(bob, "GET", f"/2/users/{bob['user_id']}/mentions?{fields}")).json()
    assert [t["id"] for t in body["data"]] == [reply_id]
    assert body["data"][0] == {
        "id": reply_id, "text": "tea", "edit_history_tweet_ids": [reply_id], "author_id": ada["user_id"],
        "conversation_id": summons, "in_reply_to_user_id": bob["user_id"],
        "referenced_tweets": [{"type": "replied_to", "id": summons}]}
    assert body["includes"] == {"users": [{"id": ada["user_id"], "name": "ada", "username": "ada"}]}
    r = await x.call(bob, "POST", "/2/tweets", json={"text": "ok", "reply": {"in_reply_to_tweet_id": reply_id}})
    assert r.status_code == 201  # ada's reply engaged bob
    assert (await x.call(ada, "DELETE", f"/2/tweets/{reply_id}")).json() == {"data": {"deleted": True}}
    r = await x.call(bob, "POST", "/2/tweets", json={"text": "?", "reply": {"in_reply_to_tweet_id": reply_id}})
    assert r.status_code == 403


async def test_pagination_since_until_and_empty(x: X) -> None:
    ada = await x.account("ada")
    ids = [await x.script("crowd", f"@ada message {i}") for i in range(12)]
    path = f"/2/users/{ada['user_id']}/mentions"
    seen, token, pages = [], None, 0
    while True:
        r = await x.call(ada, "GET", path + "?max_results=5" + (f"&pagination_token={token}" if token else ""))
        body = r.json()
        pages += 1
        seen += [t["id"] for t in body["data"]]
        assert body["meta"]["newest_id"] == body["data"][0]["id"]
        assert body["meta"]["oldest_id"] == body["data"][-1]["id"]
        assert body["meta"]["result_count"] == len(body["data"])
        token = body["meta"].get("next_token")
        if token is None:
            break
    assert pages == 3 and seen == list(reversed(ids))
    body = (await x.call(ada, "GET", f"{path}?since_id={ids[9]}")).json()
    assert [t["id"] for t in body["data"]] == [ids[11], ids[10]]
    body = (await x.call(ada, "GET", f"{path}?since_id={ids[3]}&until_id={ids[6]}")).json()
    assert [t["id"] for t in body["data"]] == [ids[5], ids[4]]
    r = await x.call(ada, "GET", f"{path}?since_id={ids[11]}")
    assert r.status_code == 200 and r.json() == {"meta": {"result_count": 0}}
    r = await x.call(ada, "GET", f"{path}?max_results=101")
    assert r.json()["errors"][0] == {"parameters": {"max_results": ["101"]},
                                     "message": "The `max_results` query parameter value [101] is not between 5 "
                                                "and 100"}
    assert (await x.call(ada, "GET", f"{path}?since_id=abc")).status_code == 400
    assert (await x.call(ada, "GET", f"{path}?pagination_token=%21%21")).status_code == 400


async def test_search_recent(x: X) -> None:
    ada = await x.account("ada")
    root = await x.script("bob", "@ada validators dream of electric sheep")
    await x.script("ada", "validators are fine", reply_to=root)
    await x.script("carol", "unrelated tea post")
    for i in range(12):
        await x.script("carol", f"tea number {i}")

    async def search(query: str, extra: str = "") -> dict[str, Any]:
        r = await x.call(ada, "GET", f"/2/tweets/search/recent?query={quote(query)}{extra}")
        assert r.status_code == 200, r.text
        return r.json()

    assert [t["text"] for t in (await search("from:ada"))["data"]] == ["validators are fine"]
    assert (await search("validators"))["meta"]["result_count"] == 2
    assert (await search(f"conversation_id:{root}"))["meta"]["result_count"] == 2
    assert (await search("@ada"))["data"][0]["id"] == root
    assert (await search("tea -from:carol")) == {"meta": {"result_count": 0}}
    page = await search("tea")
    assert page["meta"]["result_count"] == 10 and "next_token" in page["meta"]
    rest = await search("tea", f"&next_token={page['meta']['next_token']}")
    assert rest["meta"]["result_count"] == 3 and "next_token" not in rest["meta"]
    r = await x.call(ada, "GET", "/2/tweets/search/recent?query=tea&max_results=5")
    assert r.status_code == 400 and "between 10 and 100" in r.json()["errors"][0]["message"]


async def test_lookups_likes_retweets_and_deletes(x: X) -> None:
    ada, bob = await x.account("ada"), await x.account("bob")
    post = await x.script("bob", "a post worth liking")
    r = await x.call(ada, "GET", f"/2/tweets/{post}?tweet.fields=public_metrics,author_id")
    assert r.json()["data"]["author_id"] == bob["user_id"]
    r = await x.call(ada, "GET", "/2/tweets/42")
    assert r.status_code == 200 and r.json()["errors"][0]["title"] == "Not Found Error"
    r = await x.call(ada, "GET", f"/2/tweets?ids={post},42")
    assert [t["id"] for t in r.json()["data"]] == [post] and r.json()["errors"][0]["resource_id"] == "42"
    r = await x.call(ada, "GET", "/2/users/by/username/BOB")
    assert r.json() == {"data": {"id": bob["user_id"], "name": "bob", "username": "bob"}}
    assert "errors" in (await x.call(ada, "GET", "/2/users/by/username/nobody")).json()
    assert (await x.call(ada, "GET", f"/2/users/{bob['user_id']}")).json()["data"]["username"] == "bob"
    like = f"/2/users/{ada['user_id']}/likes"
    assert (await x.call(ada, "POST", like, json={"tweet_id": post})).json() == {"data": {"liked": True}}
    assert (await x.call(bob, "POST", like, json={"tweet_id": post})).status_code == 403  # not bob's path
    r = await x.call(ada, "POST", f"/2/users/{ada['user_id']}/retweets", json={"tweet_id": post})
    assert r.json()["data"]["retweeted"] is True
    metrics = (await x.call(ada, "GET", f"/2/tweets/{post}?tweet.fields=public_metrics")).json()["data"]
    assert metrics["public_metrics"]["like_count"] == 1 and metrics["public_metrics"]["retweet_count"] == 1
    assert (await x.call(ada, "DELETE", f"{like}/{post}")).json() == {"data": {"liked": False}}
    r = await x.call(ada, "DELETE", f"/2/users/{ada['user_id']}/retweets/{post}")
    assert r.json() == {"data": {"retweeted": False}}
    assert (await x.call(ada, "DELETE", f"/2/tweets/{post}")).status_code == 403  # bob's tweet
    assert (await x.call(ada, "DELETE", "/2/tweets/42")).status_code == 404


async def test_faults_use_x_bodies(x: X) -> None:
    ada = await x.account("ada")
    await x.http.post("/sandbox/faults", json={"service": "x", "path": "/2/tweets", "status": 429})
    await x.http.post("/sandbox/faults", json={"service": "x", "path": "/2/users/me", "status": 503})
    r = await x.call(ada, "POST", "/2/tweets", json={"text": "hi"})
    assert (r.status_code, r.json()) == (429, TOO_MANY) and "x-rate-limit-reset" in r.headers
    r = await x.call(ada, "GET", "/2/users/me")
    assert r.status_code == 503 and r.json()["title"] == "Service Unavailable"
    assert (await x.call(ada, "POST", "/2/tweets", json={"text": "hi"})).status_code == 201


async def test_snapshot_roundtrip(x: X) -> None:
    ada = await x.account("ada")
    bob = await x.account("bob")
    tweet = await x.script("ada", "remember me")
    mention = await x.script("bob", "@ada hello there")
    data = x.sandbox.service("x").snapshot()
    fresh = Sandbox(SandboxConfig(seed=99), clock=x.clock)
    fresh.service("x").restore(data)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fresh.app), base_url=HOST) as http:
        again = X(fresh, http)
        assert await again.account("ada") == ada
        r = await again.call(ada, "GET", f"/2/tweets/{tweet}")
        assert r.json()["data"]["text"] == "remember me"
        # the per-user indexes are rebuilt: timelines, mentions and the duplicate rule
        r = await again.call(ada, "GET", f"/2/users/{ada['user_id']}/mentions")
        assert [t["id"] for t in r.json()["data"]] == [mention]
        r = await again.call(ada, "GET", f"/2/users/{bob['user_id']}/tweets")
        assert [t["id"] for t in r.json()["data"]] == [mention]
        r = await again.call(ada, "POST", "/2/tweets", json={"text": "remember me"})
        assert r.status_code == 403 and "duplicate" in r.text


async def test_deleting_a_missing_tweet_can_be_configured_to_succeed() -> None:
    sandbox = Sandbox(SandboxConfig(extra={"x_delete_missing": "ok"}), clock=VirtualClock(time.time()))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=HOST) as http:
        x = X(sandbox, http)
        ada = await x.account("ada")
        r = await x.call(ada, "DELETE", "/2/tweets/42")
        assert (r.status_code, r.json()) == (200, {"data": {"deleted": False}})
