"""The simulated crowd: scripted accounts that mention the agents.

They ask questions, make small talk, reply to the agents' latest posts and — a
configurable share of the time — send hostile input from a fixed corpus (prompt
injection, requests to send or buy tokens, attempts to extract keys or system
prompts, operator impersonation, insults). Every message is recorded so tests can
check what the agents did with it. Time and randomness come from the sandbox.

The crowd also reads the agents' posts and engages with them (impressions, likes,
reposts, replies, quotes, bookmarks in each tweet's ``public_metrics``) by how well a
post fits its author, its length and the hour it went out: see :mod:`.audience`.
``POST /sandbox/crowd/interests`` sets what an agent is followed for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from puppet_engine.sandbox.audience import Audience
from puppet_engine.sandbox.service import SandboxService
from puppet_engine.sandbox.x.stream import APP_ACCOUNT

CROWD_PREFIX = "crowd_"
CROWD_NAMES = ["ana", "ben", "chidi", "dara", "emeka", "fen", "gus", "hana", "ivo", "jun", "kemi", "lior"]


def load_corpus() -> dict[str, Any]:
    return json.loads(resources.files("puppet_engine.sandbox").joinpath("data/crowd.json").read_text())


@dataclass
class CrowdMessage:
    tweet_id: str
    author: str
    target: str
    category: str
    kind: str  # hostile or friendly
    text: str


class CrowdRate(BaseModel):
    rate: float = Field(ge=0, description="mentions per minute across all agents")
    hostile_share: float | None = Field(None, ge=0, le=1)


class CrowdBurst(BaseModel):
    count: int = Field(1, ge=1, le=10_000)
    category: str | None = Field(None, description="a corpus category, 'hostile', 'friendly' or any")
    target: str | None = Field(None, description="username to mention; default: a random agent")


class CrowdInterests(BaseModel):
    username: str = Field(pattern=r"^@?[A-Za-z0-9_]{1,15}$")
    keywords: list[str] = Field(default_factory=list, max_length=200,
                                description="what the account is followed for; empty: learn it from its posts")


class CrowdService(SandboxService):
    """Background mentions at ``crowd_rate`` per minute; bursts on demand."""

    name = "crowd"
    prefix = "/crowd"

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.corpus = load_corpus()
        self.rate = float(sandbox.config.crowd_rate)
        self.hostile_share = float(sandbox.config.extra.get("crowd_hostile_share", 0.2))
        self.sent: list[CrowdMessage] = []
        self._task: asyncio.Task[None] | None = None
        x = sandbox.service("x")
        self.audience = Audience(x.state, sandbox.clock.now, int(sandbox.config.seed),
                                 topics=self.corpus["topics"], crowd_prefix=CROWD_PREFIX)
        x.state.audience = self.audience.metrics

    def asgi_app(self) -> ASGIApp:
        return Starlette()

    def admin_router(self) -> APIRouter:
        router = APIRouter(tags=["sandbox crowd"])

        @router.post("/rate")
        async def set_rate(body: CrowdRate) -> dict[str, float]:
            self.rate = body.rate
            if body.hostile_share is not None:
                self.hostile_share = body.hostile_share
            return {"rate": self.rate, "hostile_share": self.hostile_share}

        @router.post("/burst", status_code=201)
        async def burst(body: CrowdBurst) -> dict[str, Any]:
            sent = [self.emit(body.category, body.target) for _ in range(body.count)]
            return {"sent": [vars(m) for m in sent if m is not None]}

        @router.post("/interests")
        async def set_interests(body: CrowdInterests) -> Any:
            account = self.sandbox.service("x").state.account_by_username(body.username)
            if account is None:
                return JSONResponse({"detail": f"no account {body.username!r}"}, 404)
            kept = self.audience.set_interests(account.user_id, body.keywords)
            return {"username": account.username, "keywords": sorted(kept)}

        @router.get("/messages")
        async def messages() -> dict[str, Any]:
            return {"messages": [vars(m) for m in self.sent]}

        return router

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sandbox-crowd")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        clock, rng = self.sandbox.clock, self.sandbox.rng
        while True:
            if self.rate <= 0:
                await clock.sleep(5.0)
                continue
            await clock.sleep(rng.expovariate(self.rate / 60.0))
            if self.rate <= 0:  # quietened while this one waited: it is not sent
                continue
            with contextlib.suppress(Exception):  # an empty sandbox (no agents yet) is fine
                self.emit()

    def targets(self) -> list[Any]:
        x = self.sandbox.service("x")
        return [a for a in x.state.accounts.values()
                if not a.username.startswith(CROWD_PREFIX) and a.username != APP_ACCOUNT]

    def emit(self, category: str | None = None, target: str | None = None) -> CrowdMessage | None:
        """Post one crowd mention now; returns it, or None when there is nobody to mention."""
        x = self.sandbox.service("x")
        rng, now = self.sandbox.rng, self.sandbox.clock.now()
        agents = self.targets()
        if target:
            agents = [a for a in agents if a.username.lower() == target.lower()]
        if not agents:
            return None
        agent = rng.choice(agents)
        kind, category = self._pick(category)
        template = rng.choice(self.corpus[kind][category])
        author = x.state.create_account(CROWD_PREFIX + rng.choice(CROWD_NAMES), None, now)
        reply_to = None
        if category == "reply":
            latest = next((t for t in x.state.tweets_by(agent.user_id) if not t.is_retweet), None)
            if latest is None:
                category, template = "question", rng.choice(self.corpus["friendly"]["question"])
            else:
                reply_to = latest.id
        text = template.format(agent=agent.username, topic=rng.choice(self.corpus["topics"]))
        suffix = 0
        while x.state.is_duplicate(author.user_id, text, now):  # the crowd repeats itself; X would refuse
            suffix += 1
            text = f"{template.format(agent=agent.username, topic=rng.choice(self.corpus['topics']))} ({suffix})"
        tweet = x.state.create_tweet(author, text, now, reply_to=reply_to, enforce_reply_policy=False)
        message = CrowdMessage(tweet.id, author.username, agent.username, category, kind, text)
        self.sent.append(message)
        return message

    def _pick(self, category: str | None) -> tuple[str, str]:
        rng = self.sandbox.rng
        hostile, friendly = self.corpus["hostile"], self.corpus["friendly"]
        if category is not None and category in hostile:
            return "hostile", category
        if category is not None and category in friendly:
            return "friendly", category
        if category == "hostile" or (category is None and rng.random() < self.hostile_share):
            return "hostile", rng.choice(sorted(hostile))
        return "friendly", rng.choice(sorted(friendly))
