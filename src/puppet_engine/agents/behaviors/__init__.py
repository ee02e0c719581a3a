"""Agent behaviours: posting, mentions, interactions, mood, trading, engagement."""

from __future__ import annotations

from puppet_engine.agents.behaviors.base import Behavior
from puppet_engine.agents.behaviors.engagement import EngagementBehavior
from puppet_engine.agents.behaviors.mentions import MentionsBehavior
from puppet_engine.agents.behaviors.posting import PostingBehavior
from puppet_engine.agents.behaviors.social import InteractionBehavior
from puppet_engine.agents.behaviors.trading import TradingBehavior
from puppet_engine.agents.runtime import AgentServices


def default_behaviors(services: AgentServices) -> list[Behavior]:
    return [PostingBehavior(services), MentionsBehavior(services), InteractionBehavior(services),
            TradingBehavior(services), EngagementBehavior(services)]


__all__ = [
    "Behavior",
    "EngagementBehavior",
    "InteractionBehavior",
    "MentionsBehavior",
    "PostingBehavior",
    "TradingBehavior",
    "default_behaviors",
]
