"""The OpenAI-compatible LLM API emulator: see :class:`~puppet_engine.sandbox.llm.service.OpenAIService`."""

from puppet_engine.sandbox.llm.service import OpenAIService

__all__ = ["OpenAIService"]
