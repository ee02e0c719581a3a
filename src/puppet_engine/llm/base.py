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
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from puppet_engine.llm.messages import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Purpose,
    Role,
    Usage,
)
from puppet_engine.llm.structured import decide

# The message types are part of this seam's contract (``from puppet_engine.llm.base import ChatMessage``).
__all__ = ["ChatMessage", "Completion", "CompletionRequest", "LLMProvider", "PromptContext", "Purpose", "Role",
           "Usage"]

T = TypeVar("T", bound=BaseModel)


@dataclass
class PromptContext:
    """Everything a behaviour knows when it asks for text; prompts pick what they need."""

    purpose: Purpose = "post"
    recent_posts: list[str] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)
    mood: Mapping[str, float] | None = None
    topic: str | None = None
    news: str | None = None
    thread: list[tuple[str, str]] = field(default_factory=list)  # (username, text), oldest first
    #: (username, text) other accounts wrote to the agent, recalled from memory: untrusted, rendered
    #: quoted in a section of their own, never among the agent's own memories.
    heard: list[tuple[str, str]] = field(default_factory=list)
    replying_to: str | None = None  # username being answered
    relationship: Mapping[str, Any] | None = None
    trade: Mapping[str, Any] | None = None
    now: float = 0.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class LLMProvider(ABC):
    """A language model. Subclasses implement :meth:`complete`; the rest is shared."""

    name: str = "llm"

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
