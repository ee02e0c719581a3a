"""The X API v2 endpoints of the emulator (mounted at ``/x``): ``/2/tweets``, ``/2/users`` …

Every call is authenticated (:mod:`.auth`), counted against its rate-limit windows
(:mod:`.limits`) and answered with X's bodies and headers. Write endpoints need user
context; reads also take an app-only bearer token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x import render
from puppet_engine.sandbox.x.auth import Caller
from puppet_engine.sandbox.x.backend import XBackend
from puppet_engine.sandbox.x.oauth import parse_authorization
from puppet_engine.sandbox.x.search import compile_query
from puppet_engine.sandbox.x.state import StoredTweet
from puppet_engine.sandbox.x.stream import StreamHub

Result = tuple[int, dict[str, Any]]
Handler = Callable[[Request, Caller, float], Awaitable[Result]]
USERNAME = re.compile(r"^[A-Za-z0-9_]{1,15}$")
SEARCH_WINDOW = 7 * 24 * 3600.0
MENTIONS_CAP = 800


class XApi:
    def __init__(self, service: XBackend, stream: StreamHub) -> None:
        self.service = service
        self.state = service.state
        self.stream = stream

    def app(self) -> Starlette:
        def route(path: str, method: str, endpoint: str, handler: Handler, *, user_only: bool = False) -> Route:
            async def call(request: Request) -> Response:
                return await self._call(request, endpoint, handler, user_only)
            return Route(path, call, methods=[method])

        return Starlette(routes=[
            route("/2/tweets", "POST", "POST /2/tweets", self.create_tweet, user_only=True),
            route("/2/tweets", "GET", "GET /2/tweets", self.lookup_tweets),
            *self.stream.routes(),
            route("/2/tweets/search/recent", "GET", "GET /2/tweets/search/recent", self.search_recent),
            route("/2/tweets/{id}", "GET", "GET /2/tweets/:id", self.get_tweet),
            route("/2/tweets/{id}", "DELETE", "DELETE /2/tweets/:id", self.delete_tweet, user_only=True),
            route("/2/users/me", "GET", "GET /2/users/me", self.me, user_only=True),
            route("/2/users/by/username/{username}", "GET", "GET /2/users/by/username/:username", self.user_by_name),
            route("/2/users/{id}", "GET", "GET /2/users/:id", self.user_by_id),
            route("/2/users/{id}/mentions", "GET", "GET /2/users/:id/mentions", self.mentions),
            route("/2/users/{id}/tweets", "GET", "GET /2/users/:id/tweets", self.user_tweets),
            route("/2/users/{id}/likes", "POST", "likes", self.like, user_only=True),
            route("/2/users/{id}/likes/{tweet_id}", "DELETE", "likes", self.unlike, user_only=True),
            route("/2/users/{id}/retweets", "POST", "retweets", self.retweet, user_only=True),
            route("/2/users/{id}/retweets/{tweet_id}", "DELETE", "retweets", self.unretweet, user_only=True),
            Route("/{path:path}", self.no_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ])

    async def _call(self, request: Request, endpoint: str, handler: Handler, user_only: bool) -> Response:
        now = self.service.sandbox.clock.now()
        headers: dict[str, str] = {}
        try:
            caller = await self.service.auth.authenticate(request, now)
            if user_only and caller.user is None:
                raise px.unsupported_auth()
            decision = self.service.limits.check(endpoint, user_id=caller.user_id, app_id=caller.app_id, now=now)
            headers = {**decision.headers, "x-access-level": "read-write" if caller.user else "read",
                       "api-version": "2.156", "x-transaction-id": f"{self.service.sandbox.rng.getrandbits(64):016x}"}
            if not decision.allowed:
                raise px.too_many_requests()
            status, body = await handler(request, caller, now)
        except px.XError as exc:
            status, body = exc.status, exc.body
        self.service.stats[str(status)] = self.service.stats.get(str(status), 0) + 1
        consumer = (parse_authorization(request.headers.get("authorization", "")) or {}).get("oauth_consumer_key")
        if consumer:
            self.service.consumer_stats[consumer] = self.service.consumer_stats.get(consumer, 0) + 1
        return px.json_response(body, status, headers)

    async def no_route(self, request: Request) -> Response:
        return px.json_response({"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}, 404)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise px.invalid_request("Request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise px.invalid_request("Request body must be a JSON object.")
        return body

    @staticmethod
    def _path_id(request: Request, name: str = "id") -> str:
        value = request.path_params[name]
        if not render.ID.match(value):
            raise px.bad_parameter(name, value, f"The `{name}` query parameter value [{value}] does not match "
                                                "^[0-9]{1,19}$")
        return value

    @staticmethod
    def _body_id(body: dict[str, Any], path: str) -> str | None:
        value: Any = body
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
        if not isinstance(value, str) or not render.ID.match(value):
            raise px.invalid_request(f"$.{path}: string [{value}] does not match pattern ^[0-9]{{1,19}}$")
        return value

    def _own(self, request: Request, caller: Caller) -> None:
        """Likes and retweets act for the authenticated user only."""
        if self._path_id(request) != caller.user_id:
            raise px.forbidden("You are not permitted to perform this action.")

    # -- tweets ------------------------------------------------------------------------

    async def create_tweet(self, request: Request, caller: Caller, now: float) -> Result:
        body = await self._json(request)
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise px.invalid_request(f"$.text: expected string, got {type(text).__name__}")
        reply_to = self._body_id(body, "reply.in_reply_to_tweet_id")
        quote = self._body_id(body, "quote_tweet_id")
        assert caller.user is not None
        tweet = self.state.create_tweet(caller.user, text or "", now, reply_to=reply_to, quote=quote)
        return 201, {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}}

    async def delete_tweet(self, request: Request, caller: Caller, now: float) -> Result:
        tweet_id = self._path_id(request)
        tweet = self.state.visible(tweet_id)
        if tweet is None:
            if self.state.rules.delete_missing == "ok":
                return 200, {"data": {"deleted": False}}
            raise px.not_found("tweet", "id", tweet_id)
        if tweet.author_id != caller.user_id:
            raise px.forbidden("You are not allowed to delete a Tweet that is not yours.")
        self.state.delete_tweet(tweet)
        return 200, {"data": {"deleted": True}}

    async def get_tweet(self, request: Request, caller: Caller, now: float) -> Result:
        tweet_id = self._path_id(request)
        fields = render.Fields.parse(request.query_params)
        tweet = self.state.visible(tweet_id)
        if tweet is None:
            return 200, {"errors": [px.not_found_error("tweet", "id", tweet_id)]}
        return 200, render.single(self.state, tweet, fields)

    async def lookup_tweets(self, request: Request, caller: Caller, now: float) -> Result:
        raw = request.query_params.get("ids")
        if not raw:
            raise px.invalid_request("The `ids` query parameter can not be empty", {"ids": [raw or ""]})
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > 100:
            raise px.bad_parameter("ids", raw, f"The number of values in the `ids` query parameter list [{len(ids)}]"
                                               " is not between 1 and 100")
        for value in ids:
            if not render.ID.match(value):
                raise px.bad_parameter("ids", value, f"The `ids` query parameter value [{value}] does not match "
                                                     "^[0-9]{1,19}$")
        fields = render.Fields.parse(request.query_params)
        found = [t for i in ids if (t := self.state.visible(i)) is not None]
        body: dict[str, Any] = {}
        if found:
            body["data"] = [render.tweet_object(self.state, t, fields.tweet) for t in found]
            if inc := render.includes(self.state, found, fields):
                body["includes"] = inc
        missing = [i for i in ids if self.state.visible(i) is None]
        if missing:
            body["errors"] = [px.not_found_error("tweet", "ids", i) for i in missing]
        return 200, body

    async def search_recent(self, request: Request, caller: Caller, now: float) -> Result:
        params = request.query_params
        if "query" not in params:
            raise px.invalid_request("The `query` query parameter can not be empty", {"query": [""]})
        predicate = compile_query(self.state, params["query"])
        rows = [t for t in self.state.timeline() if t.created_at >= now - SEARCH_WINDOW and predicate(t)]
        return 200, render.list_page(self.state, rows, params, token_name="next_token", low=10, high=100)

    # -- users -------------------------------------------------------------------------

    async def me(self, request: Request, caller: Caller, now: float) -> Result:
        assert caller.user is not None
        fields = render.Fields.parse(request.query_params)
        return 200, {"data": render.user_object(self.state, caller.user, fields.user)}

    async def user_by_name(self, request: Request, caller: Caller, now: float) -> Result:
        username = request.path_params["username"]
        if not USERNAME.match(username):
            raise px.bad_parameter("username", username, f"The `username` query parameter value [{username}] "
                                                         "does not match ^[A-Za-z0-9_]{1,15}$")
        fields = render.Fields.parse(request.query_params)
        account = self.state.account_by_username(username)
        if account is None:
            return 200, {"errors": [px.not_found_error("user", "username", username)]}
        return 200, {"data": render.user_object(self.state, account, fields.user)}

    async def user_by_id(self, request: Request, caller: Caller, now: float) -> Result:
        user_id = self._path_id(request)
        fields = render.Fields.parse(request.query_params)
        account = self.state.accounts.get(user_id)
        if account is None:
            return 200, {"errors": [px.not_found_error("user", "id", user_id)]}
        return 200, {"data": render.user_object(self.state, account, fields.user)}

    def _timeline_owner(self, request: Request) -> str:
        user_id = self._path_id(request)
        if user_id not in self.state.accounts:
            raise px.XError(200, {"errors": [px.not_found_error("user", "id", user_id)]})
        return user_id

    async def mentions(self, request: Request, caller: Caller, now: float) -> Result:
        user_id = self._timeline_owner(request)
        rows = self.state.mentions_of(user_id)[:MENTIONS_CAP]
        return 200, render.list_page(self.state, rows, request.query_params, token_name="pagination_token",
                                     low=5, high=100)

    async def user_tweets(self, request: Request, caller: Caller, now: float) -> Result:
        user_id = self._timeline_owner(request)
        exclude = {e.strip() for e in request.query_params.get("exclude", "").split(",") if e.strip()}
        if exclude - {"replies", "retweets"}:
            raise px.bad_parameter("exclude", request.query_params["exclude"], "The `exclude` query parameter "
                                   f"value [{sorted(exclude)[0]}] is not one of [replies,retweets]")

        def keep(t: StoredTweet) -> bool:
            return not ("replies" in exclude and t.ref("replied_to")) and not ("retweets" in exclude and t.is_retweet)

        rows = [t for t in self.state.tweets_by(user_id) if keep(t)][:3200]
        return 200, render.list_page(self.state, rows, request.query_params, token_name="pagination_token",
                                     low=5, high=100)

    # -- likes and retweets ------------------------------------------------------------

    async def _target(self, request: Request) -> StoredTweet:
        tweet_id = self._body_id(await self._json(request), "tweet_id")
        if tweet_id is None:
            raise px.invalid_request("$.tweet_id: is missing but it is required")
        tweet = self.state.visible(tweet_id)
        if tweet is None:
            raise px.not_found("tweet", "tweet_id", tweet_id)
        return tweet

    async def like(self, request: Request, caller: Caller, now: float) -> Result:
        self._own(request, caller)
        tweet = await self._target(request)
        self.state.like(caller.user_id or "", tweet)
        return 200, {"data": {"liked": True}}

    async def unlike(self, request: Request, caller: Caller, now: float) -> Result:
        self._own(request, caller)
        self.state.unlike(caller.user_id or "", self._path_id(request, "tweet_id"))
        return 200, {"data": {"liked": False}}

    async def retweet(self, request: Request, caller: Caller, now: float) -> Result:
        self._own(request, caller)
        tweet = await self._target(request)
        assert caller.user is not None
        retweet = self.state.retweet(caller.user, tweet, now)
        return 200, {"data": {"retweeted": True, "rest_id": retweet.id}}

    async def unretweet(self, request: Request, caller: Caller, now: float) -> Result:
        self._own(request, caller)
        self.state.unretweet(caller.user_id or "", self._path_id(request, "tweet_id"))
        return 200, {"data": {"retweeted": False}}
