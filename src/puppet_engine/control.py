"""What the HTTP API may ask of a running engine: the engine's control interface.

The API never reaches into the engine's parts (its event engine, its wiring, its runtime
settings object): it starts, stops and restarts agents, applies runtime settings, enqueues
events and reads status through :class:`EngineControl`, which :class:`~puppet_engine.engine.Engine`
implements. A test (or another host) can serve the API over anything with these members.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any, Protocol

from puppet_engine.agents.runtime import AgentRuntime, AgentStatus
from puppet_engine.clock import Clock
from puppet_engine.events import Event
from puppet_engine.memory.base import MemoryStore
from puppet_engine.persona import AgentConfig
from puppet_engine.settings import Settings
from puppet_engine.storage import Database


@dataclass(frozen=True)
class EngineLoad:
    """How busy the event engine is, for ``GET /status`` and the queue health check."""

    concurrency: int
    in_flight: int
    processed: int
    max_attempts: int


class AgentControl(Protocol):
    """Starting, stopping, restarting and reading the agents (the engine's agent manager)."""

    @property
    def agents(self) -> Mapping[str, AgentRuntime]: ...  # built runtimes by id

    @property
    def running(self) -> Set[str]: ...

    def known(self) -> list[str]: ...  # every agent, also those still being built

    def status(self, agent_id: str) -> AgentStatus: ...

    def config_of(self, agent_id: str) -> AgentConfig: ...

    async def start_agent(self, agent_id: str, *, persist: bool = True) -> None: ...

    async def stop_agent(self, agent_id: str) -> None: ...

    async def restart_agent(self, agent_id: str, config: AgentConfig | None = None) -> None: ...

    async def update_config(self, config: AgentConfig) -> None: ...


class EngineControl(Protocol):
    """The engine as the API sees it."""

    settings: Settings  # as read at start; the live runtime settings are :meth:`runtime_values`
    db: Database
    clock: Clock
    owner: str  # this process, as it appears in leases and ``GET /status``
    role: str  # all, worker (runs agents, no API) or api (serves the API, runs no agent)

    @property
    def manager(self) -> AgentControl: ...

    @property
    def uses_sandbox(self) -> bool: ...

    @property
    def memory(self) -> MemoryStore | None:
        """The engine's memory store, once its services are connected (:meth:`Engine.start`)."""
        ...

    def load(self) -> EngineLoad: ...

    def handles(self, event_type: str) -> bool:
        """Whether an event of this type has a handler (``trade.manual`` only with a trader)."""
        ...

    async def enqueue(self, event: Event) -> int | None:
        """Schedule ``event``; its id, or ``None`` when an event with its key already exists."""
        ...

    def runtime_values(self) -> dict[str, Any]:
        """The runtime settings in force (``GET /config``)."""
        ...

    async def submit_command(self, kind: str, agent_id: str | None, payload: dict[str, Any],
                             requested_by: str | None = None, config: AgentConfig | None = None) -> dict[str, Any]:
        """Record an operator command (start, stop, restart, config, restart_all) and apply it here
        at once when this process owns the agent (else its owner does within seconds); the
        command's row. ``config``: the parsed config with its secrets (usable only here)."""
        ...

    async def owners(self, agent_ids: list[str]) -> dict[str, tuple[str, float | None]]:
        """Agent id → (the node running it, since when), in one query."""
        ...

    async def applies_for(self, agent_id: str) -> bool:
        """Whether this process applies the agent's commands itself (it owns the agent)."""
        ...

    async def command(self, command_id: int) -> dict[str, Any] | None:
        """A command's row (state ``pending``, ``applied`` or ``failed`` with ``reason``)."""
        ...

    async def apply_settings(self, changes: Mapping[str, Any], updated_by: str | None = None) -> dict[str, Any]:
        """Persist and apply runtime settings here at once (other processes within seconds);
        returns what changed. A setting that cannot change at run time raises ``ConfigError``."""
        ...
