"""The schema, as SQLAlchemy Core tables. Migrations (``storage/migrations``) create it.

Times are stored as epoch seconds (float) so the virtual clock and the wall clock
are handled alike and comparisons are cheap on both SQLite and PostgreSQL.
JSON columns hold typed models serialised by the code that owns them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row per agent: its (validated) config, its evolving state, and who owns it.
agents = Table(
    "agents",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("state", JSON, nullable=False, default=dict),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The queue and the history in one: nothing is deleted by normal operation.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=True, unique=True),  # deterministic id: runs once
    Column("type", String(64), nullable=False),
    Column("agent_id", String(128), nullable=True),
    Column("payload", JSON, nullable=False, default=dict),
    Column("due_at", Float, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=5),
    Column("owner", String(128), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("trace_id", String(64), nullable=True),
    Index("ix_events_status_due", "status", "due_at"),
    Index("ix_events_agent_status", "agent_id", "status"),
    Index("ix_events_type", "type"),
)

# The outbox: every side effect, recorded before it is sent.
actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),  # idempotency key
    Column("agent_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),  # post, reply, quote, like, retweet, trade
    Column("payload", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default="pending"),  # pending sending done failed unknown
    Column("external_id", String(128), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", Float, nullable=False, default=0.0),
    Column("error", Text, nullable=True),
    Column("event_id", Integer, nullable=True),
    Column("result", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_actions_status", "status", "not_before"),
    Index("ix_actions_agent_kind", "agent_id", "kind", "created_at"),
)

memories = Table(
    "memories",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("content", Text, nullable=False),  # ciphertext (base64) when encrypted
    Column("encrypted", Boolean, nullable=False, default=False),
    Column("importance", Float, nullable=False, default=0.5),
    Column("created_at", Float, nullable=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("embedding", LargeBinary, nullable=True),  # packed little-endian float32
    Column("embedder", String(128), nullable=True),
    Column("dim", Integer, nullable=True),
    Column("key", String(255), nullable=True),  # dedupe key for seeded memories
    UniqueConstraint("agent_id", "key", name="uq_memories_agent_key"),
    Index("ix_memories_agent_kind_time", "agent_id", "kind", "created_at"),
)

relationships = Table(
    "relationships",
    metadata,
    Column("agent_id", String(128), primary_key=True),
    Column("other", String(128), primary_key=True),  # another agent id or an X handle
    Column("sentiment", Float, nullable=False, default=0.0),  # -1 .. 1
    Column("familiarity", Float, nullable=False, default=0.0),  # 0 .. 1
    Column("trust", Float, nullable=False, default=0.5),  # 0 .. 1
    Column("notes", Text, nullable=False, default=""),
    Column("interactions", Integer, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

# Which X mentions were seen, and what was decided: unique per agent and tweet.
mentions = Table(
    "mentions",
    metadata,
    Column("agent_id", String(128), primary_key=True),
    Column("tweet_id", String(32), primary_key=True),
    Column("author_id", String(32), nullable=True),
    Column("author_username", String(64), nullable=True),
    Column("text", Text, nullable=False),
    Column("conversation_id", String(32), nullable=True),
    Column("received_at", Float, nullable=False),
    Column("decision", String(32), nullable=True),  # reply, skip:<reason>
    Column("reply_tweet_id", String(32), nullable=True),
)

trades = Table(
    "trades",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("agent_id", String(128), nullable=False),
    Column("input_mint", String(64), nullable=False),
    Column("output_mint", String(64), nullable=False),
    Column("in_amount", String(40), nullable=True),  # raw base units, decimal string
    Column("out_amount", String(40), nullable=True),
    Column("amount_sol", Float, nullable=True),
    Column("status", String(16), nullable=False),  # rejected pending sent confirmed failed dry-run
    Column("rule", String(64), nullable=True),  # the risk rule that rejected it
    Column("quote", JSON, nullable=True),
    Column("checks", JSON, nullable=True),
    Column("simulation", JSON, nullable=True),
    Column("signature", String(128), nullable=True),
    Column("last_valid_block_height", Integer, nullable=True),
    Column("fee_lamports", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("reasoning", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_trades_agent_time", "agent_id", "created_at"),
)

price_samples = Table(
    "price_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mint", String(64), nullable=False),
    Column("price_usd", Float, nullable=False),
    Column("sampled_at", Float, nullable=False),
    Index("ix_price_samples_mint_time", "mint", "sampled_at"),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(128), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("outcome", String(32), nullable=False),  # ok, error, skipped
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_llm_calls_agent_time", "agent_id", "created_at"),
)

leases = Table(
    "leases",
    metadata,
    Column("agent_id", String(128), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Processes of a multi-process deployment announce themselves here.
engine_nodes = Table(
    "engine_nodes",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# Settings an operator changed at run time (PUT /config): every process applies them, and
# they outlive a restart. ``value`` is the JSON value; ``updated_by`` the API key id.
runtime_settings = Table(
    "runtime_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=True),
)

# Failed API authentications per client address, shared by every process behind a load
# balancer: a window start and a count, and how long the address is refused.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("locked_until", Float, nullable=False),
)

# Operator commands (start, stop, restart, config, restart_all): recorded by whichever process
# received them, applied by the process that owns the agent (see ``agents/commands.py``).
commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(128), nullable=True),  # null: every agent (restart_all)
    Column("kind", String(16), nullable=False),
    Column("payload", JSON, nullable=False, default=dict),  # config: the public (redacted) dict
    Column("requested_by", String(128), nullable=True),  # the API key's label
    Column("created_at", Float, nullable=False),
    Column("state", String(16), nullable=False, default="pending"),  # pending, applying, applied, failed
    Column("reason", Text, nullable=True),
    Column("applied_at", Float, nullable=True),
    Column("applied_by", String(128), nullable=True),  # the node (engine owner id)
    Index("ix_commands_state", "state"),
)

# Replay recordings (issue 17): what each event read and was answered (LLM requests and answers,
# mentions and threads, prices, balances) and the agent's state when it started, so a stretch can
# be re-run by ``puppet-engine replay``. ``body`` is zstd-compressed JSON, AES-GCM sealed when
# MEMORY_ENCRYPTION_KEY is set (``storage/repos/recordings.py``); pruned by the retention job.
recordings = Table(
    "recordings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(128), nullable=False),
    Column("event_id", Integer, nullable=True),
    Column("kind", String(16), nullable=False),  # event, llm, read
    Column("seq", Integer, nullable=False, default=0),  # order within the event
    Column("created_at", Float, nullable=False),  # when the event started (virtual or wall clock)
    Column("body", LargeBinary, nullable=False),
    Index("ix_recordings_agent_time", "agent_id", "created_at"),
    Index("ix_recordings_created", "created_at"),
)
