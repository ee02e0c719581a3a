"""Settings from the environment (and an optional ``.env`` file).

Each value resolves from an explicit argument, then the environment, then the
default documented here. Secrets are ``SecretStr`` so they never print by
accident; per-agent secrets (``SOLANA_PRIVATE_KEY_<AGENT_ID>``,
``TWITTER_API_KEY_<AGENT_ID>`` …) are read with :func:`agent_secret`.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from puppet_engine.errors import ConfigError


class Settings(BaseSettings):
    """Engine-wide configuration. Every field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    # Core
    database_url: str = Field("sqlite:///puppet_engine.db", description="sqlite:///path or postgresql://user:pass@host/db")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_format: Literal["json", "console"] = Field("console", description="json lines or human-readable console")
    enable_metrics: bool = Field(True, description="expose Prometheus metrics on /metrics")
    agents_dir: str = Field("agents", description="directory of agent JSON files")
    watch_agents: bool = Field(True, description="apply edits of agent files live (new, changed, removed files)")
    engine_concurrency: int = Field(16, ge=1, description="events processed at once across agents")
    event_max_attempts: int = Field(5, ge=1, description="attempts before an event is marked failed")
    engine_leases: bool | None = Field(None, description="share agents between processes with leases; default: on for PostgreSQL")
    lease_ttl_seconds: float = Field(30.0, gt=1, description="how long an agent lease lasts without renewal")
    read_cache: bool = Field(True, description="cache X users and tweets and Jupiter prices read (docs/caching.md)")
    trading_mode: Literal["live", "dry-run"] = Field(
        "live", description="dry-run stops trades after simulation; starting value, PUT /config changes it (persisted)")

    # LLM
    openai_api_key: SecretStr | None = Field(None, description="OpenAI key; none for every LLM service → the sandbox LLM API")
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI API base URL")
    openai_model: str = Field("gpt-4o-mini", description="default model when an agent names none")
    grok_api_key: SecretStr | None = Field(None, description="xAI key for llm_provider grok")
    grok_base_url: str = Field("https://api.x.ai/v1", description="xAI API base URL")
    grok_model: str = Field("grok-4-1-fast-non-reasoning", description="default Grok model")
    llm_daily_token_budget: int = Field(
        0, ge=0, description="per-agent tokens per day; 0 = unlimited; starting value, PUT /config changes it (persisted)")
    openai_compatible_base_url: str = Field("http://localhost:11434/v1", description="local OpenAI-compatible server (Ollama, vLLM, llama.cpp)")
    openai_compatible_model: str = Field("llama3.2", description="model served by the openai-compatible server")
    openai_compatible_api_key: SecretStr | None = Field(None, description="key for the openai-compatible server, if it wants one")
    llm_max_retries: int = Field(2, ge=0, description="SDK retries per LLM call (429, 5xx, timeouts)")
    llm_timeout_seconds: float = Field(60.0, gt=0, description="timeout of one LLM call")
    llm_fallback: str = Field("", description="comma-separated providers tried in order when the agent's own fails, e.g. openai,fake")
    llm_breaker_failures: int = Field(5, ge=1, description="consecutive failures that open a provider's circuit breaker")
    llm_breaker_cooldown_seconds: float = Field(60.0, gt=0, description="seconds an open breaker waits before a trial call")
    embedder: Literal["auto", "hashing", "local", "openai"] = Field(
        "auto", description="memory embedder: auto (local MiniLM if installed, else hashing), hashing, local, openai"
    )

    # X (Twitter)
    twitter_api_key: SecretStr | None = Field(None, description="X consumer key (OAuth 1.0a); per agent: TWITTER_API_KEY_<AGENT_ID>")
    twitter_api_secret: SecretStr | None = Field(None, description="X consumer secret")
    twitter_access_token: SecretStr | None = Field(None, description="X user access token")
    twitter_access_token_secret: SecretStr | None = Field(None, description="X user access token secret")
    twitter_bearer_token: SecretStr | None = Field(None, description="X app-only bearer token (reads)")
    twitter_api_base_url: str = Field("https://api.x.com", description="X API base URL")
    mention_poll_seconds: float = Field(60.0, gt=0, description="how often each agent polls its mentions")
    x_mentions_mode: Literal["auto", "stream", "poll"] = Field(
        "auto", description="auto: X's filtered stream when the app's access level has it (else polling); "
        "stream: the same, an error is logged without access; poll: only polling. Polls always catch up gaps")
    x_stream_max_rules: int = Field(1000, ge=1, description="filtered-stream rules the app may hold "
                                    "(1000 Pay-per-use and Pro, 25000 Enterprise)")
    x_stream_max_rule_length: int = Field(1024, ge=40, description="characters per stream rule "
                                          "(1024 Pay-per-use and Pro, 2048 Enterprise)")

    # Solana / Jupiter
    solana_rpc_url: str = Field("https://api.mainnet-beta.solana.com", description="Solana JSON-RPC endpoint")
    jupiter_api_url: str = Field("https://api.jup.ag/swap/v1", description="Jupiter swap API base URL")
    jupiter_api_key: SecretStr | None = Field(None, description="Jupiter API key (header x-api-key)")

    # Memory
    memory_encryption_key: SecretStr | None = Field(
        None,
        description="encrypts memory content at rest (AES-256-GCM, key derived with HKDF-SHA256); "
        "use a long random string and keep it: without it encrypted memories cannot be read",
    )
    openai_embedding_model: str = Field("text-embedding-3-small", description="model used when EMBEDDER=openai")
    memory_importance_weight: float = Field(0.15, ge=0, description="search score weight of a memory's importance (0..1)")
    memory_recency_weight: float = Field(0.1, ge=0, description="search score weight of recency (1 = just now, halves every half-life)")
    memory_recency_half_life_hours: float = Field(168.0, gt=0, description="hours for the recency bonus to halve")

    # History
    history_retention_days: float = Field(30.0, ge=0, description="days of history kept (state facts, recordings); "
                                          "older is pruned hourly; 0 = kept forever")
    # Replay (issue 17)
    replay_recording: bool = Field(
        True, description="record each event's inputs, LLM answers and starting state for "
        "`puppet-engine replay` (compressed; encrypted with MEMORY_ENCRYPTION_KEY when set)",
    )

    # API
    puppet_api_keys: SecretStr | None = Field(None, description="comma-separated key:scope pairs (read, control, admin)")
    api_cors_origins: str = Field("", description="comma-separated origins allowed by CORS; empty = closed")
    forwarded_allow_ips: str = Field(
        "", description="comma-separated proxy addresses (or networks) whose X-Forwarded-For is believed; "
        "empty = none, the connection's own address is the client's",
    )

    # Human review (docs/review.md)
    review_default: str = Field(
        "", description='review rules for agents whose file has no "review" section, as JSON '
        '(e.g. {"kinds": ["posts"]}); empty = nothing waits')
    review_webhook_url: SecretStr | None = Field(
        None, description="URL that receives a signed JSON notice per item awaiting review (kept secret: chat "
        "webhook URLs hold a token); empty = none")
    review_webhook_secret: SecretStr | None = Field(
        None, description="shared secret of the X-Puppet-Signature HMAC-SHA256 header on review notices")

    # Sandbox
    sandbox_url: str | None = Field(None, description="use an already-running sandbox instead of starting one")
    sandbox_openai_key: str = Field("sk-sandbox", description="key the sandbox LLM API accepts")
    sandbox_seed: int = Field(7, description="seed of a sandbox started by run (accounts, market, crowd)")
    sandbox_crowd_rate: float = Field(2.0, ge=0, description="crowd mentions per minute in a sandbox started by run")

    # Engagement of the agents' posts (docs/engagement.md)
    engagement_sample_hours: str = Field(
        "1,6,24,72", pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="hours after posting at which each post's public metrics are sampled (comma-separated)",
    )
    engagement_check_seconds: float = Field(
        21600.0, ge=60, description="longest wait between two looks for posts due a sample (posts off the schedule)")
    engagement_retention_days: float = Field(90.0, gt=0, description="days engagement samples are kept after the post, then pruned")

    def has_x_credentials(self) -> bool:
        return bool(self.twitter_bearer_token or (self.twitter_api_key and self.twitter_access_token))

    def has_llm_credentials(self) -> bool:
        return bool(self.openai_api_key or self.grok_api_key)

    def secret_values(self) -> list[str]:
        """Every configured secret in clear, for log and output redaction."""
        values = []
        for name, value in self:
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
                if text:
                    values.append(text)
            del name
        for key, value in os.environ.items():
            if _PER_AGENT_SECRET.match(key) and value:
                values.append(value)
        return values


_PER_AGENT_SECRET = re.compile(
    r"^(SOLANA_PRIVATE_KEY|TWITTER_API_KEY|TWITTER_API_SECRET|TWITTER_ACCESS_TOKEN|"
    r"TWITTER_ACCESS_TOKEN_SECRET|TWITTER_BEARER_TOKEN)_[A-Z0-9_]+$"
)


def env_suffix(agent_id: str) -> str:
    """``coby-agent`` → ``COBY_AGENT``: how an agent id appears in variable names."""
    return re.sub(r"[^A-Z0-9]", "_", agent_id.upper())


def agent_secret(name: str, agent_id: str) -> str | None:
    """``agent_secret("SOLANA_PRIVATE_KEY", "coby")`` reads ``SOLANA_PRIVATE_KEY_COBY``."""
    value = os.environ.get(f"{name}_{env_suffix(agent_id)}")
    return value or None


def load_settings(**overrides: object) -> Settings:
    """Build settings; a bad value becomes a ``ConfigError`` naming the variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"{field.upper()}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
