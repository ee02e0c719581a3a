"""Admin surface of the X emulator, mounted at ``/sandbox/x`` (no auth: tests and operators).

- ``POST /accounts`` ``{"username", "name"?}`` → the account's credentials (idempotent by username)
- ``GET /accounts`` → every account, without secrets
- ``GET /tweets?username=U`` → what U posted (every field, replies and retweets included), newest first
- ``POST /tweets`` ``{"username", "text", "reply_to"?, "quote"?}`` → posts as that account
  (created if new; X's text rules apply, rate limits and the reply policy do not)
- ``GET /rate-limits`` / ``POST /rate-limits`` ``{"profile", "limits"?}`` → the active limits
- ``POST /accounts/{username}/rotate`` → new keys for the account; the old ones are refused from now on
- ``GET /stats`` → API answers given so far, by status code and by the consumer key that signed the call
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x import render
from puppet_engine.sandbox.x.backend import XBackend

_USERNAME = r"^@?[A-Za-z0-9_]{1,15}$"


class NewAccount(BaseModel):
    username: str = Field(pattern=_USERNAME)
    name: str | None = None


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

    def now() -> float:
        return service.sandbox.clock.now()

    @router.post("/accounts")
    async def create_account(body: NewAccount) -> dict[str, str]:
        return state.create_account(body.username.lstrip("@"), body.name, now()).credentials()

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
                "by_consumer_key": dict(service.consumer_stats)}

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


def full_tweet(service: XBackend, tweet: Any) -> dict[str, Any]:
    """Every field of a tweet plus its author's username (the admin view)."""
    out = render.tweet_object(service.state, tweet, render.full_fields().tweet)
    out.setdefault("referenced_tweets", [])
    out["username"] = service.state.accounts[tweet.author_id].username
    return out
