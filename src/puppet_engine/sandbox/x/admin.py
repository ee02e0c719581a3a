"""Admin surface of the X emulator, mounted at ``/sandbox/x`` (no auth: tests and operators).

- ``POST /accounts`` ``{"username", "name"?}`` → the account's credentials (idempotent by username)
- ``POST /accounts/batch`` ``{"accounts": [{"username", "name"?}, …]}`` (up to 1,000) → ``{"accounts": […]}``,
  each the credentials of ``POST /accounts`` in the same order, or ``{"username", "status", "error"}``
  for one refused by a fault (thousands of agents start with a few calls)
- ``GET /accounts`` → every account, without secrets
- ``GET /tweets?username=U`` → what U posted (every field, replies and retweets included), newest first
- ``POST /tweets`` ``{"username", "text", "reply_to"?, "quote"?}`` → posts as that account
  (created if new; X's text rules apply, rate limits and the reply policy do not)
- ``GET /rate-limits`` / ``POST /rate-limits`` ``{"profile", "limits"?}`` → the active limits
- ``POST /accounts/{username}/rotate`` → new keys for the account; the old ones are refused from now on
- ``GET /stats`` → API answers given so far, by status code and by the consumer key that signed the call,
  and the issuance calls (``{"calls", "accounts"}``: accounts issued, one at a time or in batches)

Issuance can fail on purpose: a fault on ``x``, ``POST /sandbox/x/accounts`` (or on all of X)
refuses one account per use with X's error body for its status (``sandbox/faults.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from puppet_engine.sandbox.faults import Fault, FaultInjector, delay
from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x import render
from puppet_engine.sandbox.x.backend import XBackend

_USERNAME = r"^@?[A-Za-z0-9_]{1,15}$"
ISSUANCE_PATH = "/sandbox/x/accounts"  # what a fault names to refuse account issuance
BATCH_MAX = 1000
GARBLED = '{"user_id":"1","username":"tru'


class NewAccount(BaseModel):
    username: str = Field(pattern=_USERNAME)
    name: str | None = None


class NewAccounts(BaseModel):
    accounts: list[NewAccount] = Field(min_length=1, max_length=BATCH_MAX)


class ScriptedTweet(BaseModel):
    username: str = Field(pattern=_USERNAME)
    text: str
    reply_to: str | None = Field(None, pattern=r"^[0-9]{1,19}$")
    quote: str | None = Field(None, pattern=r"^[0-9]{1,19}$")


class LimitsChange(BaseModel):
    profile: str = "payg"
    limits: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='per endpoint, e.g. {"GET /2/users/:id/mentions": {"user": 5, "app": 5, "window": 900}}',
    )


def build_admin_router(service: XBackend) -> APIRouter:
    router = APIRouter(tags=["sandbox x"])
    state = service.state
    faults: FaultInjector | None = getattr(service.sandbox, "faults", None)
    issuance = {"calls": 0, "accounts": 0}

    def now() -> float:
        return service.sandbox.clock.now()

    async def refusal() -> Fault | None:
        """The fault that refuses the next account (after its latency), or None: issue it."""
        fault = faults.take("x", "POST", ISSUANCE_PATH) if faults is not None else None
        if fault is None:
            return None
        await delay(fault)
        return fault if fault.kind in ("status", "garbage") else None

    def issue(body: NewAccount) -> dict[str, str]:
        issuance["accounts"] += 1
        return state.create_account(body.username.lstrip("@"), body.name, now()).credentials()

    @router.post("/accounts")
    async def create_account(body: NewAccount) -> Any:
        issuance["calls"] += 1
        fault = await refusal()
        if fault is None:
            return issue(body)
        if fault.kind == "garbage":
            return Response(GARBLED, status_code=200, media_type="application/json")
        status = fault.spec.status or 500
        return px.json_response(_error_body(fault), status, fault.spec.headers or None)

    @router.post("/accounts/batch")
    async def create_accounts(body: NewAccounts) -> Any:
        issuance["calls"] += 1
        issued: list[dict[str, Any]] = []
        for wanted in body.accounts:
            fault = await refusal()
            if fault is None:
                issued.append(issue(wanted))
            elif fault.kind == "garbage":  # a garbled body is the whole answer's
                return Response('{"accounts":[' + GARBLED, status_code=200, media_type="application/json")
            else:
                issued.append({"username": wanted.username.lstrip("@"), "status": fault.spec.status or 500,
                               "error": _error_body(fault)})
        return {"accounts": issued}

    @router.post("/accounts/{username}/rotate")
    async def rotate_keys(username: str) -> Any:
        account = state.account_by_username(username)
        if account is None:
            return px.json_response({"detail": f"no account {username!r}"}, 404)
        return state.rotate_keys(account).credentials()

    @router.get("/accounts")
    async def list_accounts() -> dict[str, Any]:
        return {"accounts": [{"user_id": a.user_id, "username": a.username, "name": a.name}
                             for a in state.accounts.values()]}

    @router.get("/tweets")
    async def list_tweets(username: str | None = None) -> dict[str, Any]:
        rows = state.timeline()
        if username is not None:
            account = state.account_by_username(username)
            rows = [t for t in rows if account is not None and t.author_id == account.user_id]
        return {"data": [full_tweet(service, t) for t in rows], "meta": {"result_count": len(rows)}}

    @router.post("/tweets", status_code=201)
    async def post_tweet(body: ScriptedTweet) -> Any:
        author = state.create_account(body.username.lstrip("@"), None, now())
        try:
            tweet = state.create_tweet(author, body.text, now(), reply_to=body.reply_to, quote=body.quote,
                                       enforce_reply_policy=False)
        except px.XError as exc:
            return px.json_response(exc.body, exc.status)
        return {"data": full_tweet(service, tweet)}

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """API answers so far by status code (e.g. no 429 was hit) and by signing consumer key (key rotation)."""
        return {"responses": dict(service.stats), "total": sum(service.stats.values()),
                "by_consumer_key": dict(service.consumer_stats), "issuance": dict(issuance)}

    @router.get("/rate-limits")
    async def get_limits() -> dict[str, Any]:
        return service.limits.describe()

    @router.post("/rate-limits")
    async def set_limits(body: LimitsChange) -> Any:
        try:
            service.limits.set_profile(body.profile, body.limits)
        except (ValueError, KeyError, TypeError) as exc:
            return Response(str(exc), status_code=400, media_type="text/plain")
        return service.limits.describe()

    return router


def _error_body(fault: Fault) -> Any:
    """X's error body for the fault's status, unless the fault gives its own."""
    return fault.spec.body if fault.spec.body is not None else px.fault_body(fault.spec.status or 500)


def full_tweet(service: XBackend, tweet: Any) -> dict[str, Any]:
    """Every field of a tweet plus its author's username (the admin view)."""
    out = render.tweet_object(service.state, tweet, render.full_fields().tweet)
    out.setdefault("referenced_tweets", [])
    out["username"] = service.state.accounts[tweet.author_id].username
    return out
