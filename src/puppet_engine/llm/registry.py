"""Choosing a provider: a plain mapping from the config string to a constructor.

``build_provider("grok", settings)`` returns the Grok provider behind its circuit
breaker, followed by the fallbacks named in ``LLM_FALLBACK``, inside the daily
token budget (``LLM_DAILY_TOKEN_BUDGET``), reporting to ``on_call`` and recording
to ``llm_calls`` when a database is given. ``build_base_provider`` gives the bare
provider without any wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx2

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import ConfigError
from puppet_engine.llm.base import LLMProvider
from puppet_engine.llm.fake import FakeProvider
from puppet_engine.llm.grok import GrokProvider
from puppet_engine.llm.openai import OpenAICompatibleProvider, OpenAIProvider
from puppet_engine.llm.wrappers import (
    BudgetProvider,
    CircuitBreakerProvider,
    FallbackProvider,
    LLMCall,
    MetricsProvider,
    RecordingProvider,
    UpstreamTextProvider,
)

if TYPE_CHECKING:
    from puppet_engine.settings import Settings
    from puppet_engine.storage import Database

Factory = Callable[["Settings", "httpx2.AsyncClient | None"], LLMProvider]

# A new provider: one module in llm/ (an LLMProvider with ``complete`` and ``from_settings``) + one line here.
PROVIDERS: dict[str, Factory] = {
    "openai": OpenAIProvider.from_settings,
    "grok": GrokProvider.from_settings,
    "openai-compatible": OpenAICompatibleProvider.from_settings,
    "fake": FakeProvider.from_settings,
}


def build_base_provider(name: str, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
    """The bare provider for ``name`` (openai, grok, openai-compatible, fake)."""
    factory = PROVIDERS.get(name.strip().lower())
    if factory is None:
        raise ConfigError(f"unknown llm provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    return factory(settings, http_client)


def fallback_names(name: str, settings: Settings) -> list[str]:
    """``name`` then each provider of ``LLM_FALLBACK`` not already in the chain."""
    chain = [name.strip().lower()]
    for extra in settings.llm_fallback.split(","):
        extra = extra.strip().lower()
        if extra and extra not in chain:
            chain.append(extra)
    return chain


def build_provider(name: str, settings: Settings, http_client: httpx2.AsyncClient | None = None, *,
                   clock: Clock | None = None, db: Database | None = None,
                   on_call: Callable[[LLMCall], None] | None = None,
                   on_breaker: Callable[[str, str], None] | None = None,
                   daily_budget: Callable[[], int] | None = None,
                   redact: Callable[[str], str] | None = None) -> LLMProvider:
    """The provider an agent configured with ``llm_provider: name`` talks to, with its wrappers.

    ``daily_budget``: read before every call (the engine passes its live runtime setting, so
    ``PUT /config {"llm_daily_token_budget": N}`` acts at the next call); default: the fixed
    ``settings.llm_daily_token_budget``. Error text is trimmed to 200 characters and passed
    through ``redact`` (the engine passes its secret redactor).
    """
    clock = clock or WallClock()
    chain: list[LLMProvider] = []
    for index, each in enumerate(fallback_names(name, settings)):
        try:
            provider = build_base_provider(each, settings, http_client)
        except ConfigError:
            if index == 0:
                raise
            continue  # a fallback without credentials is skipped, not fatal
        if each != "fake":  # the fake talks to no server
            provider = UpstreamTextProvider(provider, redact=redact)
            provider = CircuitBreakerProvider(provider, clock=clock, failures=settings.llm_breaker_failures,
                                              cooldown=settings.llm_breaker_cooldown_seconds, on_state=on_breaker)
        chain.append(provider)
    result: LLMProvider = chain[0] if len(chain) == 1 else FallbackProvider(chain)
    if daily_budget is not None:
        result = BudgetProvider(result, daily_budget, clock=clock, db=db)
    elif settings.llm_daily_token_budget > 0:
        result = BudgetProvider(result, settings.llm_daily_token_budget, clock=clock, db=db)
    if on_call is not None:
        result = MetricsProvider(result, on_call)
    if db is not None:
        result = RecordingProvider(result, db, clock=clock)
    return result
