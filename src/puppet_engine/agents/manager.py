"""AgentManager: the lifecycle of every agent and the routing of their events.

Each agent's events are handled by the behaviours that apply to it. A stopped agent's
events stay pending (they are not claimed) and resume when it starts again; an
overdue post is then made once, not as a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.bulk import collections_spaced
from puppet_engine.agents.remember import remember_actions
from puppet_engine.agents.review import ReviewGate
from puppet_engine.agents.runtime import (
    AgentRuntime,
    AgentServices,
    AgentStatus,
    restart_key,
)
from puppet_engine.errors import ConfigError, ProviderError
from puppet_engine.events import Action, ActionOutcome, Event, EventEngine, HandlerResult
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos import facts

log = structlog.get_logger("puppet_engine.agents")

RuntimeFactory = Callable[[AgentConfig], AgentRuntime]
START_RETRY_SECONDS = 15.0
START_RETRY_MAX_SECONDS = 300.0
CONNECT_CONCURRENCY = 16  # agents connecting their accounts at once during start-up
SCHEDULE_CHUNK = 1000  # schedules written per transaction during start-up


class AgentManager:
    """Starts, stops and restarts agents; owns their runtimes; dispatches events to behaviours."""

    def __init__(self, services: AgentServices, events: EventEngine, behaviors: list[Behavior],
                 runtime_factory: RuntimeFactory) -> None:
        self.services = services
        self.events = events
        self.behaviors = behaviors
        self.runtime_factory = runtime_factory
        self.agents: dict[str, AgentRuntime] = services.peers
        self._running: set[str] = set()
        self._owned: frozenset[str] = frozenset()  # self._running as of the last change
        self.ready_hooks: list[Callable[[AgentRuntime], Any]] = []
        # Around the connects of agents starting together (the wiring issues their accounts in batches).
        self.start_hooks: list[Callable[[list[AgentRuntime]], AbstractAsyncContextManager[Any]]] = []
        # Whether this process schedules the agent's life (with leases: only its owner does).
        self.owns: Callable[[str], bool] = lambda _agent_id: True
        self._retries: dict[str, asyncio.Task[None]] = {}  # agents waiting to retry a failed start
        self._starting: set[str] = set()  # connecting their accounts now
        self._expected: dict[str, AgentConfig] = {}  # announced by expect(), runtime not built yet
        self._failed: dict[str, str] = {}  # agent id → why its last start failed
        self.review: ReviewGate | None = None  # set by the engine: actions that wait for approval
        self._retry_at: dict[str, float] = {}  # agent id → when its start is tried again
        for behavior in behaviors:
            for event_type, handler in behavior.handlers().items():
                events.register(event_type, self._route(behavior, handler))
        events.outbox.on_done_batch(self._on_actions_done)

    # -- lifecycle ---------------------------------------------------------------

    async def expect(self, configs: list[AgentConfig]) -> None:
        """Agents about to start, before the services they connect to are up: the enabled ones
        are ``starting`` from now on (listed, and accepting actions that wait for them)."""
        ids = [c.id for c in configs]
        disabled = await agent_rows.disabled_among(self.services.db, ids)
        for config in configs:
            if config.id not in self.agents:
                self._expected[config.id] = config
                if config.id not in disabled:
                    self._starting.add(config.id)

    def known(self) -> list[str]:
        """Every agent id, those still being built included, sorted."""
        return sorted(self.agents.keys() | self._expected.keys())

    def config_of(self, agent_id: str) -> AgentConfig:
        """The agent's config, also while its runtime is being built."""
        runtime = self.agents.get(agent_id)
        if runtime is not None:
            return runtime.config
        try:
            return self._expected[agent_id]
        except KeyError:
            raise ConfigError(f"no agent with id {agent_id!r}") from None

    async def start_agents(self, configs: list[AgentConfig], shas: Mapping[str, str] | None = None) -> None:
        """Register every agent (config persisted without secrets) and start the enabled ones.

        ``shas``: agent id → hash of the file its config was read from. The database's definition
        is the one every node runs: an unchanged file gives way to the stored config (an API
        change survives a restart), a changed file is recorded as the new definition
        (:func:`~puppet_engine.storage.repos.agents.save_configs`).

        Agents connect their accounts :data:`CONNECT_CONCURRENCY` at a time and their
        schedules are written in batches, so thousands of agents start in seconds. Meanwhile
        they are ``starting``: operator actions are accepted and wait for them. An agent whose
        start fails (X or the chain down, keys refused) is ``failed`` and retried with backoff.
        """
        with collections_spaced(len(configs)):  # a third of 10,000 agents' start-up was the GC's
            await self._start_agents(configs, shas)

    async def _start_agents(self, configs: list[AgentConfig], shas: Mapping[str, str] | None) -> None:
        ids = [c.id for c in configs]
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate agent ids: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
        stopped_early = self._expected.keys() - self._starting  # disabled, or stopped while announced
        registered = await self._upsert_many(configs, shas or {})
        configs = [self._stored(c, registered[c.id].config) for c in configs]
        enabled = {agent_id: r.enabled for agent_id, r in registered.items()}
        for agent_id in stopped_early & {i for i in ids if enabled[i]}:
            await self._set_enabled(agent_id, False)  # its row may be new: the stop must hold
            enabled[agent_id] = False
        for config in configs:
            self.agents[config.id] = self.runtime_factory(config)
            self._expected.pop(config.id, None)
            if not enabled[config.id]:
                self._starting.discard(config.id)
                log.info("agent_left_stopped", agent_id=config.id)
        starting = [i for i in ids if enabled[i]]
        self._starting.update(starting)
        await self._lifecycle(starting, True, "engine start")
        await self.services.states.preload(ids)
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(agent_id: str) -> str | None:
            async with gate:
                try:
                    await self._connect(self.agents[agent_id])
                except ProviderError as exc:  # X or the chain down (or keys refused): the others start
                    self._start_failed(agent_id, exc)
                    return None
            return agent_id

        try:
            async with contextlib.AsyncExitStack() as around:
                for hook in self.start_hooks:
                    await around.enter_async_context(hook([self.agents[i] for i in starting]))
                outcomes = await asyncio.gather(*(connect(i) for i in starting), return_exceptions=True)
        finally:
            still = set(self._starting)  # an agent stopped meanwhile stays stopped
            self._starting.difference_update(starting)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:  # a mistake (a refused config), not an outage: after the others settled
            raise failure
        await self._activate([o for o in outcomes if isinstance(o, str) and o in still])

    @property
    def start_errors(self) -> Mapping[str, str]:
        """Why each agent's last start failed, until it starts (reports, the console)."""
        return self._failed

    def _start_failed(self, agent_id: str, exc: ProviderError) -> None:
        """Record why the agent could not start and make sure a retry is on its way (the
        retries log their own failures)."""
        self._failed[agent_id] = str(exc)
        if agent_id not in self._retries:
            log.error("agent_start_failed", agent_id=agent_id, error=str(exc), retrying=True,
                      retry_in_seconds=START_RETRY_SECONDS)
            self._retry_at[agent_id] = self.services.clock.now() + START_RETRY_SECONDS
            self._retries[agent_id] = asyncio.create_task(self._start_later(agent_id), name=f"start:{agent_id}")

    async def _start_later(self, agent_id: str) -> None:
        """Try again to start an agent whose start failed, backing off up to 5 minutes.

        Every start failure is retried, refused keys too: the operator may fix them meanwhile
        (``PUT /agents/{id}/config``, ``SIGHUP``); stopping the agent ends the retries.
        """
        delay = START_RETRY_SECONDS
        try:
            while agent_id not in self.running:
                self._retry_at[agent_id] = self.services.clock.now() + delay
                await self.services.clock.sleep(delay)
                if agent_id in self._running or agent_id not in self._failed:
                    break
                try:
                    await self.start_agent(agent_id, persist=False)
                except ProviderError as exc:
                    log.warning("agent_start_retry_failed", agent_id=agent_id, error=str(exc),
                                next_retry_seconds=min(delay * 2, START_RETRY_MAX_SECONDS))
                    delay = min(delay * 2, START_RETRY_MAX_SECONDS)
        finally:
            self._retry_at.pop(agent_id, None)
            if self._retries.get(agent_id) is asyncio.current_task():
                self._retries.pop(agent_id, None)

    async def start_agent(self, agent_id: str, *, persist: bool = True) -> None:
        """Connect the agent's accounts and start its schedules; a no-op when it runs or is starting.

        Raises the :class:`ProviderError` of a failed start (the agent is then ``failed``,
        retried with backoff).
        """
        if agent_id in self._expected:  # announced, not built yet: it starts with the others
            if persist:
                await self._set_enabled(agent_id, True)
            self._starting.add(agent_id)
            return
        agent = self._get(agent_id)
        if agent_id in self._running or agent_id in self._starting:
            return
        if persist:
            await self._set_enabled(agent_id, True)
        self._starting.add(agent_id)
        try:
            await self._connect(agent)
        except ProviderError as exc:
            if agent_id in self._starting:
                self._start_failed(agent_id, exc)
            raise
        finally:
            still = agent_id in self._starting
            self._starting.discard(agent_id)
        if still:
            await self._activate([agent_id])

    async def _activate(self, agent_ids: list[str]) -> None:
        """Connected agents become running: their events are claimed, their schedules exist."""
        for agent_id in agent_ids:
            self._failed.pop(agent_id, None)
        self._set_running(agent_ids, True)
        await self._bootstrap_many([a for a in agent_ids if self.owns(a)])
        self.events.notify()
        for agent_id in agent_ids:
            log.info("agent_started", agent_id=agent_id)

    async def _connect(self, agent: AgentRuntime) -> None:
        for hook in self.ready_hooks:
            result = hook(agent)
            if hasattr(result, "__await__"):
                await result

    async def bootstrap(self, agent_ids: set[str]) -> None:
        """Make sure the schedules of these running agents exist (after gaining their leases)."""
        await self._bootstrap_many(sorted(agent_ids & self.running))
        self.events.notify()

    async def _bootstrap_many(self, agent_ids: list[str]) -> None:
        """Every behaviour's schedules for these agents, written :data:`SCHEDULE_CHUNK` at a time."""
        if not agent_ids:
            return
        pending = await event_rows.pending_types(self.services.db, agent_ids)
        batch: list[Event] = []
        for agent_id in agent_ids:
            agent = self.agents[agent_id]
            for behavior in self.behaviors:
                if behavior.applies_to(agent):
                    batch += await behavior.bootstrap(agent, pending[agent_id])
        for start in range(0, len(batch), SCHEDULE_CHUNK):
            chunk = batch[start:start + SCHEDULE_CHUNK]
            ids = await self.events.schedule_many(chunk)
            taken = [event for event, event_id in zip(chunk, ids, strict=True) if event_id is None and event.key]
            if taken:
                await self._reschedule(taken)

    async def _reschedule(self, taken: list[Event]) -> None:
        """Schedules whose key a finished event already took (a chain broken by a failed event,
        a restart within the same second) start again under a fresh key; a key taken by
        pending work means the schedule exists after all."""
        keys = [e.key for e in taken if e.key]
        live = await event_rows.live_keys(self.services.db, keys)
        now = self.services.clock.now()
        fresh = [dataclasses.replace(e, key=restart_key(e.key, now)) for e in taken if e.key and e.key not in live]
        await self.events.schedule_many(fresh)

    async def stop_agent(self, agent_id: str) -> None:
        """Stop the agent, whatever it was doing (running, starting, waiting to retry a start)."""
        self.config_of(agent_id)
        self._set_running([agent_id], False)
        self._starting.discard(agent_id)
        self._failed.pop(agent_id, None)
        retry = self._retries.pop(agent_id, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
        await self._set_enabled(agent_id, False)
        log.info("agent_stopped", agent_id=agent_id)

    async def restart_agent(self, agent_id: str, config: AgentConfig | None = None) -> None:
        """Replace the agent's runtime (fresh clients; ``config`` when given) and start it.

        The new runtime is built and connected before it replaces the old one, so a
        ``config`` that cannot be built or whose accounts refuse it raises and leaves the
        agent exactly as it was. A plain restart whose start fails leaves the agent
        ``failed``, retried with backoff (the old clients are not used again).
        """
        old = self._get(agent_id)
        was_running, was_starting = agent_id in self._running, agent_id in self._starting
        fresh = self.runtime_factory(config or old.config)  # ConfigError: nothing changed
        self._set_running([agent_id], False)  # no claims while the clients change
        self._starting.add(agent_id)
        try:
            await self._connect(fresh)
        except ProviderError as exc:
            if config is not None:  # refused: back to what it was
                self._set_running([agent_id], was_running)
                if not was_starting:
                    self._starting.discard(agent_id)
                await fresh.social.aclose()
                raise
            self._starting.discard(agent_id)
            self.agents[agent_id] = fresh
            await old.social.aclose()
            self._start_failed(agent_id, exc)
            return
        still = agent_id in self._starting  # not stopped meanwhile
        self._starting.discard(agent_id)
        if config is not None:
            await self._upsert(config)
        self.agents[agent_id] = fresh
        await old.social.aclose()
        if still:
            await self._set_enabled(agent_id, True)
            await self._activate([agent_id])

    async def update_config(self, config: AgentConfig) -> None:
        """Apply a new config without restarting the engine (a restart of that one agent).

        A stopped agent stays stopped (its new runtime is built, not connected). A config
        that cannot be built or connected raises and changes nothing.
        """
        if config.id not in self.agents:
            raise ConfigError(f"no agent with id {config.id!r}")
        if self.status(config.id).state != "stopped":
            await self.restart_agent(config.id, config)
            return
        fresh = self.runtime_factory(config)
        await self._upsert(config)
        old, self.agents[config.id] = self.agents[config.id], fresh
        await old.social.aclose()

    async def stop_agents(self) -> None:
        for task in list(self._retries.values()):
            task.cancel()
        self._retries.clear()
        self._starting.clear()
        await self._lifecycle(sorted(self._running), False, "engine stop")
        self._set_running(list(self._running), False)
        for agent in self.agents.values():
            await agent.social.aclose()

    async def _lifecycle(self, agent_ids: list[str], running: bool, by: str) -> None:
        """The history's facts of agents started or stopped with the engine."""
        now = self.services.clock.now()
        await facts.record(self.services.db, [facts.lifecycle_fact(a, running, now, by=by) for a in agent_ids])

    def status(self, agent_id: str) -> AgentStatus:
        """Where the agent is in its life, in this process (see :class:`AgentStatus`)."""
        if agent_id in self._running:
            return AgentStatus("running")
        if agent_id in self._starting:
            return AgentStatus("starting")
        reason = self._failed.get(agent_id)
        if reason is not None:
            return AgentStatus("failed", reason, self._retry_at.get(agent_id))
        return AgentStatus("stopped")

    @property
    def running(self) -> AbstractSet[str]:
        """Agents started (and not stopped) in this process."""
        return self._running

    def owned(self) -> frozenset[str]:
        """Agents whose events this process may claim: the same object until one starts or stops
        (the event queue caches what it sends the database per object)."""
        return self._owned

    def _set_running(self, agent_ids: Iterable[str], running: bool) -> None:
        for agent_id in agent_ids:
            if running:
                self._running.add(agent_id)
            else:
                self._running.discard(agent_id)
        self._owned = frozenset(self._running)

    # -- reads ---------------------------------------------------------------------

    async def describe(self, agent_id: str) -> dict[str, Any]:
        agent = self._get(agent_id)
        state = await self.services.states.stored(agent_id)
        return {
            "id": agent_id, "name": agent.config.name or agent_id, "description": agent.config.description,
            "running": agent_id in self.running, "status": self.status(agent_id).state,
            "username": agent.username, "state": state.to_json() if state else {},
            "trading_enabled": agent.config.trading_enabled, "llm_provider": agent.config.llm_provider,
        }

    def get(self, agent_id: str) -> AgentRuntime:
        return self._get(agent_id)

    # -- internals -------------------------------------------------------------------

    def _get(self, agent_id: str) -> AgentRuntime:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise ConfigError(f"no agent with id {agent_id!r}") from None

    def _route(self, behavior: Behavior, handler: BehaviorHandler) -> Callable[[Event], Any]:
        async def route(event: Event) -> HandlerResult | None:
            agent = self.agents.get(event.agent_id or "")
            if agent is None:
                return HandlerResult(result={"skipped": f"unknown agent {event.agent_id!r}"})
            hr = await handler(event, agent)
            if hr is not None and self.review is not None:
                hr = await self.review.apply(event, agent, hr)
            return hr

        route.__name__ = f"{behavior.name}_route"
        return route

    async def _upsert(self, config: AgentConfig) -> bool:
        """Persist the (secret-free) config; returns whether the agent is enabled."""
        return await agent_rows.save_config(self.services.db, config.id, config.public_dict(),
                                            self.services.clock.now())

    async def _upsert_many(self, configs: list[AgentConfig], shas: Mapping[str, str],
                           chunk: int = 500) -> dict[str, agent_rows.Registered]:
        """:meth:`_upsert` for many agents, a few statements per ``chunk`` (10,000 agents start fast)."""
        definitions = [agent_rows.Definition(c.id, c.public_dict(), shas.get(c.id), c.source or None)
                       for c in configs]
        return await agent_rows.save_configs(self.services.db, definitions, self.services.clock.now(), chunk)

    @staticmethod
    def _stored(config: AgentConfig, stored: dict[str, Any] | None) -> AgentConfig:
        """The agent's definition from the database when it wins over its file (its secrets, shown
        there as ``***``, kept from the file); the file's when the stored one no longer parses."""
        if stored is None:
            return config
        try:
            kept = parse_agent_config(stored, source=f"database (agent {config.id})", previous=config)
        except ConfigError as exc:
            log.warning("agent_stored_config_unusable", agent_id=config.id, error=str(exc), using=config.source)
            return config
        log.info("agent_config_from_database", agent_id=config.id, file=config.source)
        return kept

    async def _set_enabled(self, agent_id: str, enabled: bool) -> None:
        await agent_rows.set_enabled(self.services.db, agent_id, enabled, self.services.clock.now())

    async def _on_actions_done(self, done: list[tuple[Action, ActionOutcome]]) -> None:
        by_agent: dict[str, list[tuple[Action, ActionOutcome]]] = {}
        for action, outcome in done:
            by_agent.setdefault(action.agent_id, []).append((action, outcome))
        for agent_id, sent in by_agent.items():
            agent = self.agents.get(agent_id)
            if agent is not None:
                await remember_actions(agent, sent, self.services.clock.now())
