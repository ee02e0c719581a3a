"""The behaviour contract: a set of event types an agent reacts to, and how it starts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Set

from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.events import Event, HandlerResult

BehaviorHandler = Callable[[Event, AgentRuntime], Awaitable[HandlerResult | None]]


class Behavior(ABC):
    """One facet of agent life (posting, mentions, interactions, trading, mood)."""

    name: str = "behavior"

    def __init__(self, services: AgentServices) -> None:
        self.services = services

    @abstractmethod
    def handlers(self) -> dict[str, BehaviorHandler]:
        """Event type → handler."""

    def applies_to(self, agent: AgentRuntime) -> bool:
        """Whether this agent has this behaviour at all (e.g. trading only when enabled)."""
        return True

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        """Events that must exist for this agent to live (its schedules), given its state and
        the event types it already has ``pending`` (or running).

        Called at every start; keys make it idempotent. A schedule whose key a finished
        event already took is scheduled again under a fresh variant of it.
        """
        return []
