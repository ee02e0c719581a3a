"""TweetStream: X's filtered stream (``GET /2/tweets/search/stream``) for the agents' mentions.

One app-level connection with the app's bearer token. Its rules are planned from the running
agents by :func:`plan_rules`: one rule per agent (``@name -from:name``, tagged
``puppet:agent:<id>``) while the access level allows that many rules, else agents packed into
OR-combined rules (``(@a -from:a) OR (@b -from:b) …``, tagged ``puppet:group:<n>``) within
the rule length, keeping existing groups so that one agent starting or stopping rewrites one
rule. :meth:`TweetStream.sync` makes X's rules exactly the plan (rules nobody owns go).

:meth:`TweetStream.listen` keeps the connection up following X's guidance
(docs.x.com "Handling disconnections"): reconnect at once after a drop, then back off
linearly for network errors (+250 ms, at most 16 s), exponentially for HTTP errors (5 s
doubling, at most 320 s) and for 429 (60 s doubling); no data and no keep-alive for
``stall_seconds`` (X sends one every 20 s) counts as a network error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog

from puppet_engine.clock import Clock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.social.base import Post
from puppet_engine.twitter import errors as xe
from puppet_engine.twitter.convert import TWEET_FIELDS, tweet_from

log = structlog.get_logger("puppet_engine.tweet_stream")

RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"
AGENT_TAG, GROUP_TAG = "puppet:agent:", "puppet:group:"
STREAM_PARAMS = {"tweet.fields": TWEET_FIELDS + ",entities", "expansions": "author_id"}
_MEMBER = re.compile(r"\(@(\w+) -from:\1\)")
ADD_CHUNK, DELETE_CHUNK = 100, 1000


@dataclass(frozen=True)
class StreamLimits:
    """The app's filtered-stream limits (per access level: Pay-per-use and Pro 1,000 rules of
    1,024 characters, Enterprise 25,000 of 2,048)."""

    max_rules: int = 1000
    max_length: int = 1024


@dataclass(frozen=True)
class RuleSpec:
    value: str
    tag: str


@dataclass(frozen=True)
class Rule:
    id: str
    value: str
    tag: str | None


def plan_rules(agents: Mapping[str, str], limits: StreamLimits, existing: Sequence[RuleSpec] = ()) -> list[RuleSpec]:
    """The rules that stream the mentions of ``agents`` (agent id → X username).

    Raises ``ValueError`` when they cannot fit the limits (more than
    ``max_rules × (max_length // 40)`` agents, about 25,000 on Pay-per-use).
    """
    single = {a: f"@{u} -from:{u}" for a, u in agents.items()}
    if len(agents) <= limits.max_rules and all(len(v) <= limits.max_length for v in single.values()):
        return [RuleSpec(single[a], AGENT_TAG + a) for a in sorted(agents)]
    by_name = {u.lower(): a for a, u in agents.items()}
    placed: set[str] = set()
    groups: list[tuple[str, list[str], bool]] = []  # tag, members (agent ids), unchanged
    for spec in existing:
        if not spec.tag.startswith(GROUP_TAG):
            continue
        names = rule_members(spec.value)
        members = [by_name[n.lower()] for n in names if n.lower() in by_name and by_name[n.lower()] not in placed]
        if members:
            placed.update(members)
            unchanged = len(members) == len(names) and all(agents[m] == n for m, n in zip(members, names, strict=True))
            groups.append((spec.tag, members, unchanged))
    used = {int(t[len(GROUP_TAG):]) for t, _, _ in groups if t[len(GROUP_TAG):].isdigit()}
    new_index = (i for i in range(1, 10**9) if i not in used)
    sizes = [_length(members, agents) for _, members, _ in groups]
    # Newcomers go to groups being rewritten anyway, then to new groups; unchanged ones stay as they are.
    open_groups = [i for i, (_, _, unchanged) in enumerate(groups) if not unchanged]
    for agent_id in sorted(set(agents) - placed):
        clause = len(_clause(agents[agent_id]))
        target = next((i for i in open_groups if sizes[i] + 4 + clause <= limits.max_length), None)
        if target is None:
            groups.append((f"{GROUP_TAG}{next(new_index)}", [agent_id], False))
            sizes.append(clause)
            open_groups.append(len(groups) - 1)
        else:
            groups[target][1].append(agent_id)
            sizes[target] += 4 + clause
        if len(open_groups) > 8:  # keep the search short: forget the fullest
            open_groups = sorted(open_groups, key=lambda i: sizes[i])[:8]
    if len(groups) > limits.max_rules:
        groups = _dense(agents, limits)
    if len(groups) > limits.max_rules:
        raise ValueError(f"{len(agents)} agents do not fit in {limits.max_rules} stream rules of "
                         f"{limits.max_length} characters")
    return [RuleSpec(" OR ".join(_clause(agents[m]) for m in members), tag) for tag, members, _ in groups]


def rule_members(value: str) -> list[str]:
    """The usernames of a group rule's clauses, in order."""
    return _MEMBER.findall(value)


def _clause(username: str) -> str:
    return f"(@{username} -from:{username})"


def _length(members: list[str], agents: Mapping[str, str]) -> int:
    return sum(len(_clause(agents[m])) for m in members) + 4 * max(0, len(members) - 1)


def _dense(agents: Mapping[str, str], limits: StreamLimits) -> list[tuple[str, list[str], bool]]:
    """First-fit packing from scratch (when keeping the old groups needs too many rules)."""
    groups: list[tuple[str, list[str], bool]] = []
    size = 0
    for agent_id in sorted(agents):
        clause = len(_clause(agents[agent_id]))
        if groups and size + 4 + clause <= limits.max_length:
            groups[-1][1].append(agent_id)
            size += 4 + clause
        else:
            groups.append((f"{GROUP_TAG}{len(groups) + 1}", [agent_id], False))
            size = clause
    return groups


def mentions(post: Post, entities: Any, username: str, user_id: str | None) -> bool:
    """Whether ``post`` mentions (or replies to) the account: which agents of a group rule it is for."""
    if user_id and post.in_reply_to_user_id == user_id:
        return True
    if isinstance(entities, dict):
        names = [m.get("username", "") for m in entities.get("mentions") or [] if isinstance(m, dict)]
        if names:
            return username.lower() in (n.lower() for n in names)
    return re.search(rf"(?<![\w@])@{re.escape(username)}(?!\w)", post.text, re.IGNORECASE) is not None


@dataclass
class Backoff:
    """X's reconnect schedule; ``scale`` shrinks it (tests)."""

    scale: float = 1.0
    _kind: str | None = None
    _attempt: int = 0

    def reset(self) -> None:
        self._kind, self._attempt = None, 0

    def next(self, kind: str) -> float:
        """Seconds to wait before reconnecting after a failure of ``kind`` (network, http, 429)."""
        self._attempt = self._attempt + 1 if kind == self._kind else 1
        self._kind = kind
        n = self._attempt
        if kind == "network":
            delay = min(0.25 * n, 16.0)
        elif kind == "429":
            delay = min(60.0 * 2 ** (n - 1), 960.0)
        else:
            delay = min(5.0 * 2 ** (n - 1), 320.0)
        return delay * self.scale


class Stalled(ServiceUnavailable):
    """No data and no keep-alive for too long: the connection is dead."""


Handler = Callable[[Post, tuple[str, ...], Any], Awaitable[None]]
StateHook = Callable[[bool], None]


class TweetStream:
    """The app's filtered stream: rules and the connection (``http`` must reach X over real HTTP)."""

    def __init__(self, http: httpx2.AsyncClient, base_url: str, bearer_token: str, clock: Clock, *,
                 stall_seconds: float = 30.0, backoff: Backoff | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {bearer_token}"}
        self.clock = clock
        self.stall_seconds = stall_seconds
        self.backoff = backoff or Backoff()
        self.connected = False
        self.connects = 0  # connection attempts (each a read call X counts)
        self.rule_calls = 0

    def __repr__(self) -> str:
        return f"TweetStream(base_url={self.base_url!r})"

    async def _json(self, method: str, path: str, where: str, **kwargs: Any) -> Any:
        self.rule_calls += 1
        try:
            response = await self.http.request(method, self.base_url + path, headers=self._auth, **kwargs)
        except (httpx2.TimeoutException, httpx2.TransportError) as exc:
            raise ServiceUnavailable(f"{where}: {type(exc).__name__}", service="x") from None
        if response.status_code >= 400 and not (response.status_code == 400 and "errors" in response.text):
            raise xe.error_for(response.status_code, response.content, response.headers, where=where,
                               now=self.clock.now())
        return xe.parse_body(response.content, where, response.status_code)

    async def available(self) -> bool:
        """Whether the app's access level has the filtered stream (its rules endpoint answers)."""
        try:
            await self.rules()
        except AuthError as exc:
            if exc.status == 403:
                return False
            raise
        return True

    async def rules(self) -> list[Rule]:
        body = await self._json("GET", RULES_PATH, "GET /2/tweets/search/stream/rules")
        return [Rule(str(r["id"]), str(r["value"]), r.get("tag")) for r in body.get("data") or []]

    async def sync(self, plan: Iterable[RuleSpec]) -> dict[str, str]:
        """Make the app's rules exactly ``plan``; returns tag → rule id."""
        wanted = {(s.value, s.tag) for s in plan}
        current = await self.rules()
        stale = [r.id for r in current if (r.value, r.tag) not in wanted]
        have: dict[tuple[str, str | None], str] = {(r.value, r.tag): r.id for r in current
                                                   if (r.value, r.tag) in wanted}
        for start in range(0, len(stale), DELETE_CHUNK):
            await self._json("POST", RULES_PATH, "POST /2/tweets/search/stream/rules",
                             json={"delete": {"ids": stale[start:start + DELETE_CHUNK]}})
        missing = [{"value": v, "tag": t} for v, t in sorted(wanted - have.keys())]
        for start in range(0, len(missing), ADD_CHUNK):
            body = await self._json("POST", RULES_PATH, "POST /2/tweets/search/stream/rules",
                                    json={"add": missing[start:start + ADD_CHUNK]})
            if body.get("errors"):
                raise BadResponse(f"POST /2/tweets/search/stream/rules refused rules: "
                                  f"{json.dumps(body['errors'])[:300]}", service="x", status=400)
            for rule in body.get("data") or []:
                have[(rule["value"], rule.get("tag"))] = str(rule["id"])
        if stale or missing:
            log.info("stream_rules_synced", added=len(missing), deleted=len(stale), rules=len(wanted))
        return {tag: rule_id for (_, tag), rule_id in have.items() if tag is not None}

    async def listen(self, handle: Handler, on_state: StateHook, stop: asyncio.Event) -> None:
        """Stay connected until ``stop``: every post goes to ``handle(post, tags, entities)``,
        ``on_state(True/False)`` says when the stream is up or down."""
        while not stop.is_set():
            try:
                await self._connect_once(handle, on_state, stop)
                kind = "network" if self.backoff._kind else None  # a drop: at once, unless it keeps failing
            except Stalled:
                kind = "network"
            except RateLimited:
                kind = "429"
            except ServiceUnavailable as exc:
                kind = "http" if exc.status else "network"
            except ProviderError:
                kind = "http"
            if self.connected:
                self.connected = False
                on_state(False)
            if kind is None:
                self.backoff._kind = "network"  # the next failure in a row waits
                continue
            delay = self.backoff.next(kind)
            log.warning("stream_reconnect_wait", kind=kind, seconds=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _connect_once(self, handle: Handler, on_state: StateHook, stop: asyncio.Event) -> None:
        self.connects += 1
        timeout = httpx2.Timeout(10.0, read=self.stall_seconds + 5.0)
        try:
            async with self.http.stream("GET", self.base_url + STREAM_PATH, params=STREAM_PARAMS,
                                        headers=self._auth, timeout=timeout) as response:
                if response.status_code != 200:
                    content = await response.aread()
                    raise xe.error_for(response.status_code, content, response.headers,
                                       where="GET /2/tweets/search/stream", now=self.clock.now())
                self.connected = True
                on_state(True)
                lines = response.aiter_lines().__aiter__()
                while not stop.is_set():
                    try:
                        line = await asyncio.wait_for(lines.__anext__(), self.stall_seconds)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise Stalled(f"no data or keep-alive for {self.stall_seconds:g}s", service="x") from None
                    self.backoff.reset()
                    if line.strip():
                        await self._deliver(line, handle)
        except (httpx2.TimeoutException, httpx2.TransportError) as exc:
            raise ServiceUnavailable(f"GET /2/tweets/search/stream: {type(exc).__name__}", service="x") from None

    async def _deliver(self, line: str, handle: Handler) -> None:
        try:
            body = json.loads(line)
        except json.JSONDecodeError:
            log.warning("stream_line_not_json", length=len(line))
            return
        if not isinstance(body, dict) or "data" not in body:
            log.warning("stream_message", errors=str(body.get("errors") if isinstance(body, dict) else body)[:300])
            return
        try:
            post = tweet_from(body, "GET /2/tweets/search/stream")
        except BadResponse as exc:
            log.warning("stream_post_unreadable", error=str(exc))
            return
        tags = tuple(str(r.get("tag")) for r in body.get("matching_rules") or [] if isinstance(r, dict))
        await handle(post, tags, body["data"].get("entities"))
