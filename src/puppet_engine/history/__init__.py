"""The history of each agent: its state at any moment, its timeline, the rebuild of the projection
from the facts (``storage.repos.facts``), and the retention job that prunes what is too old."""

from puppet_engine.history.projection import Projection, fold, project, rebuild
from puppet_engine.history.retention import (
           prune_history,
           register_pruner,
           retention_loop,
           unregister_pruner,
)
from puppet_engine.history.state_at import state_at
from puppet_engine.history.timeline import render, timeline
from puppet_engine.history.times import parse_time, show_time

__all__ = ["Projection", "fold", "parse_time", "project", "prune_history", "rebuild", "register_pruner", "render",
           "retention_loop", "show_time", "state_at", "timeline", "unregister_pruner"]
