"""Language models: the ``LLMProvider`` seam (chat completion only), its providers and wrappers.

Providers are selected by name with :func:`build_provider` (``openai``, ``grok``,
``openai-compatible``, ``fake``). Heavy modules (the openai SDK) load lazily.
"""

from __future__ import annotations

from puppet_engine.llm.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    LLMProvider,
    Usage,
)
from puppet_engine.llm.fake import FakeProvider
from puppet_engine.llm.messages import estimate_tokens
from puppet_engine.llm.registry import PROVIDERS, build_base_provider, build_provider
from puppet_engine.llm.wrappers import (
    BudgetProvider,
    CircuitBreakerProvider,
    FallbackProvider,
    LLMCall,
    MetricsProvider,
    RecordingProvider,
    WrapperProvider,
    prometheus_hook,
)

__all__ = [
    "PROVIDERS",
    "BudgetProvider",
    "ChatMessage",
    "CircuitBreakerProvider",
    "Completion",
    "CompletionRequest",
    "FakeProvider",
    "FallbackProvider",
    "LLMCall",
    "LLMProvider",
    "MetricsProvider",
    "RecordingProvider",
    "Usage",
    "WrapperProvider",
    "build_base_provider",
    "build_provider",
    "estimate_tokens",
    "prometheus_hook",
]
