"""The chat-completion vocabulary every provider and every caller shares: messages,
requests, completions and token usage (plain data), and the token estimate offline providers use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
Purpose = Literal["post", "reply", "quote", "thread", "trade", "decision", "content", "news"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass
class CompletionRequest:
    """What to ask: the messages plus sampling options and bookkeeping."""

    messages: list[ChatMessage]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None  # structured output: the reply must satisfy it
    schema_name: str = "decision"
    purpose: Purpose = "content"
    agent_id: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate (about four characters per token)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0
