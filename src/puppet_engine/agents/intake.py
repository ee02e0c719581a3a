"""Mention intake from X's filtered stream: one connection across every engine process.

:class:`MentionStream` holds the ``x-stream`` role lease (one process at a time, taken over
when its holder dies), keeps the stream's rules equal to the running agents'
(:func:`~puppet_engine.twitter.stream.plan_rules`), and turns every streamed post into one
``mention.received`` event per agent it mentions, under the key polling uses
(``mention:<agent>:<tweet>``): a post seen by both the stream and a poll is one mention. The
owner of the agent claims the event, whichever process holds the stream.

Polling stays the safety net. :meth:`MentionStream.covers` tells the mentions behaviour
whether the stream was up, with the agent's rule in place, without a break since its last
poll; only then does a poll skip X (and move ``since_id`` to the newest post the stream
brought). When the stream goes down (dropped, stalled, refused) every pending poll is brought
forward, so since_id polls catch up at once and carry on until the stream is back; when it is
back they are brought forward again, and that first poll is a real one, covering the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass, field
from typing import Any

import structlog

from puppet_engine.agents.behaviors.mentions import tweet_payload
from puppet_engine.agents.runtime import AgentServices
from puppet_engine.errors import ProviderError
from puppet_engine.events import Event
from puppet_engine.social.base import Post
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos import role_leases
from puppet_engine.tasks import cancel_and_wait
from puppet_engine.twitter.stream import (
    GROUP_TAG,
    RuleSpec,
    StreamLimits,
    TweetStream,
    mentions,
    plan_rules,
    rule_members,
)

log = structlog.get_logger("puppet_engine.mention_stream")

ROLE = "x-stream"
RETRY_UNAVAILABLE = 900.0  # an app without filtered-stream access is asked again after this long


@dataclass(frozen=True)
class StreamOptions:
    """How the mention stream runs: ``mode`` is ``X_MENTIONS_MODE`` (``auto`` or ``stream``)."""

    mode: str = "auto"
    limits: StreamLimits = field(default_factory=StreamLimits)
    lease_ttl: float = 30.0


class MentionStream:
    """The engine's filtered-stream intake (the :class:`~puppet_engine.agents.runtime.MentionFeed`)."""

    def __init__(self, services: AgentServices, schedule: Callable[[list[Event]], Awaitable[Any]],
                 running: Callable[[], Set[str]], owner: str, options: StreamOptions) -> None:
        self.services = services
        self.schedule = schedule
        self.running = running
        self.owner = owner
        self.options = options
        self.stream: TweetStream | None = None
        self.holder = False
        self.live_since: float | None = None  # stream up without a break since (None: down)
        self.rule_since: dict[str, float] = {}  # agent → since when its rule is in place (holder only)
        self.tags: dict[str, list[str]] = {}  # rule tag → agents
        self.delivered = 0  # mention events the stream produced
        self._plan: list[RuleSpec] = []
        self._synced: dict[str, str] | None = None
        self._newest: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._listen_stop = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unavailable_until = 0.0

    # -- what the mentions behaviour asks ---------------------------------------------

    def covers(self, agent_id: str, since: float) -> bool:
        """Whether every mention of the agent since ``since`` came (or comes) through the stream."""
        if self.live_since is None or self.live_since > since:
            return False
        return not self.holder or self.rule_since.get(agent_id, float("inf")) <= since

    def newest(self, agent_id: str) -> str | None:
        """The newest post id the stream brought for the agent (this process only)."""
        return self._newest.get(agent_id)

    # -- life --------------------------------------------------------------------------

    def start(self, stream: TweetStream) -> None:
        self.stream = stream
        self._task = asyncio.create_task(self._run(), name="mention-stream")

    async def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._let_go()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._tick()
            except Exception:
                log.exception("mention_stream_tick_failed")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.options.lease_ttl / 6)

    async def _tick(self) -> None:
        clock, db = self.services.clock, self.services.db
        now = clock.now()
        if now < self._unavailable_until:
            return
        if not await role_leases.acquire(db, ROLE, self.owner, self.options.lease_ttl, now):
            if self.holder:
                log.warning("stream_role_lost")
                await self._let_go(release=False)
            row = await role_leases.get(db, ROLE)
            self.live_since = row.live_since if row is not None and row.expires_at >= now else None
            return
        assert self.stream is not None
        if not self.holder:
            if not await self.stream.available():
                level = "error" if self.options.mode == "stream" else "info"
                getattr(log, level)("stream_unavailable_polling", detail="the app's X access level has no "
                                    "filtered stream (its rules endpoint answered 403); mentions are polled")
                self._unavailable_until = now + RETRY_UNAVAILABLE
                await role_leases.release(db, ROLE, self.owner)
                return
            self.holder = True
            log.info("stream_role_taken", owner=self.owner)
        await self._sync_rules()
        if self._listener is None and self._synced is not None:
            self._listen_stop.clear()
            self._listener = asyncio.create_task(self.stream.listen(self._handle, self._on_state, self._listen_stop),
                                                 name="tweet-stream")
        await role_leases.set_live(db, ROLE, self.owner, self.live_since)

    async def _let_go(self, release: bool = True) -> None:
        self._listen_stop.set()
        await cancel_and_wait(self._listener)
        self._listener = None
        if self.holder and release:
            with contextlib.suppress(Exception):
                await role_leases.release(self.services.db, ROLE, self.owner)
        self.holder, self.live_since, self._synced = False, None, None
        self.rule_since.clear()

    # -- rules -------------------------------------------------------------------------

    def wanted(self) -> dict[str, str]:
        """Running agents with a known X account: agent id → username."""
        peers = self.services.peers
        return {a: p.username for a in self.running() if (p := peers.get(a)) is not None
                and p.username and p.user_id}

    async def _sync_rules(self) -> None:
        assert self.stream is not None
        wanted = self.wanted()
        if wanted == self._synced:
            return
        try:
            if not self._plan:  # groups left by an earlier run are kept where they still fit
                self._plan = [RuleSpec(r.value, r.tag) for r in await self.stream.rules()
                              if r.tag and r.tag.startswith(GROUP_TAG)]
            plan = plan_rules(wanted, self.options.limits, self._plan)
            await self.stream.sync(plan)
        except (ProviderError, ValueError) as exc:  # X refused, or more agents than the rules can hold
            log.warning("stream_rules_sync_failed", error=str(exc))
            return
        now = self.services.clock.now()
        self._plan, self._synced = plan, wanted
        by_name = {u.lower(): a for a, u in wanted.items()}
        self.tags = {}
        for spec in plan:
            if spec.tag.startswith(GROUP_TAG):
                self.tags[spec.tag] = [by_name[n.lower()] for n in rule_members(spec.value)]
            else:
                self.tags[spec.tag] = [spec.tag.rsplit(":", 1)[-1]]
        self.rule_since = {a: self.rule_since.get(a, now) for a in wanted}

    # -- the stream --------------------------------------------------------------------

    def _on_state(self, up: bool) -> None:
        now = self.services.clock.now()
        self.live_since = now if up else None
        log.info("stream_up" if up else "stream_down")
        asyncio.get_running_loop().create_task(self._published(up))

    async def _published(self, up: bool) -> None:
        db = self.services.db
        await role_leases.set_live(db, ROLE, self.owner, self.live_since)
        # Down: polls take over now, not when their (stretched) turn comes. Up again: one since_id
        # poll each covers the gap before the stream's first post.
        moved = await event_rows.bring_forward(db, "mentions.poll", self.services.clock.now())
        log.info("mention_polls_brought_forward", polls=moved, stream_up=up)

    async def _handle(self, post: Post, tags: tuple[str, ...], entities: Any) -> None:
        now = self.services.clock.now()
        batch: list[Event] = []
        for tag in tags:
            for agent_id in self.tags.get(tag, ()):
                peer = self.services.peers.get(agent_id)
                if peer is None or not peer.username or (peer.user_id and post.author_id == peer.user_id):
                    continue
                if tag.startswith(GROUP_TAG) and not mentions(post, entities, peer.username, peer.user_id):
                    continue
                batch.append(Event("mention.received", agent_id, {"tweet": tweet_payload(post), "via": "stream"},
                                   due_at=now, key=f"mention:{agent_id}:{post.id}"))
                if int(post.id) > int(self._newest.get(agent_id, "0")):
                    self._newest[agent_id] = post.id
        if batch:
            ids = await self.schedule(batch)
            self.delivered += sum(1 for i in ids or [] if i is not None)

