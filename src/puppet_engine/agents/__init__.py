"""The agents: runtimes, the manager that starts them, and their behaviours.

The persona model they run (``AgentConfig`` and its loaders) is the bottom ``persona`` package;
the manager and runtimes are what the composition root wires.
"""

from puppet_engine.agents.manager import AgentManager
from puppet_engine.agents.runtime import AgentRuntime, AgentServices, AgentStatus

__all__ = ["AgentManager", "AgentRuntime", "AgentServices", "AgentStatus"]
