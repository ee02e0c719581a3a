"""Exact and what-if replays of a recorded stretch of an agent's life (issue 17)."""

from puppet_engine.replay.clients import LLMMode, ReplayLLM, ReplaySocial, estimated_live_cost
from puppet_engine.replay.inputs import RecordedEvent, load_stretch
from puppet_engine.replay.report import Decision, EventReplay, ReplayReport
from puppet_engine.replay.runner import ReplayRequest, replay

__all__ = ["Decision", "EventReplay", "LLMMode", "RecordedEvent", "ReplayLLM", "ReplayReport", "ReplayRequest",
           "ReplaySocial", "estimated_live_cost", "load_stretch", "replay"]
