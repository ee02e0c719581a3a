"""Helpers of the engagement tests: a persona and an engine on the sandbox with a virtual clock."""

from __future__ import annotations

from typing import Any

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox
from puppet_engine.settings import Settings


def persona(agent_id: str, *, min_h: float = 2, max_h: float = 4, peak: list[int] | None = None,
            learn: bool = False) -> dict[str, Any]:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["validators", "solana", "open source"],
                        "speaking_style": "short and plain"},
        "style_guide": {"formatting": {"uses_hashtags": False, "uses_emojis": False},
                        "vocabulary": {"key_terms": ["ledger"]}},
        "behavior": {"post_frequency": {"min_hours_between_posts": min_h, "max_hours_between_posts": max_h,
                                        "peak_posting_hours": peak or [], "learn_peak_hours": learn},
                     "mention_poll_minutes": 240},
    }


def make_engine(url: str, clock: VirtualClock, sandbox: Sandbox, *agents: dict[str, Any], **settings: Any) -> Engine:
    cfg = Settings(database_url=url, embedder="hashing", _env_file=None, **settings)  # type: ignore[call-arg]
    engine = Engine(cfg, EngineOptions(agents=[parse_agent_config(a) for a in agents], clock=clock, seed=1,
                                       sandbox=sandbox))
    engine.services.mood_interval_seconds = 1e9  # no drift: the mood moves only with engagement here
    engine.services.interaction_interval_seconds = 1e9
    return engine
