"""The agents: persona files, runtimes, the manager that starts them, and their behaviours.

``AgentConfig`` and its loaders are the persona model (a later step moves them to a bottom
``persona`` package); the manager and runtimes are what the composition root wires.
"""

from puppet_engine.agents.config import (
           AgentConfig,
           LoadedAgent,
           load_agent_file,
           load_agents_dir,
           parse_agent,
)
from puppet_engine.agents.manager import AgentManager
from puppet_engine.agents.runtime import AgentRuntime, AgentServices, AgentStatus

__all__ = ["AgentConfig", "AgentManager", "AgentRuntime", "AgentServices", "AgentStatus", "LoadedAgent",
           "load_agent_file", "load_agents_dir", "parse_agent"]
