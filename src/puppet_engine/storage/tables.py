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

# Where each agent's definition comes from (migration 0005): the hash of the agent file version
# last recorded (an unchanged file gives way to the database's config at start-up), who changed
# the config last ('file' or 'api'), and an edit of the file that was refused, until it is fixed.
for _column in (
    Column("file_sha", String(64), nullable=True),
    Column("config_source", String(8), nullable=True),  # 'file' | 'api'
    Column("config_changed_by", String(255), nullable=True),  # "file <path>" or the API key's label
    Column("config_changed_at", Float, nullable=True),
    Column("definition_error", JSON, nullable=True),  # {file, problems, since}
    Column("refused_sha", String(64), nullable=True),  # the hash of that refused version
):
    agents.append_column(_column)

# -- Nodes and roles (migration 0006) ------------------------------------------------------
# Every ``puppet-engine run`` process (role all, worker or api) heartbeats here on its
# runtime loop; a node unseen for a while is shown as gone (``storage/repos/nodes.py``).
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(128), primary_key=True),  # the id used by leases and commands.applied_by
    Column("role", String(16), nullable=False),  # all, worker, api
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),  # a clean stop; null while it runs (or died)
)

# What each node did for a command every worker applies (restart_all): one row per node.
command_results = Table(
    "command_results",
    metadata,
    Column("command_id", Integer, primary_key=True),
    Column("node", String(128), primary_key=True),
    Column("applied_at", Float, nullable=False),
    Column("result", JSON, nullable=False, default=dict),  # {"restarted": [agent ids]}
)

# When the holder took the agent (``GET /agents``: owner since).
leases.append_column(Column("acquired_at", Float, nullable=True))

# Engine-wide singleton roles held by one process at a time (the X filtered stream connection):
# a lease renewed by its holder, and since when the role's work is live (``None``: down).
role_leases = Table(
    "role_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("live_since", Float, nullable=True),
)

# Human review (issue 18). An action waiting for approval is an outbox row in status
# ``awaiting_review``; ``review_items`` says why it waits, what the agent knew, and until when.
# ``review_decisions`` is the audit trail: who (API key id) decided what, when.
review_items = Table(
    "review_items",
    metadata,
    Column("action_id", Integer, primary_key=True),  # actions.id
    Column("agent_id", String(128), nullable=False),
    Column("category", String(32), nullable=False),  # posts, replies, quotes, trade_announcements, trades
    Column("reasons", JSON, nullable=False, default=list),
    Column("context", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False, default="waiting"),  # waiting approved rejected expired
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("on_expire", String(8), nullable=False, default="drop"),
    Column("decided_at", Float, nullable=True),
    Column("notice", String(16), nullable=False, default="pending"),  # webhook: pending sending sent failed none
    Column("notice_attempts", Integer, nullable=False, default=0),
    Index("ix_review_items_state", "state", "expires_at"),
    Index("ix_review_items_notice", "notice"),
)

review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action_id", Integer, nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("decision", String(16), nullable=False),  # approved, rejected, expired_dropped, expired_sent
    Column("reason", Text, nullable=True),
    Column("edited", Boolean, nullable=False, default=False),
    Column("decided_by", String(128), nullable=True),  # the API key id; null: the engine (expiry)
    Column("decided_at", Float, nullable=False),
    Index("ix_review_decisions_agent", "agent_id", "decision"),
    Index("ix_review_decisions_time", "decided_at"),
)

# Engagement of the agents' own posts (issue #16): one row per post and sampling slot (1 h,
# 6 h, 24 h, 72 h after posting by default), written by the sampling event that took it
# (``event_key``, so a retried event sees the same rows and applies their effects once).
# Kept ENGAGEMENT_RETENTION_DAYS after the post, then pruned.
post_metrics = Table(
    "post_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(128), nullable=False),
    Column("post_id", String(64), nullable=False),
    Column("posted_at", Float, nullable=False),
    Column("posted_hour", Integer, nullable=False),  # hour of day of the post in the agent's timezone
    Column("slot", Integer, nullable=False),  # index into the sampling schedule
    Column("sampled_at", Float, nullable=False),
    Column("likes", Integer, nullable=False, default=0),
    Column("replies", Integer, nullable=False, default=0),
    Column("reposts", Integer, nullable=False, default=0),
    Column("quotes", Integer, nullable=False, default=0),
    Column("bookmarks", Integer, nullable=False, default=0),
    Column("impressions", Integer, nullable=True),  # null: not given (access level) or the post was gone
    Column("gone", Boolean, nullable=False, default=False),  # deleted or no longer visible when sampled
    Column("event_key", String(255), nullable=True),
    UniqueConstraint("post_id", "slot"),
    Index("ix_post_metrics_agent_posted", "agent_id", "posted_at"),
    Index("ix_post_metrics_event_key", "event_key"),
)

# The history: every change of an agent's state as a fact, with the time it happened (engine
# clock), its kind, what changed (``payload``), and the event that made it (``cause``). The
# current tables (``agents.state``, ``relationships`` …) are the projection of these facts.
facts = Table(
    "facts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(128), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    Column("cause", Integer, nullable=True),  # events.id
    Index("ix_facts_agent_at", "agent_id", "at"),
    Index("ix_facts_at", "at"),
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
