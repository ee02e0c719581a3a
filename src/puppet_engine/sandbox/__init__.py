"""Local, faithful emulators of X, an OpenAI-compatible LLM API, Solana RPC and Jupiter."""

from puppet_engine.sandbox.app import Sandbox, SandboxConfig, create_sandbox
from puppet_engine.sandbox.faults import FaultInjector, FaultSpec
from puppet_engine.sandbox.service import SandboxService

__all__ = ["FaultInjector", "FaultSpec", "Sandbox", "SandboxConfig", "SandboxService", "create_sandbox"]
