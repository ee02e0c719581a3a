"""The LLM seam: one abstract base class, one required method (:meth:`LLMProvider.complete`).

A provider completes chat requests and nothing else: persona prompts and the posts and
replies built from them are :mod:`puppet_engine.content`'s (``generate_tweet(provider, …)``).
What is shared here (``generate_content``, ``decide``) is built on ``complete``, so a new
provider only translates the wire format.
Cross-cutting behaviour (fallback, circuit breaker, budgets, metrics, recording)
lives in wrappers around a provider, never inside one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel

from puppet_engine.errors import ConfigError
from puppet_engine.llm.messages import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Purpose,
    Role,
    Usage,
)
from puppet_engine.llm.structured import decide
from puppet_engine.settings import Settings

# The message types are part of this seam's contract (``from puppet_engine.llm.base import ChatMessage``).
__all__ = ["ChatMessage", "Completion", "CompletionRequest", "LLMProvider", "Purpose", "Role", "Usage"]

T = TypeVar("T", bound=BaseModel)


class LLMProvider(ABC):
    """A language model. Subclasses implement :meth:`complete`; the rest is shared."""

    name: str = "llm"

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
        """This provider as configured by ``settings`` (its key, base URL, model); the registry calls it.

        Raises ``ConfigError`` naming what is missing (e.g. the API key's variable).
        """
        raise ConfigError(f"{cls.__name__} cannot be built from settings")

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Run one chat completion. Raises ``ProviderError`` subclasses on failure."""

    async def generate_content(self, prompt: str, context: Mapping[str, Any] | None = None) -> str:
        """Free-form text for ``prompt`` (the original design's entry point)."""
        system = str((context or {}).get("system", "You are a helpful assistant."))
        request = CompletionRequest(
            messages=[ChatMessage("system", system), ChatMessage("user", prompt)], purpose="content",
        )
        return (await self.complete(request)).text

    async def decide(self, schema: type[T], messages: list[ChatMessage], *, agent_id: str | None = None,
                     attempts: int = 3) -> T:
        """Structured output validated against ``schema``; retried when the JSON does not validate."""
        return await decide(self, schema, messages, agent_id=agent_id, attempts=attempts)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release HTTP clients."""
