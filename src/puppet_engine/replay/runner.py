"""Re-run a recorded stretch of one agent's life through the current code, sending nothing.

Each recorded event runs again, in order, on a virtual clock set to when it started, from
the agent's state as it was then, with what it read then (mentions, threads, peers' posts)
and, in an exact replay, the LLM answers it was given. The handlers are the engine's own
behaviours; around them is a scratch SQLite database (seeded with the posts the agent had
made in the two days before ``since``, and in an exact replay with those it made up to each
event) and clients that cannot reach X or the chain
(:mod:`puppet_engine.replay.clients`). Each event's decision is compared with the recorded one.

Memory reads (searches, the latest ``feedback``, listed posts), relationship look-ups,
engagement's samples and metrics and the mentions stream's coverage answer what they answered
then (a replay writes no memory and no sample). Exact replays feed the recorded answers in order whatever the prompt, and count
the prompts that changed. Trading decisions are replayed on the recorded market
analysis and balances; a trade decided now is checked against the (possibly changed) risk
rules there and then (``risk``), never quoted or sent.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from puppet_engine.agents.behaviors import Behavior, default_behaviors
from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.clock import VirtualClock
from puppet_engine.events.recording import outcome_json
from puppet_engine.llm.base import LLMProvider
from puppet_engine.persona import AgentConfig
from puppet_engine.replay.clients import (
    CappedProvider,
    LLMMode,
    ReplayEngagement,
    ReplayLLM,
    ReplayMemory,
    ReplayMentionFeed,
    ReplaySocial,
    ReplayTrader,
    risk_verdict,
)
from puppet_engine.replay.inputs import RecordedEvent, load_stretch
from puppet_engine.replay.report import Decision, EventReplay, ReplayReport, describe
from puppet_engine.social.recording import post_from_json
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agent_states, recordings
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos.recordings import RecordCodec

HISTORY_BEFORE = 2 * 86400.0  # own posts a replay knows of before it starts (repeat checks look back a day)
PEER_KEY = "replay-peer:"  # keys of peers' posts seeded for an interaction round
Progress = Callable[[float], None]


@dataclass
class ReplayRequest:
    """What to replay: the agent's ``[since, until]``, with ``config`` (its current persona, or a
    changed one: ``what_if``). ``llm`` is ``exact`` (the recorded answers in order: an exact
    replay), ``recorded`` (recorded answers to the same requests, the fake otherwise), ``sandbox``
    (the offline fake) or ``live`` (``live``, the real provider, at most ``max_calls`` calls).
    ``behaviors`` is the code replayed (a test seam: the engine's behaviours by default)."""

    agent_id: str
    since: float
    until: float
    config: AgentConfig
    what_if: bool = False
    llm: LLMMode = "exact"
    live: LLMProvider | None = None
    max_calls: int | None = None
    behaviors: Callable[[AgentServices], list[Behavior]] = field(default=default_behaviors)


async def replay(db: Database, codec: RecordCodec, request: ReplayRequest,
                 progress: Progress | None = None) -> ReplayReport:
    """Replay ``request`` from the recordings in ``db``; raises ``ConfigError`` when nothing is recorded."""
    if request.llm == "live" and request.live is None:
        raise ValueError("replay with llm='live' needs the live provider")
    runs = await load_stretch(db, codec, request.agent_id, request.since, request.until)
    with tempfile.TemporaryDirectory(prefix="puppet-replay-") as tmp:
        scratch = Database(f"sqlite:///{Path(tmp) / 'replay.db'}")
        try:
            await scratch.migrate()
            return await _replay(db, scratch, runs, request, progress)
        finally:
            await scratch.close()


async def _replay(db: Database, scratch: Database, runs: list[RecordedEvent], request: ReplayRequest,
                  progress: Progress | None) -> ReplayReport:
    started = time.perf_counter()
    clock = VirtualClock(runs[0].started_at)
    services = AgentServices(db=scratch, clock=clock)
    # The reads behaviours make outside the agent's clients answer as recorded too.
    engagement, feed = ReplayEngagement(), ReplayMentionFeed()
    services.engagement_store, services.mention_feed = engagement, feed
    agent = _agent(request, runs[0], clock)
    handlers = {t: h for b in request.behaviors(services) if b.applies_to(agent) for t, h in b.handlers().items()}
    await agent_rows.save_config(scratch, agent.id, request.config.public_dict(), clock.now())
    # An exact replay judges each event among the posts the agent had really made by then (a
    # difference stays where it is, one event); a what-if lives with its own posts (they shape
    # its later repeat checks). Both start from what was posted before ``since``.
    history = await recordings.posts_before(db, agent.id, request.since - HISTORY_BEFORE,
                                            request.until if not request.what_if else request.since)
    report = ReplayReport(request.agent_id, request.since, request.until, request.what_if, request.llm)
    assert isinstance(agent.social, ReplaySocial) and isinstance(agent.llm, ReplayLLM)
    done: set[int | None] = set()
    for i, run in enumerate(runs):
        done.add(runs[i - 1].event.id if i else None)
        if run.event.type not in handlers:  # e.g. trading: its market reads are not served yet
            report.not_replayed[run.event.type] = report.not_replayed.get(run.event.type, 0) + 1
            continue
        clock.set(run.started_at)
        # Posts made before this event began; at the same (virtual) instant, those of events already run.
        known = [h for h in history if h["created_at"] < run.started_at or (
            h["created_at"] == run.started_at and h["event_id"] in done)]
        if known:
            await recordings.seed_actions(scratch, agent.id, known)
            seeded = {id(h) for h in known}
            history = [h for h in history if id(h) not in seeded]
        await _prepare(services, agent, run)
        agent.social.load(run.reads)
        agent.llm.load(run.llm)
        engagement.load(run.reads)
        feed.load(run.reads)
        if isinstance(agent.memory, ReplayMemory):
            agent.memory.load(run.reads)
        if isinstance(agent.trader, ReplayTrader):
            agent.trader.load(run.reads)
        now = await _run(handlers, run, agent)
        then = Decision.of(run.outcome, run.error)
        if isinstance(agent.trader, ReplayTrader):  # the risk rules on the recorded market, then and now
            now.risk = [risk_verdict(agent.trader, a["payload"]) for a in now.actions if a["kind"] == "trade"]
            if agent.trader.limits_then is not None:
                then.risk = [risk_verdict(agent.trader, a["payload"], agent.trader.limits_then)
                             for a in then.actions if a["kind"] == "trade"]
        if now.actions and request.what_if:  # what the agent has (now) posted: later repeat checks see it
            await recordings.seed_actions(scratch, agent.id, [
                {**a, "status": "pending", "created_at": clock.now()} for a in now.actions])
        report.events.append(EventReplay(run, then, now, describe(run.event.type, then, now)))
        if progress is not None:
            progress((i + 1) / len(runs))
    report.llm = agent.llm.use.to_dict()
    report.missing_reads = agent.social.missing + engagement.missing
    report.wall_seconds = time.perf_counter() - started
    return report


def _agent(request: ReplayRequest, first: RecordedEvent, clock: VirtualClock) -> AgentRuntime:
    user_id, username = first.start.get("user_id"), first.start.get("username") or request.config.id
    fallback: LLMProvider | None = request.live if request.llm == "live" else None
    if fallback is not None and request.max_calls is not None:
        fallback = CappedProvider(fallback, request.max_calls)
    sol = request.config.solana_integration
    trader = ReplayTrader(request.config) if sol is not None and sol.trading_enabled else None
    return AgentRuntime(config=request.config, social=ReplaySocial(username, user_id, clock),
                        llm=ReplayLLM(request.llm, fallback), memory=ReplayMemory(request.config.id),  # type: ignore[arg-type]
                        rng=random.Random(0),
                        user_id=user_id, username=username, trader=trader)


async def _prepare(services: AgentServices, agent: AgentRuntime, run: RecordedEvent) -> None:
    """The agent's state as the event found it, and the peers it saw (only those)."""
    async with services.db.transaction() as conn:
        await agent_states.merge_states(conn, [(agent.id, run.state)], run.started_at)
    services.states.forget([agent.id])
    agent.user_id = run.start.get("user_id") or agent.user_id
    services.peers.clear()
    services._by_user.clear()  # the replay owns these services: only this run's peers
    services.peers[agent.id] = agent
    services.connected(agent)
    peers: dict[str, tuple[str, str | None]] = {agent_id: (user_id, None) for user_id, agent_id in run.peers.items()}
    posts: list[dict[str, Any]] = []
    for read in run.reads:
        if read.get("what") == "peer_posts":
            for peer_id, user_id, username in read["peers"]:
                peers[peer_id] = (user_id, username)
            for peer_id, found in read["posted"].items():
                newest = float("inf")
                for p in found:  # newest first; equal times are told apart so the order stays as read
                    post = post_from_json(p)
                    newest = min(newest - 1e-6, post.created_at or run.started_at)
                    posts.append({"key": f"{PEER_KEY}{peer_id}:{post.id}", "agent_id": peer_id, "kind": "post",
                                  "payload": {"text": post.text}, "status": "done", "external_id": post.id,
                                  "created_at": newest})
    for peer_id, (user_id, username) in peers.items():
        if peer_id != agent.id:
            peer = replace(agent, user_id=user_id, username=username or peer_id)
            peer.config = agent.config.model_copy(update={"id": peer_id})
            services.peers[peer_id] = peer
            services.connected(peer)
    if posts:
        await recordings.drop_actions(services.db, PEER_KEY)
        await recordings.seed_actions(services.db, agent.id, posts)


async def _run(handlers: dict[str, Any], run: RecordedEvent, agent: AgentRuntime) -> Decision:
    handler = handlers[run.event.type]
    event = replace(run.event, payload=dict(run.event.payload))
    try:
        hr = await handler(event, agent)
    except Exception as exc:  # a handler's failure is a decision too (the engine would retry it)
        return Decision.of(None, {"type": exc.__class__.__name__, "message": str(exc)[:500]})
    return Decision.of(outcome_json(hr) if hr is not None else {"result": None}, None)
