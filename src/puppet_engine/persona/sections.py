"""The sections of an agent file: credentials, Solana, personality, style, memory, behaviour, LLM.

Each is a pydantic model in the original Puppet Engine JSON format (the same field names and
meaning); :class:`~puppet_engine.persona.model.AgentConfig` holds one of each. Every field has
a default documented in its ``description``; secrets are ``SecretStr`` and serialise as ``"***"``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from puppet_engine.persona.problems import PLACEHOLDER, ensure_order


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


class Section(BaseModel):
    # extra="allow" keeps unknown keys long enough to warn about them (then they are dropped).
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        allow_inf_nan=False,
        json_schema_extra={"additionalProperties": False},
    )


# --------------------------------------------------------------------------- credentials


PASSWORD_LOGIN_FIELDS = ("username", "password", "email", "totp_secret", "twoFactorSecret")


class TwitterCredentials(Section):
    """OAuth 1.0a user-context keys for the agent's own X account (all optional)."""

    api_key: Secret = Field(None, alias="apiKey", description="consumer API key; default: none (engine/sandbox supplies one)")
    api_key_secret: Secret = Field(None, alias="apiKeySecret", description="consumer API key secret; default: none")
    access_token: Secret = Field(None, alias="accessToken", description="user access token; default: none")
    access_token_secret: Secret = Field(None, alias="accessTokenSecret", description="user access token secret; default: none")
    bearer_token: Secret = Field(None, alias="bearerToken", description="app-only bearer token for reads; default: none")
    # The original's web-scraping login (username/password/email): recognised, dropped at once
    # (never stored, never echoed) and reported by one warning (persona.loading).
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


class TradeSafety(Section):
    """Hard per-trade limits, checked before any quote is requested."""

    max_trade_amount_sol: NonNegative = Field(0.1, description="largest single trade in SOL; default 0.1")
    min_wallet_balance_sol: NonNegative = Field(0.05, description="SOL always kept in the wallet for fees; default 0.05")
    max_slippage_percent: Annotated[float, Field(ge=0, le=100)] = Field(1.0, description="maximum slippage in percent; default 1.0")


class SolanaIntegration(Section):
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


class Personality(Section):
    """Who the agent is; rendered into every system prompt."""

    traits: list[str] = Field(default_factory=list, description="character traits; default []")
    values: list[str] = Field(default_factory=list, description="what the agent cares about; default []")
    speaking_style: str = Field("", description="free text on how the agent talks; default empty")
    interests: list[str] = Field(default_factory=list, description="topics the agent posts about; default []")


class Formatting(Section):
    """Surface style rules; the boolean ones are enforced on generated text."""

    uses_hashtags: bool = Field(False, description="hashtags allowed; default false")
    hashtag_style: str = Field("", description="free text guidance on hashtags; default empty")
    uses_emojis: bool = Field(False, description="emojis allowed; default false")
    emoji_frequency: str = Field("", description="free text guidance on emoji use; default empty")
    capitalization: str = Field("", description="free text, e.g. 'lowercase only'; default empty")
    sentence_length: str = Field("", description="free text guidance on sentence length; default empty")
    avoid_hyphens: bool = Field(False, description="strip/forbid hyphens and dashes; default false")


class Vocabulary(Section):
    """Words the agent favours or must not use."""

    key_terms: list[str] = Field(default_factory=list, description="terms to use naturally; default []")
    avoid_terms: list[str] = Field(default_factory=list, description="terms never to use (enforced); default []")


class StyleGuide(Section):
    """How the agent writes."""

    voice: str = Field("", description="narrative voice; default empty")
    tone: str = Field("", description="tone; default empty")
    formatting: Formatting = Field(default_factory=Formatting, description="formatting rules; defaults as in Formatting")
    vocabulary: Vocabulary = Field(default_factory=Vocabulary, description="preferred and banned terms; default empty")
    topics_to_avoid: list[str] = Field(default_factory=list, description="topics never posted about (enforced); default []")


class Relationship(Section):
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


class InitialMemory(Section):
    """Seed memories written once when the agent is first created."""

    core_memories: list[str] = Field(default_factory=list, description="facts the agent always knows; default []")
    relationships: dict[str, Relationship] = Field(
        default_factory=dict, description="keyed by the other agent's id or X handle; default {}"
    )
    recent_events: list[Annotated[str, BeforeValidator(_event_text)]] = Field(
        default_factory=list, description="recent things that happened (strings or {content}); default []"
    )


# --------------------------------------------------------------------------- behaviour


class PostFrequency(Section):
    """When the agent posts; hours are read in the agent's ``timezone``."""

    min_hours_between_posts: NonNegative = Field(3.0, description="shortest gap between posts in hours; default 3")
    max_hours_between_posts: NonNegative = Field(12.0, description="longest gap between posts in hours; default 12")
    peak_posting_hours: list[Hour] = Field(default_factory=list, description="hours 0-23 favoured for posting; default [] (no preference)")
    learn_peak_hours: bool = Field(
        False, description="move the peak hours towards the hours whose posts engage best (docs/engagement.md); default false"
    )

    @model_validator(mode="after")
    def _ordered(self) -> PostFrequency:
        ensure_order("min_hours_between_posts", self.min_hours_between_posts,
                     "max_hours_between_posts", self.max_hours_between_posts)
        return self


class InteractionPatterns(Section):
    """How the agent reacts to what it reads."""

    reply_probability: Probability = Field(0.5, description="chance of replying to a mention; default 0.5")
    quote_tweet_probability: Probability = Field(0.3, description="chance of quoting a tweet it reads; default 0.3")
    like_probability: Probability = Field(0.7, description="chance of liking a tweet it reads; default 0.7")
    max_reply_depth: Annotated[int, Field(ge=0)] = Field(
        3, description="longest agent-to-agent reply chain the agent continues; default 3"
    )


class ContentPreferences(Section):
    """Shape of generated posts."""

    max_thread_length: Annotated[int, Field(ge=1)] = Field(3, description="most posts in one thread; default 3")
    typical_post_length: Annotated[int, Field(ge=1)] = Field(240, description="target length hint given to the LLM; default 240")
    max_post_length: Annotated[int, Field(ge=1)] | None = Field(
        None, description="hard cap in characters; default null = X's 280 weighted limit"
    )
    link_sharing_frequency: Probability = Field(0.2, description="share of posts that may carry a link; default 0.2")


class TradingFrequency(Section):
    """How often the agent considers a trade."""

    min_hours_between_trades: NonNegative = Field(12.0, description="shortest gap between trades in hours; default 12")
    max_hours_between_trades: NonNegative = Field(48.0, description="longest gap between trades in hours; default 48")
    random_probability: Probability = Field(0.2, description="chance a due check trades a random allowed token; default 0.2")

    @model_validator(mode="after")
    def _ordered(self) -> TradingFrequency:
        ensure_order("min_hours_between_trades", self.min_hours_between_trades,
                     "max_hours_between_trades", self.max_hours_between_trades)
        return self


class AllowedTokens(Section):
    """Which tokens may be bought; symbols (SOL, USDC) or mint addresses."""

    always_tradable: list[str] = Field(default_factory=lambda: ["SOL", "USDC"], description='always allowed; default ["SOL", "USDC"]')
    consider_trending: bool = Field(False, description="also allow currently trending tokens; default false")
    blacklist: list[str] = Field(default_factory=list, description="never traded, wins over everything; default []")


class TradingBehavior(Section):
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


class Behavior(Section):
    """Rhythm and reactions of the agent."""

    post_frequency: PostFrequency = Field(default_factory=PostFrequency, description="see PostFrequency")
    interaction_patterns: InteractionPatterns = Field(default_factory=InteractionPatterns, description="see InteractionPatterns")
    content_preferences: ContentPreferences = Field(default_factory=ContentPreferences, description="see ContentPreferences")
    trading_behavior: TradingBehavior = Field(default_factory=TradingBehavior, description="see TradingBehavior")
    mention_poll_minutes: Annotated[float, Field(gt=0)] | None = Field(
        None, description="minutes between mention polls; default null = MENTION_POLL_SECONDS"
    )


class AgentKitMethods(Section):
    """Which market/trading methods the agent may call."""

    allowed: list[str] = Field(default_factory=list, description="allowed method names; default [] = all")
    autonomous_only: list[str] = Field(
        default_factory=lambda: ["swapTokens"], description='methods never triggered by a human request; default ["swapTokens"]'
    )


class AutonomyRules(Section):
    """Daily trading limits. Human requests never trigger trades, whatever the setting."""

    ignore_human_trading_requests: bool = Field(True, description="kept for compatibility; the engine always ignores them; default true")
    max_daily_trades: Annotated[int, Field(ge=0)] = Field(5, description="trades per day (agent timezone); default 5")
    max_single_trade_amount_sol: NonNegative = Field(0.1, description="SOL per trade; default 0.1")
    require_trending_validation: bool = Field(False, description="only buy tokens currently trending; default false")


class AgentKitIntegration(Section):
    """The original "Solana Agent Kit" block: extra autonomy limits for trading."""

    enabled: bool = Field(False, description="apply these rules; default false")
    methods: AgentKitMethods = Field(default_factory=AgentKitMethods, description="see AgentKitMethods")
    autonomy_rules: AutonomyRules = Field(default_factory=AutonomyRules, description="see AutonomyRules")


class LLMConfig(Section):
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
