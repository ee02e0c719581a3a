"""X's filtered stream in the emulator: ``/2/tweets/search/stream`` and its rules.

- ``GET /2/tweets/search/stream/rules`` (``ids=``) and ``POST …/rules`` with X's bodies:
  ``{"add": [{"value", "tag"}]}`` or ``{"delete": {"ids": [...]}}``, ``dry_run=true``,
  ``meta.summary`` (created / not_created / valid / invalid, or deleted / not_deleted), and
  X's errors: an invalid rule, a duplicate rule, a rule too long and too many rules for the
  app's access level (:data:`ACCESS`, from the rate-limit profile; ``free`` and ``basic``
  have no filtered stream and get X's ``client-not-enrolled`` 403).
- ``GET /2/tweets/search/stream``: newline-delimited JSON (``{"data", "includes",
  "matching_rules": [{"id", "tag"}]}`` then ``\\r\\n``), a ``\\r\\n`` keep-alive every
  ``x_stream_keepalive`` seconds (20 on X), ``tweet.fields``/``expansions``/``user.fields``.
  One connection per app: a second gets X's 429 ``TooManyConnections`` body.
- Faults (``POST /sandbox/faults`` with ``path: /2/tweets/search/stream``): ``kind: drop``
  ends the open connection (X's operational-disconnect message first), ``kind: stall`` keeps
  it open but silent (no data, no keep-alive) for ``latency_ms`` (default: until the client
  leaves); a ``status`` fault refuses the next connection with that status.
Only app-only bearer tokens are accepted, as on X.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from puppet_engine.sandbox.faults import FaultInjector
from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x import render
from puppet_engine.sandbox.x.backend import XBackend
from puppet_engine.sandbox.x.state import StoredTweet
from puppet_engine.sandbox.x.stream_rules import Match, RuleSyntaxError, compile_rule

STREAM_PATH = "/2/tweets/search/stream"
APP_ACCOUNT = "puppet_stream"  # the account whose app the engine streams with (the crowd leaves it alone)
# Rules per app and rule length by access level (docs.x.com filtered stream introduction).
ACCESS: dict[str, tuple[int, int] | None] = {"payg": (1000, 1024), "pro": (1000, 1024),
                                              "enterprise": (25_000, 2048), "free": None, "basic": None}
TICK = 0.05  # how often an open connection looks at faults and at its client
TOO_MANY_CONNECTIONS = {
    "title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit.",
    "connection_issue": "TooManyConnections", "type": f"{px.PROBLEMS}/streaming-connection"}
OPERATIONAL_DISCONNECT = {"errors": [{
    "title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",
    "detail": "This stream has been disconnected upstream for operational reasons.",
    "type": f"{px.PROBLEMS}/operational-disconnect"}]}


@dataclass
class StreamRule:
    id: str
    value: str
    tag: str | None
    match: Match

    def public(self) -> dict[str, Any]:
        out = {"id": self.id, "value": self.value}
        if self.tag is not None:
            out["tag"] = self.tag
        return out


@dataclass
class _Connection:
    fields: render.Fields
    queue: asyncio.Queue[tuple[StoredTweet, list[StreamRule]]] = field(default_factory=asyncio.Queue)


class StreamHub:
    """Rules and open connections per app (consumer key); fed every new post by the state."""

    def __init__(self, service: XBackend, faults: FaultInjector | None) -> None:
        self.service = service
        self.state = service.state
        self.faults = faults
        extra = service.sandbox.config.extra
        self.keepalive = float(extra.get("x_stream_keepalive", 20.0))
        self.override = (extra.get("x_stream_max_rules"), extra.get("x_stream_rule_length"))
        self.rules: dict[str, dict[str, StreamRule]] = {}
        self.connections: dict[str, _Connection] = {}
        self.delivered = 0  # posts written to a connection (GET /sandbox/x/stats)
        self.state.listeners.append(self.on_tweet)

    def access(self) -> tuple[int, int] | None:
        """(max rules, max rule length) of the app's access level; None: no filtered stream."""
        level = ACCESS.get(self.service.limits.profile)
        if level is None:
            return None
        rules, length = self.override
        return int(rules or level[0]), int(length or level[1])

    def on_tweet(self, tweet: StoredTweet) -> None:
        for app_id, conn in self.connections.items():
            matched = [r for r in self.rules.get(app_id, {}).values() if r.match(self.state, tweet)]
            if matched:
                conn.queue.put_nowait((tweet, matched))

    def routes(self) -> list[Route]:
        return [Route(STREAM_PATH + "/rules", self.get_rules, methods=["GET"]),
                Route(STREAM_PATH + "/rules", self.post_rules, methods=["POST"]),
                Route(STREAM_PATH, self.connect, methods=["GET"])]

    # -- rules -------------------------------------------------------------------------

    async def _app(self, request: Request, endpoint: str) -> tuple[str, dict[str, str]]:
        """The calling app (bearer only), counted against the endpoint's limits."""
        now = self.service.sandbox.clock.now()
        caller = await self.service.auth.authenticate(request, now)
        if caller.user is not None:
            raise px.XError(403, px.problem(403, "Authenticating with OAuth 1.0a User Context is forbidden for "
                                            "this endpoint.  Supported authentication types are [OAuth 2.0 "
                                            "Application-Only].", title="Unsupported Authentication",
                                            type_=f"{px.PROBLEMS}/unsupported-authentication"))
        if self.access() is None:
            raise px.XError(403, {
                "client_id": caller.app_id, "title": "Client Forbidden", "reason": "client-not-enrolled",
                "required_enrollment": "Appropriate Level of API Access",
                "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and "
                          "tokens from a Twitter developer App that is attached to a Project. You can create a "
                          "project via the developer portal.",
                "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                "type": f"{px.PROBLEMS}/client-forbidden"})
        decision = self.service.limits.check(endpoint, user_id=None, app_id=caller.app_id, now=now)
        if not decision.allowed:
            raise px.too_many_requests()
        return caller.app_id, decision.headers

    async def _answer(self, request: Request, endpoint: str, handler: Any) -> Response:
        headers: dict[str, str] = {}
        try:
            app_id, headers = await self._app(request, endpoint)
            status, body = await handler(request, app_id)
        except px.XError as exc:
            status, body = exc.status, exc.body
        self.service.stats[str(status)] = self.service.stats.get(str(status), 0) + 1
        return px.json_response(body, status, headers)

    async def get_rules(self, request: Request) -> Response:
        async def handle(request: Request, app_id: str) -> tuple[int, dict[str, Any]]:
            rules = list(self.rules.get(app_id, {}).values())
            if raw := request.query_params.get("ids"):
                wanted = {i.strip() for i in raw.split(",")}
                rules = [r for r in rules if r.id in wanted]
            body: dict[str, Any] = {"meta": {"sent": render.iso(self.service.sandbox.clock.now()),
                                             "result_count": len(rules)}}
            if rules:
                body["data"] = [r.public() for r in rules]
            return 200, body
        return await self._answer(request, "GET /2/tweets/search/stream/rules", handle)

    async def post_rules(self, request: Request) -> Response:
        async def handle(request: Request, app_id: str) -> tuple[int, dict[str, Any]]:
            try:
                body = json.loads(await request.body() or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise px.invalid_request("Request body is not valid JSON.") from None
            dry_run = request.query_params.get("dry_run", "false").lower() == "true"
            if not isinstance(body, dict) or ("add" in body) == ("delete" in body):
                raise px.invalid_request("$: exactly one of [add, delete] is required")
            if "add" in body:
                return self._add(app_id, body["add"], dry_run)
            return self._delete(app_id, body["delete"], dry_run)
        return await self._answer(request, "POST /2/tweets/search/stream/rules", handle)

    def _meta(self, summary: dict[str, int]) -> dict[str, Any]:
        return {"sent": render.iso(self.service.sandbox.clock.now()), "summary": summary}

    def _add(self, app_id: str, items: Any, dry_run: bool) -> tuple[int, dict[str, Any]]:
        if not isinstance(items, list) or not items:
            raise px.invalid_request("$.add: expected a non-empty array of {value, tag}")
        limits = self.access()
        assert limits is not None
        max_rules, max_length = limits
        mine = self.rules.setdefault(app_id, {})
        by_value = {r.value: r for r in mine.values()}
        errors: list[dict[str, Any]] = []
        valid: list[tuple[str, str | None, Match]] = []
        for i, item in enumerate(items):
            value = item.get("value") if isinstance(item, dict) else None
            tag = item.get("tag") if isinstance(item, dict) else None
            if not isinstance(value, str) or (tag is not None and not isinstance(tag, str)):
                raise px.invalid_request(f"$.add[{i}]: value must be a string (and tag a string when given)")
            if len(value) > max_length:
                errors.append({"value": value, "details": [f"Rule is too long: {len(value)} characters, "
                               f"the limit is {max_length} (at position {max_length + 1})"],
                               "title": "UnprocessableEntity", "type": f"{px.PROBLEMS}/invalid-rules"})
                continue
            try:
                match = compile_rule(value)
            except RuleSyntaxError as exc:
                errors.append({"value": value, "details": [str(exc)], "title": "UnprocessableEntity",
                               "type": f"{px.PROBLEMS}/invalid-rules"})
                continue
            if value in by_value or any(v == value for v, _, _ in valid):
                existing = by_value.get(value)
                errors.append({"value": value, "id": existing.id if existing else None, "title": "DuplicateRule",
                               "type": f"{px.PROBLEMS}/duplicate-rules"})
                continue
            valid.append((value, tag, match))
        if not errors and len(mine) + len(valid) > max_rules:
            return 400, {"errors": [{"title": "RulesCapExceeded", "type": f"{px.PROBLEMS}/rule-cap",
                                     "detail": f"Rule creation failed as it would exceed rule limit of "
                                               f"{max_rules} rules for this project."}],
                         "meta": self._meta({"created": 0, "not_created": len(valid), "valid": len(valid),
                                             "invalid": 0})}
        summary = {"created": 0 if errors or dry_run else len(valid), "not_created": len(errors) + (
            len(valid) if errors or dry_run else 0), "valid": len(valid), "invalid": len(errors)}
        if errors:  # X creates none of a batch with an invalid or duplicate rule
            return 400, {"errors": errors, "meta": self._meta(summary)}
        created = []
        for value, tag, match in valid:
            rule = StreamRule(self.state.new_id(self.service.sandbox.clock.now()), value, tag, match)
            created.append(rule)
            if not dry_run:
                mine[rule.id] = rule
        return (200 if dry_run else 201), {"data": [r.public() for r in created], "meta": self._meta(summary)}

    def _delete(self, app_id: str, spec: Any, dry_run: bool) -> tuple[int, dict[str, Any]]:
        ids = spec.get("ids") if isinstance(spec, dict) else None
        values = spec.get("values") if isinstance(spec, dict) else None
        if not isinstance(ids, list) and not isinstance(values, list):
            raise px.invalid_request("$.delete: expected {ids: [...]} or {values: [...]}")
        mine = self.rules.setdefault(app_id, {})
        if isinstance(ids, list):
            keys = [str(i) for i in ids]
        else:
            known = {r.value: r.id for r in mine.values()}
            keys = [known.get(str(v), str(v)) for v in values or []]
        found = [k for k in keys if k in mine]
        missing = [k for k in keys if k not in mine]
        if not dry_run:
            for key in found:
                del mine[key]
        body: dict[str, Any] = {"meta": self._meta({"deleted": len(found), "not_deleted": len(missing)})}
        if missing:
            body["errors"] = [{"value": k, "title": "Rule does not exist or is not yours", "type":
                               f"{px.PROBLEMS}/invalid-request"} for k in missing]
        return 200, body

    # -- the stream --------------------------------------------------------------------

    async def connect(self, request: Request) -> Response:
        try:
            app_id, headers = await self._app(request, "GET /2/tweets/search/stream")
            fields = render.Fields.parse(request.query_params)
            if app_id in self.connections:
                raise px.XError(429, TOO_MANY_CONNECTIONS)
        except px.XError as exc:
            self.service.stats[str(exc.status)] = self.service.stats.get(str(exc.status), 0) + 1
            return px.json_response(exc.body, exc.status)
        conn = _Connection(fields)
        self.connections[app_id] = conn
        self.service.stats["200"] = self.service.stats.get("200", 0) + 1
        return StreamingResponse(self._lines(request, app_id, conn), headers=headers, media_type="application/json")

    def _fault(self) -> Any:
        if self.faults is None:
            return None
        return self.faults.take("x", "GET", STREAM_PATH, kinds=("drop", "stall"))

    async def _lines(self, request: Request, app_id: str, conn: _Connection) -> AsyncIterator[bytes]:
        try:
            yield b"\r\n"  # X sends the headers and a first keep-alive at once
            next_keepalive = time.monotonic() + self.keepalive
            while True:
                fault = self._fault()
                if fault is not None and fault.kind == "drop":
                    yield json.dumps(OPERATIONAL_DISCONNECT).encode() + b"\r\n"
                    return
                if fault is not None:  # stall: silent, and what was posted meanwhile is lost
                    await self._stall(request, fault.spec.latency_ms / 1000 or None, conn)
                    next_keepalive = time.monotonic() + self.keepalive
                    continue
                if await request.is_disconnected():
                    return
                wait = min(TICK, max(0.0, next_keepalive - time.monotonic()))
                try:
                    tweet, rules = await asyncio.wait_for(conn.queue.get(), timeout=wait)
                except TimeoutError:
                    if time.monotonic() >= next_keepalive:
                        next_keepalive = time.monotonic() + self.keepalive
                        yield b"\r\n"
                    continue
                if self.state.visible(tweet.id) is None:
                    continue
                body = render.single(self.state, tweet, conn.fields)
                body["matching_rules"] = [{"id": r.id, "tag": r.tag} if r.tag is not None else {"id": r.id}
                                          for r in rules]
                self.delivered += 1
                yield json.dumps(body).encode() + b"\r\n"
        finally:
            if self.connections.get(app_id) is conn:
                del self.connections[app_id]

    async def _stall(self, request: Request, seconds: float | None, conn: _Connection) -> None:
        until = time.monotonic() + seconds if seconds else float("inf")
        while time.monotonic() < until and not await request.is_disconnected():
            await asyncio.sleep(TICK)
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                conn.queue.get_nowait()
