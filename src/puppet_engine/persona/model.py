"""Agent configuration in the original Puppet Engine JSON format.

An agent file (``agents/<id>.json``) loads unchanged from the original project:
the same field names (``twitter_credentials.apiKey``, ``behavior.post_frequency``,
``initial_memory.relationships`` …) and the same meaning. On top of that format
this module adds a few optional fields, each documented on its model: ``llm_config``,
``timezone``, ``solana_integration.trading_mode``,
``behavior.interaction_patterns.max_reply_depth`` and ``behavior.mention_poll_minutes``.

Rules that apply to every field:

- every field has a default, documented in its ``description``; a configured ``0``
  or ``false`` is kept as written (the original's ``value || default`` bug is gone);
- an unknown field is a warning, never a failure (see :class:`LoadedAgent`);
- secrets (``private_key``, ``llm_config.api_key``, the ``twitter_credentials`` tokens) are ``SecretStr``:
  they never appear in ``repr()``, errors or :meth:`AgentConfig.public_dict`;
- a problem is reported as ``file: json.path: expected …, got …`` inside one
  :class:`~puppet_engine.errors.AgentConfigError` listing every problem found.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from puppet_engine.persona.review import ReviewRules
from puppet_engine.persona.sections import (
    AgentKitIntegration,
    Behavior,
    InitialMemory,
    LLMConfig,
    Personality,
    Section,
    SolanaIntegration,
    StyleGuide,
    TwitterCredentials,
)

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class AgentConfig(Section):
    """One agent, as written in ``agents/<id>.json``."""

    id: Annotated[str, Field(pattern=_ID_PATTERN)] = Field(
        description="unique id: letters, digits, '-' or '_' (1-64 chars); required"
    )
    name: str = Field("", description="display name; default: the id")
    description: str = Field("", description="one-line description; default empty")
    llm_provider: Literal["openai", "grok", "openai-compatible", "fake"] = Field(
        "fake", description="openai, grok, openai-compatible or fake; default fake"
    )
    llm_config: LLMConfig = Field(default_factory=LLMConfig, description="model and temperature; see LLMConfig")
    timezone: str = Field("UTC", description="IANA zone for peak hours and daily limits; default UTC")
    twitter_credentials: TwitterCredentials | None = Field(None, description="the agent's X keys; default: none")
    solana_integration: SolanaIntegration | None = Field(None, description="wallet and trading; default: none (no trading)")
    custom_system_prompt: str | None = Field(None, description="replaces the generated system prompt; default null")
    rotating_system_prompts: list[str] = Field(default_factory=list, description="one is picked at random per generation; default []")
    personality: Personality = Field(default_factory=Personality, description="see Personality")
    style_guide: StyleGuide = Field(default_factory=StyleGuide, description="see StyleGuide")
    initial_memory: InitialMemory = Field(default_factory=InitialMemory, description="see InitialMemory")
    behavior: Behavior = Field(default_factory=Behavior, description="see Behavior")
    agent_kit_integration: AgentKitIntegration = Field(default_factory=AgentKitIntegration, description="see AgentKitIntegration")
    review: ReviewRules | None = Field(None, description="what waits for a person's approval; default null = "
                                       "REVIEW_DEFAULT, else nothing (see ReviewRules)")

    @field_validator("llm_provider", mode="before")
    @classmethod
    def _provider_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("llm_config")
    @classmethod
    def _own_url_needs_own_key(cls, value: LLMConfig, info: ValidationInfo) -> LLMConfig:
        provider = info.data.get("llm_provider")
        if provider in ("openai", "grok") and value.base_url and value.api_key is None:
            env = "OPENAI_API_KEY" if provider == "openai" else "GROK_API_KEY"
            raise PydanticCustomError(
                "own_url_needs_own_key",
                "base_url needs api_key: with llm_provider {provider} the engine's {env} is only ever sent to "
                "its own base URL; set llm_config.api_key to the key for this URL (or use llm_provider "
                "\"openai-compatible\")", {"provider": provider, "env": env})
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            _zone(value)
        except Exception:  # ZoneInfo raises ValueError, KeyError or OSError for bad names
            raise PydanticCustomError(
                "unknown_timezone", 'expected an IANA time zone such as "UTC" or "America/New_York", got {got}',
                {"got": json.dumps(value)[:80]},
            ) from None
        return value

    _source: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """Where this config came from (``agents/coby.json``, ``PUT /agents/coby/config``); "" if unknown."""
        return self._source

    @model_validator(mode="after")
    def _default_name(self) -> AgentConfig:
        if not self.name:
            self.name = self.id
        return self

    @property
    def trading_enabled(self) -> bool:
        """True when the file has a ``solana_integration`` with ``trading_enabled: true``."""
        return self.solana_integration is not None and self.solana_integration.trading_enabled

    @property
    def tz(self) -> ZoneInfo:
        """The agent's time zone."""
        return _zone(self.timezone)

    def secret_values(self) -> list[str]:
        """Every secret in this file in clear, for log redaction; never display these."""
        secrets: list[SecretStr | None] = []
        if self.twitter_credentials is not None:
            c = self.twitter_credentials
            secrets += [c.api_key, c.api_key_secret, c.access_token, c.access_token_secret, c.bearer_token]
        if self.solana_integration is not None:
            secrets.append(self.solana_integration.private_key)
        secrets.append(self.llm_config.api_key)
        return [s.get_secret_value() for s in secrets if s is not None]

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe dict in the file's own format; secrets that are set read ``"***"``."""
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------- loading
