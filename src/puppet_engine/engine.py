"""The composition root: builds every part from Settings and wires them together.

With no credentials for a service, the engine uses the sandbox for it: started
in-process on a loopback port (``run``), reached through an in-process transport
(``simulate``), or an already-running one (``--sandbox-url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from puppet_engine import __version__
from puppet_engine.agents.behaviors import default_behaviors
from puppet_engine.agents.behaviors.trading import after_trade_action
from puppet_engine.agents.commands import CommandRunner
from puppet_engine.agents.engagement import EngagementPlan
from puppet_engine.agents.executors import SOCIAL_KINDS, SocialExecutor
from puppet_engine.agents.intake import MentionStream, StreamOptions
from puppet_engine.agents.manager import AgentManager
from puppet_engine.agents.review import ReviewGate, parse_default
from puppet_engine.agents.review_notify import ReviewNotifier
from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.agents.watch import AgentFiles
from puppet_engine.clock import Clock, VirtualClock, WallClock
from puppet_engine.control import EngineLoad
from puppet_engine.errors import ConfigError
from puppet_engine.events import Action, ActionExecutor, Event, EventEngine, Outbox
from puppet_engine.events.recording import Recorder
from puppet_engine.history import retention_loop
from puppet_engine.llm.wrappers import CaptureProvider
from puppet_engine.memory.base import MemoryStore
from puppet_engine.memory.embeddings import Embedder
from puppet_engine.memory.recording import RecordingMemory
from puppet_engine.observability import upstream
from puppet_engine.observability.engine_hooks import EngineMetrics
from puppet_engine.observability.logging import set_level
from puppet_engine.observability.metrics import configure_metrics
from puppet_engine.persona import AgentConfig
from puppet_engine.runtime_settings import RuntimeSettings
from puppet_engine.sandbox import Sandbox
from puppet_engine.settings import Settings, load_settings
from puppet_engine.storage import Database
from puppet_engine.storage.leases import LeaseManager
from puppet_engine.storage.listen import PgListener
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos import commands as command_rows
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos import nodes as node_rows
from puppet_engine.storage.repos.recordings import RecordCodec
from puppet_engine.storage.runtime_settings import RuntimeSettingsStore
from puppet_engine.tasks import cancel_and_wait
from puppet_engine.twitter.stream import StreamLimits
from puppet_engine.wiring import Wiring, WiringDeps

log = structlog.get_logger("puppet_engine.engine")
RUNTIME_REFRESH_SECONDS = 2.0


@dataclass
class EngineOptions:
    """How this engine process runs (beyond Settings)."""

    agents_dir: Path | None = None
    agents: list[AgentConfig] | None = None  # instead of a directory (tests, API)
    sandbox_url: str | None = None  # use this running sandbox
    sandbox: Sandbox | None = None  # an in-process Sandbox to reach through an ASGI transport
    clock: Clock = field(default_factory=WallClock)
    seed: int | None = None
    owner: str | None = None
    # all: run agents and serve the API; worker: run agents only; api: serve the API from the
    # shared database and run no agent (commands it receives are applied by their owners).
    role: str = "all"
    embedder: Embedder | None = None  # instead of the one EMBEDDER names (tests)


class Engine:
    """Everything one ``puppet-engine run`` process holds.

    The API drives it only through :class:`~puppet_engine.control.EngineControl`:
    ``manager`` (start, stop, restart agents), :meth:`enqueue`, :meth:`apply_settings`,
    :meth:`runtime_values`, :meth:`load`, :meth:`handles`, ``uses_sandbox``.
    """

    def __init__(self, settings: Settings, options: EngineOptions) -> None:
        self.settings = settings
        self.options = options
        self.clock = options.clock
        self.rng = random.Random(options.seed)
        self.owner = options.owner or f"{socket.gethostname()}-{random.getrandbits(32):08x}"
        if options.role not in node_rows.ROLES:
            raise ConfigError(f"--role: {options.role!r} is not one of {', '.join(node_rows.ROLES)}")
        self.role = options.role
        self.runs_agents = options.role in node_rows.RUNS_AGENTS
        self.node = node_rows.NodeInfo(id=self.owner, role=self.role, host=socket.gethostname(), pid=os.getpid(),
                                       version=__version__, started_at=self.clock.now())
        self.db = Database(settings.database_url)
        self.services = AgentServices(db=self.db, clock=self.clock,
                                      mention_poll_seconds=settings.mention_poll_seconds,
                                      engagement=EngagementPlan.from_settings(settings))
        self.executors: dict[tuple[str, str], ActionExecutor] = {}
        self.outbox = Outbox(self.db, self.clock, self._executor_for, rng=random.Random(self.rng.random()))
        self.events = EventEngine(self.db, self.clock, self.outbox, concurrency=settings.engine_concurrency,
                                  owner=self.owner, max_attempts=settings.event_max_attempts,
                                  rng=random.Random(self.rng.random()), owned_agents=self._owned)
        self.events.on_state(self.services.states.committed)
        # PUT /config changes this one object; the trader and the LLM budget read it live.
        self.runtime = RuntimeSettings.from_settings(settings, RuntimeSettingsStore(self.db, self.clock))
        self.runtime.on_change(self._runtime_changed)
        self._runtime_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self.leases: LeaseManager | None = None
        self._owned_key: tuple[frozenset[str], set[str]] | None = None
        self._owned_cache: frozenset[str] = frozenset()
        # A worker shares its agents with the other workers by lease; an api node holds none.
        shares = settings.engine_leases or (settings.engine_leases is None and self.db.is_postgres)
        if self.runs_agents and (shares or self.role == "worker"):
            self.leases = LeaseManager(self.db, self.clock, self.owner, ttl=settings.lease_ttl_seconds)
        self._lease_task: asyncio.Task[None] | None = None
        self.metrics = configure_metrics(settings.enable_metrics)
        hooks = EngineMetrics(self.metrics, self.clock)
        self.events.observe(hooks.on_event)
        self._stop_listening = upstream.listen(hooks.on_upstream_call)
        self.outbox.on_done(hooks.on_action_done)
        self.outbox.failed_hooks.append(hooks.on_action_failed)
        self.wiring = Wiring(WiringDeps(settings=settings, clock=self.clock, db=self.db, rng=self.rng,
                                        metrics=self.metrics, runtime=self.runtime, services=self.services,
                                        sandbox=options.sandbox, sandbox_url=options.sandbox_url,
                                        embedder=options.embedder))
        self.recorder = self._recorder() if settings.replay_recording else None
        self.manager = AgentManager(self.services, self.events, default_behaviors(self.services),
                                    self._build_runtime)
        if self.recorder is not None:  # every agent event is recorded for replay (issue 17)
            for event_type, handler in list(self.events.handlers.items()):
                self.events.register(event_type, self.recorder.wrap(handler))
        self.manager.ready_hooks.append(self.wiring.on_agent_ready)
        self.manager.start_hooks.append(self.wiring.starting)
        webhook = settings.review_webhook_url.get_secret_value() if settings.review_webhook_url else ""
        self.manager.review = ReviewGate(self.services, parse_default(settings.review_default), notify=bool(webhook))
        secret = settings.review_webhook_secret
        self.review_notices = ReviewNotifier(self.db, webhook, secret.get_secret_value() if secret else None) \
            if webhook else None
        if self.leases is not None:  # schedules start where the lease is, not in every process
            leases_ = self.leases
            self.manager.owns = lambda agent_id: agent_id in leases_.owned
        if not self.runs_agents:  # agents are built (the API shows them), their lives run on workers
            self.manager.owns = lambda _agent_id: False

        self.mention_stream: MentionStream | None = None  # X_MENTIONS_MODE auto|stream: X's filtered stream
        if settings.x_mentions_mode != "poll":
            limits = StreamLimits(settings.x_stream_max_rules, settings.x_stream_max_rule_length)
            self.mention_stream = MentionStream(self.services, self.events.schedule_many, lambda: self.manager.running,
                                                self.owner, StreamOptions(settings.x_mentions_mode, limits,
                                                                          settings.lease_ttl_seconds))
            self.services.mention_feed = self.mention_stream

        self.commands = CommandRunner(self.db, self.clock, self.manager, self.owner, self.applies_for,
                                      lambda: None if self.leases is None else self.leases.owned,
                                      applies=self.runs_agents)
        self.listener = PgListener(settings.database_url, command_rows.CHANNEL, self.commands.wake) \
            if self.db.is_postgres else None
        self._woken_task: asyncio.Task[None] | None = None
        self._halt: asyncio.Event | None = None  # an api node's run() waits on it
        self.files: AgentFiles | None = None  # agents from a directory: read at start, then watched
        if options.agents is None:
            self.files = AgentFiles(options.agents_dir or Path(settings.agents_dir), self.db, self.clock, self.manager,
                                    self.commands, self.rebalance if self.leases is not None else None)
            self.commands.local_definition = self.files.definition
        self._watch_task: asyncio.Task[None] | None = None

        async def trade_done(action: Action, outcome: Any) -> None:
            await after_trade_action(self.services, self.manager.agents, self.events.schedule, action, outcome)

        self.outbox.on_done(trade_done)

    def _recorder(self) -> Recorder:
        key = self.settings.memory_encryption_key
        codec = RecordCodec(key.get_secret_value() if key is not None else None)

        async def start_facts(agent_id: str) -> dict[str, Any]:
            agent = self.manager.agents.get(agent_id)
            state = await self.services.states.get(agent_id)
            return {"state": state.to_json(), "user_id": agent.user_id if agent else None,
                    "username": agent.username if agent else None}

        def peers(user_ids: set[str]) -> dict[str, str]:
            found = {u: self.services.peer_by_user_id(u) for u in user_ids}
            return {u: peer.id for u, peer in found.items() if peer is not None}

        return Recorder(self.db, self.clock, codec, start_facts=start_facts, peers=peers)

    def _build_runtime(self, config: AgentConfig) -> AgentRuntime:
        """The wiring's runtime; with recording on, its LLM calls and memory searches are recorded too."""
        agent = self.wiring.build_runtime(config)
        if self.recorder is not None:
            agent.llm = CaptureProvider(agent.llm)
            if agent.memory is not None:
                agent.memory = RecordingMemory(agent.memory)  # type: ignore[assignment]
        return agent

    # -- the control interface (puppet_engine.control.EngineControl) -----------------------

    @property
    def uses_sandbox(self) -> bool:
        return self.wiring.uses_sandbox

    @property
    def memory(self) -> MemoryStore | None:
        return self.wiring.memory

    def load(self) -> EngineLoad:
        return EngineLoad(concurrency=self.events.concurrency, in_flight=self.events.in_flight,
                          processed=self.events.processed, max_attempts=self.events.max_attempts)

    def handles(self, event_type: str) -> bool:
        return event_type in self.events.handlers

    async def enqueue(self, event: Event) -> int | None:
        return await self.events.schedule(event)

    def runtime_values(self) -> dict[str, Any]:
        return self.runtime.values()

    async def apply_settings(self, changes: Mapping[str, Any], updated_by: str | None = None) -> dict[str, Any]:
        return await self.runtime.update(changes, updated_by=updated_by)

    async def submit_command(self, kind: str, agent_id: str | None, payload: dict[str, Any],
                             requested_by: str | None = None, config: AgentConfig | None = None) -> dict[str, Any]:
        return await self.commands.submit(kind, agent_id, payload, requested_by, config)

    async def command(self, command_id: int) -> dict[str, Any] | None:
        row = await command_rows.get(self.db, command_id)
        if row is not None and row["state"] not in command_rows.OPEN and not self.commands.followed(command_id):
            await self.commands.tick()  # decided elsewhere: this node's answers show it from now on
        if row is not None and row["kind"] == "restart_all":  # every worker's part
            row["nodes"] = await command_rows.results_of(self.db, command_id)
        return row

    async def owners(self, agent_ids: list[str]) -> dict[str, tuple[str, float | None]]:
        """Agent id → (the node running it, since when), in one query (no leases: this node)."""
        if self.leases is None and self.runs_agents:
            running = self.manager.running
            return {a: (self.owner, self.node.started_at) for a in agent_ids if a in running}
        return await node_rows.lease_owners(self.db, agent_ids, self.clock.now())

    async def applies_for(self, agent_id: str) -> bool:
        """Whether this process applies the agent's commands: it holds the agent's lease, or nobody
        holds a live one (a stopped agent), or there are no leases (one process). Never an api node."""
        if not self.runs_agents:
            return False
        if self.leases is None or agent_id in self.leases.owned:
            return True
        holder = await command_rows.lease_holder(self.db, agent_id, self.clock.now())
        return holder is None or holder == self.owner

    def _runtime_changed(self, changed: dict[str, Any]) -> None:
        """Push runtime settings to the parts that hold them as plain numbers."""
        if "engine_concurrency" in changed:
            self.events.concurrency = changed["engine_concurrency"]
        if "event_max_attempts" in changed:
            self.events.max_attempts = changed["event_max_attempts"]
        if "mention_poll_seconds" in changed:
            self.services.mention_poll_seconds = changed["mention_poll_seconds"]
        if "log_level" in changed:
            set_level(changed["log_level"])
        log.info("runtime_settings_applied", settings=sorted(changed))
        self.events.notify()

    async def _runtime_loop(self) -> None:
        """Adopt runtime settings changed by other processes (real seconds: processes are real)."""
        while True:
            await asyncio.sleep(RUNTIME_REFRESH_SECONDS)
            try:  # the node registry's heartbeat (GET /nodes; restart_all waits for live workers)
                await node_rows.beat(self.db, self.node, self.clock.now())
            except Exception:
                log.exception("node_heartbeat_failed")
            try:
                await self.runtime.refresh()
            except Exception:
                log.exception("runtime_settings_refresh_failed")
            try:  # operator commands: applied here when we own the agent, followed otherwise
                await self.commands.tick()
            except Exception:
                log.exception("commands_tick_failed")

    def _owned(self) -> frozenset[str]:
        """Running agents (with leases: that this process holds), the same object until that changes."""
        running = self.manager.owned()
        if self.leases is None:
            return running
        key = (running, self.leases.owned)
        if self._owned_key is None or any(a is not b for a, b in zip(key, self._owned_key, strict=True)):
            self._owned_key, self._owned_cache = key, running & self.leases.owned
        return self._owned_cache

    def _executor_for(self, action: Action) -> ActionExecutor | None:
        agent = self.manager.agents.get(action.agent_id)
        if agent is None:
            return None
        if action.kind in SOCIAL_KINDS:
            return SocialExecutor(agent.social)
        return self.wiring.executor_for(agent, action)

    async def start(self) -> None:
        """Migrate the database, connect the services, start every agent."""
        await self.db.migrate()
        await node_rows.beat(self.db, self.node, self.clock.now())
        await self.runtime.refresh()  # settings an operator changed before a restart
        await self.commands.start()
        self._runtime_task = asyncio.create_task(self._runtime_loop(), name="runtime-settings")
        self._woken_task = asyncio.create_task(self.commands.run_woken(), name="commands")
        if self.listener is not None:  # a command recorded anywhere wakes us at once
            await self.listener.start()
        if self.settings.history_retention_days > 0:  # prunes facts and recordings older than that
            self._retention_task = asyncio.create_task(
                retention_loop(self.db, self.clock, self.settings.history_retention_days), name="history-retention")
        configs, shas = await self.files.load() if self.files is not None else (self.options.agents or [], None)
        await self.manager.expect(configs)  # "starting" in the API while the services come up
        await self.wiring.start()
        await self.manager.start_agents(configs, shas)
        if self.leases is not None:
            await self.rebalance()
            self._lease_task = asyncio.create_task(self._lease_loop(), name="leases")
        if self.runs_agents:
            await self.events.recover()
            await self._start_mention_stream()
        if self.review_notices is not None:
            self.review_notices.start()
        if self.files is not None and self.settings.watch_agents:
            self._watch_task = asyncio.create_task(self.files.watch(), name="agent-files")
        log.info("engine_started", agents=len(configs), owner=self.owner, role=self.role, database=self.db.dialect)

    async def _start_mention_stream(self) -> None:
        """X's filtered stream for mentions, when the mode, the credentials and the transport allow it."""
        if self.mention_stream is None:
            return
        try:
            stream = await self.wiring.tweet_stream()
        except Exception:  # the sandbox refused the app account, or is unreachable: polls still work
            log.exception("mention_stream_not_started")
            stream = None
        if stream is None:
            self.services.mention_feed = self.mention_stream = None
            log.info("mentions_polled", reason="no app bearer token, or an in-process sandbox (no streaming)")
            return
        self.mention_stream.start(stream)

    async def run(self) -> None:
        """Process events until :meth:`stop` is called (an api node processes none: it waits)."""
        if not self.runs_agents:
            self._halt = self._halt or asyncio.Event()
            await self._halt.wait()
            return
        await self.events.run()

    async def run_until(self, until: float, progress: Callable[[float], None] | None = None) -> None:
        """On a :class:`VirtualClock`: process everything due up to ``until``, jumping idle stretches."""
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise TypeError("run_until drives a VirtualClock; use run() with the wall clock")
        while True:
            await self.events.run_until_idle()
            nxt = await event_rows.next_due_at(self.db, self._owned())
            if nxt is None or nxt > until:
                break
            clock.set(max(nxt, clock.now()))
            if progress is not None:
                progress(clock.now())
        clock.set(until)

    async def reload_credentials(self, fresh: Settings | None = None) -> list[str]:
        """New X, LLM and Solana credentials without a restart (``SIGHUP`` in ``puppet-engine run``).

        ``fresh`` defaults to the environment (and ``.env``) read again. LLM keys apply at
        once; agents whose X keys or wallet changed are restarted, each alone. Returns those.
        """
        fresh = fresh or load_settings(database_url=self.settings.database_url)
        restart = sorted(await self.wiring.reload_credentials(fresh, self.manager.agents, self.manager.running))
        for agent_id in restart:
            await self.manager.restart_agent(agent_id)
        log.info("credentials_reloaded", restarted=restart)
        return restart

    async def rebalance(self) -> None:
        """Renew leases and take over (or hand back) agents; recover and start what we gain.

        Claims wait meanwhile, so an agent is never handed back with work just claimed;
        agents with work in flight are drained first (see :mod:`puppet_engine.storage.leases`).
        """
        assert self.leases is not None
        async with self.events.claim_lock:
            busy = self.events.busy_agents() | self.outbox.sending
            changes = await self.leases.balance(self._wanted(), busy)
            if changes.gained:
                await event_rows.requeue_running(self.db, changes.gained)
        self.services.states.forget(changes.gained | changes.lost)  # another process wrote them meanwhile
        for agent_id in sorted(await agent_rows.disabled_among(self.db, changes.gained) if changes.gained else ()):
            if self.manager.status(agent_id).state != "stopped":  # the operator stopped it elsewhere
                await self.manager.stop_agent(agent_id)
        if changes.gained:
            await self.outbox.recover(changes.gained)
            await self.manager.bootstrap(changes.gained)
            log.info("agents_gained", agents=sorted(changes.gained), taken_over=len(changes.taken_over),
                     processes=changes.nodes)
        if changes.lost:
            log.info("agents_released", agents=sorted(changes.lost))
        self.events.notify()

    def _wanted(self) -> set[str]:
        """Agents this process would run: running, or being (re)started here — a restart or a config
        change must not hand the agent's lease to another process while its clients reconnect."""
        manager, running = self.manager, self.manager.running
        return set(running) | {a for a in manager.agents if a not in running and manager.status(a).state == "starting"}

    async def _lease_loop(self) -> None:
        assert self.leases is not None
        while True:
            await self.clock.sleep(self.leases.ttl / 3)
            try:
                await self.rebalance()
            except Exception:
                log.exception("lease_renewal_failed")

    async def stop(self) -> None:
        if self._halt is not None:
            self._halt.set()
        if self.listener is not None:
            await self.listener.stop()
        await cancel_and_wait(self._woken_task)
        await cancel_and_wait(self._watch_task)
        await cancel_and_wait(self._retention_task)
        await cancel_and_wait(self._runtime_task)
        await cancel_and_wait(self._lease_task)
        await self.events.stop()
        if self.mention_stream is not None:
            await self.mention_stream.stop()
        if self.leases is not None:
            await self.leases.release_all()
        await self.manager.stop_agents()
        if self.review_notices is not None:
            await self.review_notices.stop()
        await self.wiring.stop()
        with contextlib.suppress(Exception):  # shown as stopped, not gone, in GET /nodes
            await node_rows.stopped(self.db, self.owner, self.clock.now())
        await self.db.close()
        self._stop_listening()
        log.info("engine_stopped")
