"""``FakeProvider``: a deterministic, persona-aware model that needs no network.

It reads the same messages a real model would (persona block, recent posts, the
thread) and writes with :mod:`puppet_engine.llm.textgen`, the generator the
sandbox's OpenAI-compatible API uses too. Structured requests get a valid instance
of their JSON Schema. Usage is estimated at about four characters per token.

``fail_with`` makes it raise on every call, which is how tests exercise the
fallback and circuit-breaker wrappers without a network.
"""

from __future__ import annotations

import json
import zlib

import httpx2

from puppet_engine.errors import ProviderError
from puppet_engine.llm.base import ChatMessage, Completion, CompletionRequest, LLMProvider, Usage
from puppet_engine.llm.messages import estimate_tokens
from puppet_engine.llm.schema_fill import instance_for
from puppet_engine.llm.textgen import generate
from puppet_engine.observability.upstream import upstream
from puppet_engine.persona.block import parse_messages
from puppet_engine.settings import Settings

DEFAULT_MODEL = "fake-persona-1"


def request_seed(request: CompletionRequest) -> int:
    """The request's seed, else one derived from its messages (same prompt → same text)."""
    if request.seed is not None:
        return int(request.seed)
    joined = "\x00".join(f"{m.role}:{m.content}" for m in request.messages)
    return zlib.crc32(joined.encode())


def prompt_tokens(messages: list[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) + 4 for m in messages)


class FakeProvider(LLMProvider):
    """Deterministic text in the persona's voice; never repeats the recent posts it is shown."""

    name = "fake"

    def __init__(self, model: str = DEFAULT_MODEL, *, fail_with: ProviderError | None = None) -> None:
        self.model = model
        self.fail_with = fail_with
        self.calls = 0

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
        """The fake needs nothing: no key, no server."""
        return cls()

    async def complete(self, request: CompletionRequest) -> Completion:
        with upstream("llm"):  # the fake stands in for the LLM: its time is the LLM's
            return self._complete(request)

    def _complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        facts = parse_messages(request.messages)
        if request.purpose and request.purpose not in ("content", "decision") and facts.purpose == "content":
            facts.purpose = request.purpose
        seed = request_seed(request)
        if request.json_schema is not None:
            text = json.dumps(instance_for(request.json_schema, facts, seed))
        else:
            text = generate(facts, seed)
        usage = Usage(prompt_tokens=prompt_tokens(request.messages), completion_tokens=estimate_tokens(text))
        return Completion(text=text, model=self.model, provider=self.name, usage=usage)
