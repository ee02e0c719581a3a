"""Request and response models of the HTTP API (they are also its OpenAPI schema).

Every list comes as a :class:`Page`; every error as :class:`ErrorBody`. Models carry
examples so the generated schema documents real-looking payloads. Nothing here holds
a secret: agent configs are the redacted ``public_dict`` form, settings show ``"***"``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

MemoryKindName = Literal["core", "post", "reply", "mention", "trade", "event", "knowledge", "relationship",
                         "quarantined"]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- common


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code: not_found, unauthorized, validation_error …")
    message: str = Field(description="what went wrong, for a person")
    details: Any = Field(None, description="extra structure, e.g. the fields that failed validation")


class ErrorBody(BaseModel):
    model_config = _examples({"error": {"code": "not_found", "message": "no agent with id 'zed'", "details": None}})
    error: ErrorInfo


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` plus where it sits in the whole."""

    items: list[T]
    total: int = Field(description="how many items match in all")
    limit: int
    offset: int


class Accepted(BaseModel):
    """Work was scheduled as an event; follow it on ``GET /events`` or ``/feed``."""

    model_config = _examples({"event_id": 42, "type": "post.manual", "agent_id": "coby", "status": "pending",
                              "key": "api:post.manual:coby:7f3a9c"})
    event_id: int
    type: str
    agent_id: str | None
    status: str = "pending"
    key: str


# --------------------------------------------------------------------------- agents


class SkippedPosts(BaseModel):
    """The agent's last scheduled posts (up to 10) and how many of them were skipped."""

    skipped: int
    recent: int = Field(description="scheduled posts looked at (finished ones among the last 10)")
    reason: str | None = Field(None, description="the most common reason, as the first skipped post gave it")


class AgentSummary(BaseModel):
    model_config = _examples({
        "id": "coby", "name": "Coby", "description": "A crypto philosopher", "running": True,
        "status": "running", "status_reason": None, "retry_at": None, "username": "coby", "llm_provider": "openai", "trading_enabled": False, "mood": "wistful",
        "last_post_at": 1767225600.0, "next_post_at": 1767236400.0, "posts": 12, "balance_sol": None,
    })
    id: str
    name: str
    description: str
    running: bool = Field(description="connected and acting (status is running)")
    status: Literal["starting", "running", "stopped", "failed"] = Field(
        description="starting: connecting its accounts, actions are accepted and wait for it; running; "
                    "stopped: by an operator (actions are refused); failed: its start failed, retried with backoff")
    status_reason: str | None = Field(None, description="why the last start failed (status failed)")
    retry_at: float | None = Field(None, description="when a failed start is tried again")
    username: str | None
    llm_provider: str
    trading_enabled: bool
    mood: str | None = None
    last_post_at: float | None = None
    next_post_at: float | None = None
    posts: int = Field(0, description="posts and threads published")
    balance_sol: float | None = Field(None, description="last known SOL balance when the agent trades")
    owner: str | None = Field(None, description="the node running the agent (its lease holder); null: none now")
    owner_since: float | None = Field(None, description="since when that node runs it")
    skipped_posts: SkippedPosts | None = Field(
        None, description="among the agent's last scheduled posts, how many produced nothing and why")
    warnings: list[str] = Field(default_factory=list, description="what an operator should look at, e.g. an "
                                "agent that skips most of its posts (the dashboard flags the agent)")
    definition_error: dict[str, Any] | None = Field(
        None, description="a refused edit of the agent's file (file, problems, since); the previous version runs")


class Relationship(BaseModel):
    other: str = Field(description="another agent's id or an X handle")
    sentiment: float
    familiarity: float
    trust: float
    notes: str
    interactions: int
    updated_at: float


class EventOut(BaseModel):
    model_config = _examples({
        "id": 42, "key": "post:coby:3", "type": "post.due", "agent_id": "coby", "payload": {"seq": 3},
        "due_at": 1767225600.0, "status": "done", "attempts": 1, "max_attempts": 5,
        "result": {"parts": ["every ledger is a diary"]}, "error": None, "created_at": 1767220000.0,
        "started_at": 1767225600.1, "finished_at": 1767225601.3, "trace_id": None,
    })
    id: int
    key: str | None
    type: str
    agent_id: str | None
    payload: dict[str, Any]
    due_at: float
    status: str
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    trace_id: str | None


class AgentDetail(AgentSummary):
    config: dict[str, Any] = Field(description="the agent's config in file format; secrets read '***'")
    state: dict[str, Any] = Field(description="persisted state: mood, cursors, next due times")
    pending_events: list[EventOut]
    relationships: list[Relationship]
    config_source: str | None = Field(None, description="where the config in force came from: file or api")


class CommandedSummary(AgentSummary):
    """The agent after an operator command: applied here (200) or pending on its owner (202)."""

    command_id: int
    command_state: str = Field(description="pending, applying, applied or failed (GET /commands/{id})")


class CommandedDetail(AgentDetail):
    command_id: int
    command_state: str = Field(description="pending, applying, applied or failed (GET /commands/{id})")


class ActionOut(BaseModel):
    model_config = _examples({
        "id": 7, "kind": "post", "status": "done", "payload": {"text": "every ledger is a diary"},
        "external_id": "1790000000000000001", "error": None, "attempts": 1, "event_id": 42,
        "created_at": 1767225601.0, "updated_at": 1767225601.4,
    })
    id: int
    kind: str
    status: str
    payload: dict[str, Any]
    external_id: str | None
    error: str | None
    attempts: int
    event_id: int | None
    created_at: float
    updated_at: float


class MentionOut(BaseModel):
    tweet_id: str
    author_username: str | None
    text: str
    received_at: float
    decision: str | None
    reply_tweet_id: str | None


class PostRequest(_Strict):
    """Give ``text`` to post as is (it is still validated), or a ``topic`` to write about, or neither."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"topic": "validators at dawn"}, {"text": "gm from the ledger"}, {}],
        "not": {"required": ["text", "topic"]}})
    text: str | None = Field(None, min_length=1, max_length=4000)
    topic: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_of(self) -> PostRequest:
        if self.text is not None and self.topic is not None:
            raise ValueError("give either text or topic, not both")
        return self


class TradeRequest(_Strict):
    """A manual swap; the trading behaviour applies the same risk limits (and token checks) as to its own trades."""

    model_config = _examples({"input": "SOL", "output": "USDC", "amount_sol": 0.05})
    input: str = Field(min_length=1, max_length=64, description="token symbol or mint to sell")
    output: str = Field(min_length=1, max_length=64, description="token symbol or mint to buy")
    # strict: true, "0.01" and the like are refused (422 naming body.amount_sol), never coerced
    amount_sol: float = Field(gt=0, le=1_000_000, strict=True, allow_inf_nan=False,
                              description="size of the trade in SOL, whatever the input token: for another "
                                          "input, that much SOL's worth of it at the market price (a token "
                                          "without a price is refused with rule no_price)")


# --------------------------------------------------------------------------- memory


class MemoryOut(BaseModel):
    model_config = _examples({
        "id": "m_01hx", "kind": "core", "content": "every blockchain is a diary", "importance": 0.8,
        "created_at": 1767225600.0, "metadata": {},
    })
    id: str
    kind: str
    content: str
    importance: float
    created_at: float
    metadata: dict[str, Any]


class MemoryCreate(_Strict):
    model_config = _examples({"content": "Nova launched a meme contest today", "kind": "event",
                              "importance": 0.6})
    content: str = Field(min_length=1, max_length=10_000)
    kind: MemoryKindName = "knowledge"
    importance: float = Field(0.5, ge=0, le=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemorySearch(_Strict):
    model_config = _examples({"query": "what do I think about permanence?", "limit": 5})
    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(10, ge=1, le=100)
    kinds: list[MemoryKindName] | None = None


class MemoryHit(BaseModel):
    memory: MemoryOut
    score: float = Field(description="similarity plus importance and recency bonuses")
    similarity: float


class ClearRequest(_Strict):
    confirm: bool = Field(False, description="must be true to delete every memory of the agent")


class Deleted(BaseModel):
    deleted: int


# --------------------------------------------------------------------------- trading


class TradeStats(BaseModel):
    model_config = _examples({
        "agent_id": "ledger", "trading_enabled": True, "total": 9, "by_status": {"confirmed": 7, "rejected": 2},
        "confirmed": 7, "failed": 0, "rejected": 2, "volume_sol": 0.42, "fees_lamports": 35000,
        "trades_last_24h": 3, "last_trade_at": 1767225600.0,
    })
    agent_id: str
    trading_enabled: bool
    total: int
    by_status: dict[str, int]
    confirmed: int
    failed: int
    rejected: int
    volume_sol: float
    fees_lamports: int
    trades_last_24h: int
    last_trade_at: float | None


class TokenBalance(BaseModel):
    mint: str
    symbol: str | None = None
    amount: float = Field(description="in whole tokens (decimals applied)")
    value_usd: float | None = None


class Balance(BaseModel):
    model_config = _examples({
        "agent_id": "ledger", "wallet_address": "7xKX…", "sol": 1.25,
        "tokens": [{"mint": "EPjF…", "symbol": "USDC", "amount": 12.5, "value_usd": 12.5}],
        "total_value_usd": 201.3, "as_of": 1767225600.0,
    })
    agent_id: str
    wallet_address: str | None
    sol: float
    tokens: list[TokenBalance]
    total_value_usd: float | None = None
    as_of: float


class PortfolioPoint(BaseModel):
    at: float
    value_usd: float | None = None
    value_sol: float | None = None


class TradeOut(BaseModel):
    id: int
    input_mint: str
    output_mint: str
    in_amount: str | None
    out_amount: str | None
    amount_sol: float | None
    status: str
    rule: str | None
    signature: str | None
    fee_lamports: int | None
    error: str | None
    reasoning: str | None
    created_at: float
    updated_at: float


# --------------------------------------------------------------------------- system


class SettingsUpdate(_Strict):
    """Runtime settings; only the fields given change, and they apply at once."""

    model_config = _examples({"log_level": "DEBUG", "mention_poll_seconds": 30})
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    mention_poll_seconds: float | None = Field(None, ge=1, le=86_400)
    engine_concurrency: int | None = Field(None, ge=1, le=1024)
    event_max_attempts: int | None = Field(None, ge=1, le=100)
    trading_mode: Literal["live", "dry-run"] | None = None
    llm_daily_token_budget: int | None = Field(None, ge=0, le=10**12)


class NewsRequest(_Strict):
    model_config = _examples({"text": "Solana validators ship a new client", "agents": ["coby", "nova"]})
    text: str = Field(min_length=1, max_length=4000)
    agents: list[str] | None = Field(None, max_length=1000, description="default: every running agent")


class NewsAccepted(BaseModel):
    events: list[Accepted]


class HealthOut(BaseModel):
    model_config = _examples({"status": "ok", "role": "all", "node": "host-1a2b3c4d"})
    status: Literal["ok", "degraded", "down"]
    role: str = Field("all", description="this node's role: all, worker (agents only) or api (API only)")
    node: str = Field("", description="this node's id (as in GET /nodes, leases and commands)")


class ComponentOut(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str = ""
    latency_ms: float | None = None
    critical: bool = True


class HealthDetails(BaseModel):
    model_config = _examples({"status": "ok", "components": {
        "database": {"status": "ok", "detail": "sqlite", "latency_ms": 0.8, "critical": True}}})
    status: Literal["ok", "degraded", "down"]
    components: dict[str, ComponentOut]


class RestartResult(BaseModel):
    restarted: list[str]  # by the node that answered; the others restart theirs within seconds


class CommandOut(BaseModel):
    """An operator command and its outcome (``GET /commands/{id}``)."""

    model_config = _examples({
        "id": 7, "agent_id": "coby", "kind": "stop", "payload": {}, "requested_by": "ops",
        "created_at": 1767225600.0, "state": "applied", "reason": None, "applied_at": 1767225600.4,
        "applied_by": "host-1a2b3c4d",
    })
    id: int
    agent_id: str | None
    kind: str  # start, stop, restart, config, restart_all
    payload: dict[str, Any]  # config: the public config, secrets redacted
    requested_by: str | None
    created_at: float
    state: str  # pending, applying, applied, failed
    reason: str | None
    applied_at: float | None
    applied_by: str | None  # the node that applied it
    nodes: list[dict[str, Any]] | None = Field(
        None, description="restart_all: what each worker did (node, applied_at, restarted); applied once "
                          "every live worker has")


class StatusOut(BaseModel):
    model_config = _examples({
        "version": "0.1.0", "owner": "host-1a2b3c4d", "uptime_seconds": 3600.0, "now": 1767225600.0,
        "database": "sqlite", "sandbox": True,
        "agents": {"total": 3, "running": 3},
        "engine": {"concurrency": 16, "in_flight": 1, "processed": 120},
        "events": {"pending": 5, "done": 110, "failed": 1}, "actions": {"done": 40},
    })
    version: str
    owner: str
    role: str = Field("all", description="this node's role: all, worker or api")
    uptime_seconds: float
    now: float
    database: str
    sandbox: bool
    agents: dict[str, int]
    engine: dict[str, int]
    events: dict[str, int]
    actions: dict[str, int]


_RESPONSE_TEXT = {
    400: "bad request: the body could not be parsed, or a confirmation is missing",
    401: "missing or invalid API key",
    403: "the API key's scope does not allow this",
    404: "no such agent, memory or route",
    409: "the request conflicts with the current state (e.g. the agent is stopped)",
    422: "the request did not validate; details name each field",
    429: "too many failed authentication attempts from this address",
    503: "a dependency (database, wallet, engine service) is unavailable",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error responses an endpoint can give.

    Always 401, 403, 429 and 503; 400 (unparseable input) goes with 422.
    """
    wanted = sorted({401, 403, 429, 503, *codes, *((400,) if 422 in codes else ())})
    return {code: {"model": ErrorBody, "description": _RESPONSE_TEXT[code]} for code in wanted}
