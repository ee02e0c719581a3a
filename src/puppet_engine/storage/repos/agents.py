"""The agents table: registered agents, their secret-free config, enabled flag, version, and where
the config came from (the agent file's hash, ``file`` or ``api``)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from puppet_engine.errors import StorageError
from puppet_engine.storage.database import Database
from puppet_engine.storage.repos import facts
from puppet_engine.storage.repos.commands import notify
from puppet_engine.storage.skips import (
    SkipCount,
    count_post_skips,
    recent_post_keys,
    recent_post_skips,
    recent_posts_statement,
)
from puppet_engine.storage.sql import fixed_in, insert_ignoring_conflicts
from puppet_engine.storage.tables import actions, agents, commands, events, relationships

SENT_POST_KINDS = ("post", "thread")  # what the overview counts as the agent's posts


async def disabled_among(db: Database, agent_ids: Iterable[str]) -> set[str]:
    """Which of these agents are registered and disabled."""
    async with db.connect() as conn:
        return {r.id for r in await conn.execute(
            sa.select(agents.c.id).where(agents.c.id.in_(list(agent_ids)), agents.c.enabled.is_(False)))}


async def save_config(db: Database, agent_id: str, config: dict[str, Any], now: float) -> bool:
    """Register the agent with ``config``, or store ``config`` as its next version when it
    changed; returns whether the agent is enabled (a new one is)."""
    async with db.transaction() as conn:
        row = (await conn.execute(sa.select(agents.c.enabled, agents.c.version, agents.c.config)
                                  .where(agents.c.id == agent_id))).first()
        if row is None:
            await conn.execute(agents.insert().values(id=agent_id, config=config, state={}, enabled=True,
                                                      version=1, created_at=now, updated_at=now))
            await facts.insert(conn, facts.registered(agent_id, now))
            return True
        if row.config != config:
            await conn.execute(agents.update().where(agents.c.id == agent_id)
                               .values(config=config, version=row.version + 1, updated_at=now))
            await facts.insert(conn, [facts.config_fact(agent_id, row.version + 1, now)])
        return bool(row.enabled)


@dataclass(frozen=True)
class Registered:
    """An agent as start-up finds it in the database: whether it is enabled, and the definition
    to run instead of the one it was given (``None``: the given one is current)."""

    enabled: bool
    config: dict[str, Any] | None = None


@dataclass(frozen=True)
class Definition:
    """An agent's definition as given at start-up: its public config, and the hash and path of the
    file it was read from (``None``: not from a file, e.g. given by a test or ``simulate``)."""

    agent_id: str
    config: dict[str, Any]
    sha: str | None = None
    file: str | None = None


async def save_configs(db: Database, definitions: list[Definition], now: float,
                       chunk: int = 500) -> dict[str, Registered]:
    """Register many agents at start-up, a few statements per ``chunk`` (10,000 agents start fast).

    The database's definition is the one every node runs, so an agent file gives way to it unless
    the file changed: a file whose hash is the one last recorded leaves the stored config as it is
    (changed through the API meanwhile: returned in :class:`Registered`), a new or changed file is
    recorded as the agent's definition (source ``file``). A definition without a file replaces the
    stored config when it differs (as before files were tracked).
    """
    registered: dict[str, Registered] = {}
    for start in range(0, len(definitions), chunk):
        part = definitions[start:start + chunk]
        async with db.transaction() as conn:
            rows = {r.id: r for r in await conn.execute(
                sa.select(agents.c.id, agents.c.enabled, agents.c.version, agents.c.config, agents.c.file_sha,
                          agents.c.refused_sha)
                .where(agents.c.id.in_([d.agent_id for d in part])))}
            fresh, changes = [], []
            for d in part:
                row = rows.get(d.agent_id)
                source = _file_source(d, now)
                if row is None:
                    fresh.append({"id": d.agent_id, "config": d.config, "state": {}, "enabled": True, "version": 1,
                                  "created_at": now, "updated_at": now, **_NO_FILE, **source})
                    registered[d.agent_id] = Registered(True)
                    continue
                if d.sha is not None and d.sha == row.file_sha:  # the file did not change: the database wins
                    stored = row.config if row.config != d.config else None
                    if row.refused_sha is not None:  # an edit refused earlier was undone meanwhile
                        await conn.execute(agents.update().where(agents.c.id == d.agent_id)
                                           .values(definition_error=None, refused_sha=None))
                    registered[d.agent_id] = Registered(bool(row.enabled), stored)
                    continue
                values: dict[str, Any] = dict(source)
                if row.config != d.config:
                    values.update(config=d.config, version=row.version + 1, updated_at=now)
                    changes.append(facts.config_fact(d.agent_id, row.version + 1, now,
                                                     by=None if d.file is None else f"file {d.file}"))
                if values:
                    await conn.execute(agents.update().where(agents.c.id == d.agent_id).values(**values))
                registered[d.agent_id] = Registered(bool(row.enabled))
            if fresh:  # another process may be starting the same agents: first one wins
                added = await conn.execute(insert_ignoring_conflicts(conn, agents).returning(agents.c.id), fresh)
                changes += [f for (agent_id,) in added for f in facts.registered(agent_id, now)]
            await facts.insert(conn, changes)
    return registered


# Every row of one multi-row insert names the same columns: those of a definition without a file.
_NO_FILE = {"file_sha": None, "config_source": None, "config_changed_by": None, "config_changed_at": None,
            "definition_error": None, "refused_sha": None}


def _file_source(d: Definition, now: float) -> dict[str, Any]:
    """The columns saying the definition came from (this version of) its file."""
    if d.sha is None:
        return {}
    return {"file_sha": d.sha, "config_source": "file", "config_changed_by": f"file {d.file}"[:255],
            "config_changed_at": now, "definition_error": None, "refused_sha": None}


async def stored_without(db: Database, agent_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], str | None]]:
    """The stored config and recorded file hash of every registered agent not among ``agent_ids``
    (an agent whose file is not here: created elsewhere, or its file removed), by id."""
    known = set(agent_ids)
    async with db.connect() as conn:  # ids first: 10,000 agents' configs are not read to find none missing
        missing = [r.id for r in await conn.execute(sa.select(agents.c.id)) if r.id not in known]
        if not missing:
            return {}
        rows = await conn.execute(sa.select(agents.c.id, agents.c.config, agents.c.file_sha)
                                  .where(agents.c.id.in_(missing)))
        return {r.id: (r.config, r.file_sha) for r in rows}


async def record_file_edit(db: Database, agent_id: str, sha: str | None, commands_: list[tuple[str, dict[str, Any]]],
                           by: str, now: float) -> list[int] | None:
    """Take note that the agent's file is now the version ``sha`` (``None``: removed) and record
    the ``(kind, payload)`` commands that apply it, in one transaction; their ids. ``None`` when
    that version is already recorded (another node saw the same edit first: it alone records it)."""
    differs: sa.ColumnElement[bool]
    if sha is None:
        differs = agents.c.file_sha.is_not(None)
    else:
        differs = sa.or_(agents.c.file_sha.is_(None), agents.c.file_sha != sha)
    async with db.transaction() as conn:
        done = await conn.execute(agents.update().where(agents.c.id == agent_id, differs)
                                  .values(file_sha=sha, definition_error=None, refused_sha=None))
        if not done.rowcount:
            return None
        ids = []
        for kind, payload in commands_:
            result = await conn.execute(commands.insert().values(
                agent_id=agent_id, kind=kind, payload=payload, requested_by=by[:128], created_at=now,
                state="pending"))
            assert result.inserted_primary_key is not None
            ids.append(int(result.inserted_primary_key[0]))
            await notify(conn, ids[-1])  # the owner applies it at once (PostgreSQL)
        return ids


async def set_definition_error(db: Database, agent_id: str, error: dict[str, Any] | None,
                               sha: str | None = None) -> None:
    """Record a refused version ``sha`` of the agent's file (``error``: ``{file, problems, since}``),
    or clear it (``None``). The same refused version seen again (by another node) keeps its first
    ``since``: one conditional statement, so nodes racing on it agree."""
    where: sa.ColumnElement[bool]
    if error is None:
        where = agents.c.refused_sha.is_not(None)
    else:
        where = sa.or_(agents.c.refused_sha.is_(None), agents.c.refused_sha != (sha or ""))
    async with db.transaction() as conn:
        await conn.execute(agents.update().where(agents.c.id == agent_id, where)
                           .values(definition_error=error, refused_sha=sha if error is not None else None))


async def definition(db: Database, agent_id: str) -> dict[str, Any] | None:
    """Where the agent's config came from: ``version``, ``config_source``, ``config_changed_by``,
    ``config_changed_at``, ``file_sha`` and ``definition_error`` (a refused file edit, or ``None``)."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(
            agents.c.version, agents.c.config_source, agents.c.config_changed_by, agents.c.config_changed_at,
            agents.c.file_sha, agents.c.definition_error).where(agents.c.id == agent_id))).mappings().first()
    return dict(row) if row is not None else None


async def set_enabled(db: Database, agent_id: str, enabled: bool, now: float) -> None:
    """Enable or disable the agent (a disabled one is not started)."""
    async with db.transaction() as conn:
        changed = await conn.execute(agents.update().where(agents.c.id == agent_id, agents.c.enabled.isnot(enabled))
                                     .values(enabled=enabled, updated_at=now))
        if changed.rowcount:
            await facts.insert(conn, [facts.lifecycle_fact(agent_id, enabled, now)])


async def ids(db: Database) -> list[str]:
    """Every registered agent's id."""
    async with db.connect() as conn:
        return [r[0] for r in await conn.execute(sa.select(agents.c.id))]


@dataclass(frozen=True)
class AgentOverview:
    """What a list of agents shows of each: stored state, posts sent, next post, skipped posts."""

    state: dict[str, Any]
    posts: int
    next_post_due: float | None  # the pending ``post.due`` event, if any
    skips: SkipCount | None
    definition_error: dict[str, Any] | None = None  # a refused edit of the agent's file


def _unindexed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``column``'s value in a form no index answers (``column || ''``).

    SQLite keeps no statistics here (no ``ANALYZE``) and, without them, answers an agent's
    lookups below from the status (or type) index: every done action, every pending event,
    scanned again for each agent of the page, quadratic in the number of agents. Hiding
    those columns from the planner leaves it the agent's own index.
    """
    return column.concat(sa.literal_column("''"))


_POSTS = (sa.select(sa.func.count()).select_from(actions)
          .where(actions.c.agent_id == agents.c.id, fixed_in(actions.c.kind, SENT_POST_KINDS),
                 _unindexed(actions.c.status) == "done")
          .scalar_subquery())  # ix_actions_agent_kind
_NEXT_POST = (sa.select(sa.func.min(events.c.due_at + sa.literal_column("0")))  # + 0: not the due-order index
              .where(events.c.agent_id == agents.c.id, _unindexed(events.c.type) == "post.due",
                     events.c.status == "pending")
              .scalar_subquery())  # ix_events_agent_status


@functools.lru_cache(maxsize=64)
def _overviews(n: int) -> sa.Select[Any]:
    """For ``n`` ids: built once per page size (building it cost more than running it) and with
    a parameter per id, so SQLAlchemy's compiled form is reused as is (an expanding IN is
    rendered again on every call)."""
    return sa.select(agents.c.id, agents.c.state, _POSTS.label("posts"), _NEXT_POST.label("next_due"),
                     agents.c.definition_error).where(
        agents.c.id.in_([sa.bindparam(f"id_{i}") for i in range(n)]))


async def overviews(db: Database, agent_ids: list[str]) -> dict[str, AgentOverview]:
    """The overview of each registered agent among ``agent_ids``, in one query whatever their number."""
    async with db.connect() as conn:
        found = await conn.execute(_overviews(len(agent_ids)), {f"id_{i}": a for i, a in enumerate(agent_ids)})
        rows = {r.id: r for r in found.fetchall()}
        skips = await recent_post_skips(conn, {r.id: _seq((r.state or {}).get("post_seq")) for r in rows.values()})
    return {agent_id: AgentOverview(state=dict(r.state or {}), posts=int(r.posts or 0),
                                    next_post_due=r.next_due, skips=skips.get(agent_id),
                                    definition_error=r.definition_error)
            for agent_id, r in rows.items()}


class OverviewReader:
    """:func:`overviews` for the agents list, answered on a ``sqlite3`` connection of its own
    when the database is a SQLite file: the same statements, compiled once per page size,
    without a pooled connection and SQLAlchemy's execution around each (they cost several
    times the page's SQL). Read-only; every statement is its own read, as through the pool.
    Elsewhere (PostgreSQL, an in-memory database) it is :func:`overviews`.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._path = _sqlite_file(db)
        self._conn: sqlite3.Connection | None = None
        self._compiled: dict[int, tuple[str, list[str], dict[str, Any]]] = {}

    async def read(self, agent_ids: list[str]) -> dict[str, AgentOverview]:
        if self._path is None or not agent_ids:
            return await overviews(self.db, agent_ids)
        try:
            return self._read(self.connection(), agent_ids)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StorageError(f"database error: {exc}") from exc
            return await overviews(self.db, agent_ids)  # waits for the lock without blocking the loop

    def _read(self, conn: sqlite3.Connection, agent_ids: list[str]) -> dict[str, AgentOverview]:
        sql, names, fixed = self._statement(len(agent_ids), lambda: _overviews(len(agent_ids)))
        values = {**fixed, **{f"id_{i}": a for i, a in enumerate(agent_ids)}}
        rows = {}
        for agent_id, state, posts, next_due, error in conn.execute(sql, [values[n] for n in names]):
            rows[agent_id] = (_json(state) or {}, posts, next_due, _json(error))
        keys = recent_post_keys({a: _seq(r[0].get("post_seq")) for a, r in rows.items()})
        skips = {}
        if keys:
            sql, names, fixed = self._statement(-1, lambda: recent_posts_statement("sqlite"))
            values = {**fixed, "keys": json.dumps(list(keys))}
            found = conn.execute(sql, [values[n] for n in names])
            skips = count_post_skips(keys, ((key, _json(result)) for key, result in found))
        return {agent_id: AgentOverview(state=state, posts=int(posts or 0), next_post_due=next_due,
                                        skips=skips.get(agent_id), definition_error=error)
                for agent_id, (state, posts, next_due, error) in rows.items()}

    def _statement(self, size: int, build: Callable[[], sa.Select[Any]]) -> tuple[str, list[str], dict[str, Any]]:
        """The SQL text, its parameters' names in order and the constant ones' values."""
        known = self._compiled.get(size)
        if known is None:
            compiled = build().compile(dialect=self.db.engine.dialect)
            constants = {name: bind.value for name, bind in compiled.binds.items() if bind.value is not None}
            known = self._compiled[size] = (str(compiled), list(compiled.positiontup or []), constants)
        return known

    def connection(self) -> sqlite3.Connection:
        """The read connection, opened on first use."""
        if self._conn is None:
            assert self._path is not None
            self._conn = sqlite3.connect(self._path, timeout=0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA query_only = ON")
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _sqlite_file(db: Database) -> str | None:
    """The path of ``db``'s SQLite file; ``None`` for PostgreSQL, in-memory and URI databases."""
    if db.dialect != "sqlite":
        return None
    url = make_url(db.url)
    if not url.database or url.database == ":memory:" or str(url.query.get("uri", "")).lower() == "true":
        return None
    return url.database


def _json(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _seq(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def relationships_of(db: Database, agent_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The agent's relationships, most familiar first (every column but ``agent_id``)."""
    async with db.connect() as conn:
        rows = (await conn.execute(
            sa.select(relationships).where(relationships.c.agent_id == agent_id)
            .order_by(relationships.c.familiarity.desc()).limit(limit))).mappings().fetchall()
    return [{k: v for k, v in r.items() if k != "agent_id"} for r in rows]
