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
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from puppet_engine.agents.config_errors import (
    PLACEHOLDER,
    ensure_order,
    json_error_problem,
    translate_validation_error,
    unknown_field_warnings,
)
from puppet_engine.errors import AgentConfigError

log = logging.getLogger(__name__)


def _secret_in(value: Any) -> Any:
    """Empty strings mean "not set"; a keypair given as a JSON byte array becomes its text."""
    if value is None or isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, list) and value and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        return json.dumps(value)
    return value


Secret = Annotated[
    SecretStr | None,
    BeforeValidator(_secret_in),
    PlainSerializer(lambda v: PLACEHOLDER if v is not None else None, return_type=str | None, when_used="json"),
]
Probability = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Hour = Annotated[int, Field(ge=0, le=23)]


class _Model(BaseModel):
    # extra="allow" keeps unknown keys long enough to warn about them (then they are dropped).
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        allow_inf_nan=False,
        json_schema_extra={"additionalProperties": False},
    )


# --------------------------------------------------------------------------- credentials


PASSWORD_LOGIN_FIELDS = ("username", "password", "email", "totp_secret", "twoFactorSecret")


class TwitterCredentials(_Model):
    """OAuth 1.0a user-context keys for the agent's own X account (all optional)."""

    api_key: Secret = Field(None, alias="apiKey", description="consumer API key; default: none (engine/sandbox supplies one)")
    api_key_secret: Secret = Field(None, alias="apiKeySecret", description="consumer API key secret; default: none")
    access_token: Secret = Field(None, alias="accessToken", description="user access token; default: none")
    access_token_secret: Secret = Field(None, alias="accessTokenSecret", description="user access token secret; default: none")
    bearer_token: Secret = Field(None, alias="bearerToken", description="app-only bearer token for reads; default: none")
    # The original's web-scraping login (username/password/email): recognised, dropped at once
    # (never stored, never echoed) and reported by one warning, see _advice.
    _password_login: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _drop_password_login(cls, data: Any, handler: Any) -> Any:
        found = False
        if isinstance(data, dict) and any(k in data for k in PASSWORD_LOGIN_FIELDS):
            data = {k: v for k, v in data.items() if k not in PASSWORD_LOGIN_FIELDS}
            found = True
        creds = handler(data)
        creds._password_login = creds._password_login or found
        return creds

    @property
    def password_login(self) -> bool:
        """True when the file held a scraper login (``username``/``password``), which is not supported."""
        return self._password_login

    @property
    def has_user_context(self) -> bool:
        """True when all four OAuth 1.0a values are present (enough to post)."""
        return all((self.api_key, self.api_key_secret, self.access_token, self.access_token_secret))


class TradeSafety(_Model):
    """Hard per-trade limits, checked before any quote is requested."""

    max_trade_amount_sol: NonNegative = Field(0.1, description="largest single trade in SOL; default 0.1")
    min_wallet_balance_sol: NonNegative = Field(0.05, description="SOL always kept in the wallet for fees; default 0.05")
    max_slippage_percent: Annotated[float, Field(ge=0, le=100)] = Field(1.0, description="maximum slippage in percent; default 1.0")


class SolanaIntegration(_Model):
    """Wallet and trading switch. Absent means the agent never trades."""

    wallet_address: str | None = Field(None, description="public key (base58); default: derived from the key or created in the sandbox")
    private_key: Secret = Field(None, description="base58 secret key or JSON byte array; prefer env SOLANA_PRIVATE_KEY_<ID>; default: none")
    network: str = Field("mainnet-beta", description="mainnet-beta, devnet, testnet or sandbox; default mainnet-beta")
    rpc_url: str | None = Field(None, description="RPC endpoint; default: SOLANA_RPC_URL")
    trade_safety: TradeSafety = Field(default_factory=TradeSafety, description="hard trade limits; defaults as in TradeSafety")
    trading_enabled: bool = Field(False, description="whether the agent may trade at all; default false")
    trading_mode: Literal["live", "dry-run"] | None = Field(
        None, description="live, or dry-run (stop after simulation); default null = the global TRADING_MODE"
    )

    @field_validator("wallet_address", "rpc_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url(cls, value: str | None) -> str | None:
        return _http_url(value)


# --------------------------------------------------------------------------- persona


class Personality(_Model):
    """Who the agent is; rendered into every system prompt."""

    traits: list[str] = Field(default_factory=list, description="character traits; default []")
    values: list[str] = Field(default_factory=list, description="what the agent cares about; default []")
    speaking_style: str = Field("", description="free text on how the agent talks; default empty")
    interests: list[str] = Field(default_factory=list, description="topics the agent posts about; default []")


class Formatting(_Model):
    """Surface style rules; the boolean ones are enforced on generated text."""

    uses_hashtags: bool = Field(False, description="hashtags allowed; default false")
    hashtag_style: str = Field("", description="free text guidance on hashtags; default empty")
    uses_emojis: bool = Field(False, description="emojis allowed; default false")
    emoji_frequency: str = Field("", description="free text guidance on emoji use; default empty")
    capitalization: str = Field("", description="free text, e.g. 'lowercase only'; default empty")
    sentence_length: str = Field("", description="free text guidance on sentence length; default empty")
    avoid_hyphens: bool = Field(False, description="strip/forbid hyphens and dashes; default false")


class Vocabulary(_Model):
    """Words the agent favours or must not use."""

    key_terms: list[str] = Field(default_factory=list, description="terms to use naturally; default []")
    avoid_terms: list[str] = Field(default_factory=list, description="terms never to use (enforced); default []")


class StyleGuide(_Model):
    """How the agent writes."""

    voice: str = Field("", description="narrative voice; default empty")
    tone: str = Field("", description="tone; default empty")
    formatting: Formatting = Field(default_factory=Formatting, description="formatting rules; defaults as in Formatting")
    vocabulary: Vocabulary = Field(default_factory=Vocabulary, description="preferred and banned terms; default empty")
    topics_to_avoid: list[str] = Field(default_factory=list, description="topics never posted about (enforced); default []")


class Relationship(_Model):
    """The agent's initial stance towards another agent or account."""

    sentiment: Annotated[float, Field(ge=-1, le=1)] = Field(0.0, description="-1 (hostile) … 1 (warm); default 0")
    familiarity: Probability = Field(0.0, description="0 (stranger) … 1 (close); default 0")
    trust: Probability = Field(0.5, description="0 … 1; default 0.5")
    notes: list[str] = Field(default_factory=list, description="free-text notes (a single string is accepted); default []")

    @field_validator("notes", mode="before")
    @classmethod
    def _one_note(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _event_text(value: Any) -> Any:
    # The original also stored events as {"content": ...} objects.
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return value


class InitialMemory(_Model):
    """Seed memories written once when the agent is first created."""

    core_memories: list[str] = Field(default_factory=list, description="facts the agent always knows; default []")
    relationships: dict[str, Relationship] = Field(
        default_factory=dict, description="keyed by the other agent's id or X handle; default {}"
    )
    recent_events: list[Annotated[str, BeforeValidator(_event_text)]] = Field(
        default_factory=list, description="recent things that happened (strings or {content}); default []"
    )


# --------------------------------------------------------------------------- behaviour


class PostFrequency(_Model):
    """When the agent posts; hours are read in the agent's ``timezone``."""

    min_hours_between_posts: NonNegative = Field(3.0, description="shortest gap between posts in hours; default 3")
    max_hours_between_posts: NonNegative = Field(12.0, description="longest gap between posts in hours; default 12")
    peak_posting_hours: list[Hour] = Field(default_factory=list, description="hours 0-23 favoured for posting; default [] (no preference)")

    @model_validator(mode="after")
    def _ordered(self) -> PostFrequency:
        ensure_order("min_hours_between_posts", self.min_hours_between_posts,
                     "max_hours_between_posts", self.max_hours_between_posts)
        return self


class InteractionPatterns(_Model):
    """How the agent reacts to what it reads."""

    reply_probability: Probability = Field(0.5, description="chance of replying to a mention; default 0.5")
    quote_tweet_probability: Probability = Field(0.3, description="chance of quoting a tweet it reads; default 0.3")
    like_probability: Probability = Field(0.7, description="chance of liking a tweet it reads; default 0.7")
    max_reply_depth: Annotated[int, Field(ge=0)] = Field(
        3, description="longest agent-to-agent reply chain the agent continues; default 3"
    )


class ContentPreferences(_Model):
    """Shape of generated posts."""

    max_thread_length: Annotated[int, Field(ge=1)] = Field(3, description="most posts in one thread; default 3")
    typical_post_length: Annotated[int, Field(ge=1)] = Field(240, description="target length hint given to the LLM; default 240")
    max_post_length: Annotated[int, Field(ge=1)] | None = Field(
        None, description="hard cap in characters; default null = X's 280 weighted limit"
    )
    link_sharing_frequency: Probability = Field(0.2, description="share of posts that may carry a link; default 0.2")


class TradingFrequency(_Model):
    """How often the agent considers a trade."""

    min_hours_between_trades: NonNegative = Field(12.0, description="shortest gap between trades in hours; default 12")
    max_hours_between_trades: NonNegative = Field(48.0, description="longest gap between trades in hours; default 48")
    random_probability: Probability = Field(0.2, description="chance a due check trades a random allowed token; default 0.2")

    @model_validator(mode="after")
    def _ordered(self) -> TradingFrequency:
        ensure_order("min_hours_between_trades", self.min_hours_between_trades,
                     "max_hours_between_trades", self.max_hours_between_trades)
        return self


class AllowedTokens(_Model):
    """Which tokens may be bought; symbols (SOL, USDC) or mint addresses."""

    always_tradable: list[str] = Field(default_factory=lambda: ["SOL", "USDC"], description='always allowed; default ["SOL", "USDC"]')
    consider_trending: bool = Field(False, description="also allow currently trending tokens; default false")
    blacklist: list[str] = Field(default_factory=list, description="never traded, wins over everything; default []")


class TradingBehavior(_Model):
    """Trading persona; only used when ``solana_integration.trading_enabled``."""

    trading_frequency: TradingFrequency = Field(default_factory=TradingFrequency, description="see TradingFrequency")
    trade_decision_factors: list[str] = Field(
        default_factory=lambda: ["trending_tokens", "top_gainers"],
        description='signals weighed (trending_tokens, top_gainers, random_selection, mood …); default ["trending_tokens", "top_gainers"]',
    )
    trade_tweet_probability: Probability = Field(0.5, description="chance of posting about a completed trade; default 0.5")
    max_trade_amount_per_transaction: NonNegative | None = Field(
        None, description="SOL per trade; default null = trade_safety.max_trade_amount_sol (the smaller wins)"
    )
    allowed_tokens: AllowedTokens = Field(default_factory=AllowedTokens, description="see AllowedTokens")


class Behavior(_Model):
    """Rhythm and reactions of the agent."""

    post_frequency: PostFrequency = Field(default_factory=PostFrequency, description="see PostFrequency")
    interaction_patterns: InteractionPatterns = Field(default_factory=InteractionPatterns, description="see InteractionPatterns")
    content_preferences: ContentPreferences = Field(default_factory=ContentPreferences, description="see ContentPreferences")
    trading_behavior: TradingBehavior = Field(default_factory=TradingBehavior, description="see TradingBehavior")
    mention_poll_minutes: Annotated[float, Field(gt=0)] | None = Field(
        None, description="minutes between mention polls; default null = MENTION_POLL_SECONDS"
    )


class AgentKitMethods(_Model):
    """Which market/trading methods the agent may call."""

    allowed: list[str] = Field(default_factory=list, description="allowed method names; default [] = all")
    autonomous_only: list[str] = Field(
        default_factory=lambda: ["swapTokens"], description='methods never triggered by a human request; default ["swapTokens"]'
    )


class AutonomyRules(_Model):
    """Daily trading limits. Human requests never trigger trades, whatever the setting."""

    ignore_human_trading_requests: bool = Field(True, description="kept for compatibility; the engine always ignores them; default true")
    max_daily_trades: Annotated[int, Field(ge=0)] = Field(5, description="trades per day (agent timezone); default 5")
    max_single_trade_amount_sol: NonNegative = Field(0.1, description="SOL per trade; default 0.1")
    require_trending_validation: bool = Field(False, description="only buy tokens currently trending; default false")


class AgentKitIntegration(_Model):
    """The original "Solana Agent Kit" block: extra autonomy limits for trading."""

    enabled: bool = Field(False, description="apply these rules; default false")
    methods: AgentKitMethods = Field(default_factory=AgentKitMethods, description="see AgentKitMethods")
    autonomy_rules: AutonomyRules = Field(default_factory=AutonomyRules, description="see AutonomyRules")


class LLMConfig(_Model):
    """Per-agent model settings.

    An engine key (``OPENAI_API_KEY``, ``GROK_API_KEY``, ``OPENAI_COMPATIBLE_API_KEY``) is only
    ever sent to the engine's base URL for it. An agent with its own ``base_url`` sends its own
    ``api_key`` there, or none; ``openai`` and ``grok`` agents with a ``base_url`` must set one.
    """

    model: str | None = Field(None, description="model id; default null = the provider's configured model")
    temperature: Annotated[float, Field(ge=0, le=2)] = Field(0.9, description="sampling temperature 0-2; default 0.9")
    base_url: str | None = Field(None, description="the agent's own OpenAI-compatible server: http(s), no credentials "
                                 "in the URL; default null = the engine's base URL for the provider")
    api_key: Secret = Field(None, description="key sent to base_url (never an engine key); required with base_url "
                            "for openai and grok; default: none")

    @field_validator("base_url", mode="before")
    @classmethod
    def _empty_url(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _http_url(value)


def _http_url(value: str | None) -> str | None:
    """An http(s) URL with a host and no user name or password in it (keys go in their own field)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is not None and (parts.username is not None or parts.password is not None):
        raise PydanticCustomError("url_credentials", "must not contain a user name or password; "
                                  "put a key in its own field (llm_config.api_key)")
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(
            c.isspace() or ord(c) < 32 for c in text):
        raise PydanticCustomError("invalid_url", 'expected an http:// or https:// URL such as '
                                  '"https://api.example.com/v1", got {got}', {"got": json.dumps(text)[:80]})
    return text


# --------------------------------------------------------------------------- the agent

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class AgentConfig(_Model):
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


@dataclass(frozen=True)
class LoadedAgent:
    """A validated agent file: its config, where it came from, and any warnings."""

    config: AgentConfig
    source: str
    warnings: list[str] = field(default_factory=list)


def _restore_placeholders(data: dict[str, Any], previous: AgentConfig | None) -> dict[str, Any]:
    """``"***"`` (as sent back by the API) means "keep the secret already configured"."""
    data = dict(data)
    for block, model in (("twitter_credentials", TwitterCredentials), ("solana_integration", SolanaIntegration),
                         ("llm_config", LLMConfig)):
        section = data.get(block)
        if not isinstance(section, dict):
            continue
        section = dict(section)
        old = getattr(previous, block, None) if previous is not None else None
        for name, info in model.model_fields.items():
            if "SecretStr" not in str(info.annotation):
                continue
            key = info.alias or name
            if section.get(key) == PLACEHOLDER or section.get(name) == PLACEHOLDER:
                kept = getattr(old, name, None) if old is not None else None
                if block == "llm_config" and not _same_url(section.get("base_url"), getattr(old, "base_url", None)):
                    kept = None  # a kept LLM key never follows a new base_url: it must be given again
                section.pop(name, None)
                section[key] = kept.get_secret_value() if isinstance(kept, SecretStr) else None
        data[block] = section
    return data


def _same_url(new: Any, old: str | None) -> bool:
    return (new.strip() if isinstance(new, str) and new.strip() else None) == old


def _validate(data: Any, source: str) -> LoadedAgent:
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise AgentConfigError(translate_validation_error(exc, source, AgentConfig)) from None
    config._source = source
    warnings = unknown_field_warnings(config, source)
    warnings += _advice(config, source)
    return LoadedAgent(config=config, source=source, warnings=warnings)


def _advice(config: AgentConfig, source: str) -> list[str]:
    notes = []
    creds = config.twitter_credentials
    if creds is not None and creds.password_login:
        notes.append(f"{source}: twitter_credentials.username/password: logging in with a password is not "
                     "supported (X suspends accounts that log in with a password automatically), so these "
                     "fields are ignored; give the agent API keys instead (twitter_credentials.apiKey, "
                     "apiKeySecret, accessToken, accessTokenSecret, or TWITTER_*_<ID>). Under simulate and "
                     "--sandbox-url the agent gets a sandbox account")
    if creds is not None:
        given = [creds.api_key, creds.api_key_secret, creds.access_token, creds.access_token_secret]
        if any(given) and not all(given):
            notes.append(f"{source}: twitter_credentials: only some of apiKey, apiKeySecret, accessToken, "
                         "accessTokenSecret are set; the agent cannot post with them")
    sol = config.solana_integration
    if sol is not None and sol.private_key is not None:
        notes.append(f"{source}: solana_integration.private_key: a key in the file works, but an environment "
                     "variable (SOLANA_PRIVATE_KEY_<ID>) keeps it out of version control")
    return notes


def parse_agent(data: Any, source: str = "<api>", previous: AgentConfig | None = None) -> LoadedAgent:
    """Validate a config dict (e.g. from the API's PUT), keeping the warnings.

    A secret sent as ``"***"`` (what :meth:`AgentConfig.public_dict` shows) keeps the
    value ``previous`` had, so a config can round-trip through the API unchanged.
    """
    if isinstance(data, dict):
        data = _restore_placeholders(data, previous)
    return _validate(data, source)


def parse_agent_config(data: Any, source: str = "<api>", previous: AgentConfig | None = None) -> AgentConfig:
    """:func:`parse_agent` without the warnings (they are logged)."""
    loaded = parse_agent(data, source, previous)
    for warning in loaded.warnings:
        log.warning("agent config: %s", warning)
    return loaded.config


def _read(path: Path) -> LoadedAgent:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AgentConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise AgentConfigError([f"{source}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentConfigError([json_error_problem(source, exc)]) from None
    except RecursionError:
        raise AgentConfigError([f"{source}: invalid JSON: nested too deeply"]) from None
    return _validate(data, source)


def load_agent_file(path: str | Path) -> LoadedAgent:
    """Load and validate one agent file; raises ``AgentConfigError`` listing every problem."""
    return _read(Path(path))


def _load_many(paths: Iterable[Path]) -> tuple[list[LoadedAgent], list[str]]:
    loaded: list[LoadedAgent] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            agent = _read(path)
        except AgentConfigError as exc:
            problems += exc.problems
            continue
        first = seen.get(agent.config.id)
        if first is not None:
            problems.append(f'{agent.source}: id: duplicate agent id "{agent.config.id}", already defined in {first}')
            continue
        seen[agent.config.id] = agent.source
        loaded.append(agent)
    return loaded, problems


def load_agents(directory: str | Path) -> list[LoadedAgent]:
    """Load every ``*.json`` in ``directory`` (sorted), collecting all problems before raising."""
    root = Path(directory)
    if not root.is_dir():
        raise AgentConfigError([f"{root}: agents directory not found"])
    loaded, problems = _load_many(sorted(root.glob("*.json")))
    if problems:
        raise AgentConfigError(problems)
    for agent in loaded:
        for warning in agent.warnings:
            log.warning("agent config: %s", warning)
    return loaded


def load_agents_dir(directory: str | Path) -> list[AgentConfig]:
    """Configs of every ``*.json`` in ``directory``; warnings are dropped (use :func:`load_agents`)."""
    return [agent.config for agent in load_agents(directory)]


def validate_files(paths: Iterable[str | Path]) -> list[str]:
    """Problems found in these files (duplicate ids included); an empty list means all valid."""
    return _load_many(Path(p) for p in paths)[1]


def check_files(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of these files: problems make a file invalid, warnings do not."""
    loaded, problems = _load_many(Path(p) for p in paths)
    return problems, [warning for agent in loaded for warning in agent.warnings]


def agent_json_schema() -> dict[str, Any]:
    """JSON Schema of an agent file, for editor completion (``"$schema"`` in the file)."""
    schema = AgentConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Puppet Engine agent"
    return schema
