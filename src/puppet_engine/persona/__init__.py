"""The persona model: ``AgentConfig`` (an agent file), its sections, loading and its problems.

The bottom of the layers with settings, errors and clock: plain types every layer may read,
importing nothing of the engine above them.
"""

from puppet_engine.persona.loading import (
    LoadedAgent,
    agent_json_schema,
    check_files,
    load_agent_file,
    load_agents,
    load_agents_dir,
    parse_agent,
    parse_agent_config,
    validate_files,
)
from puppet_engine.persona.model import AgentConfig
from puppet_engine.persona.problems import PLACEHOLDER
from puppet_engine.persona.sections import InitialMemory

__all__ = ["PLACEHOLDER", "AgentConfig", "InitialMemory", "LoadedAgent", "agent_json_schema", "check_files",
           "load_agent_file", "load_agents", "load_agents_dir", "parse_agent", "parse_agent_config",
           "validate_files"]
