"""The recordings table: what each event read and was answered, for ``puppet-engine replay``.

A row is one record of one event: ``event`` (the event, the agent's state when it started
and what the handler decided), ``llm`` (a request and its answer) or ``read`` (mentions, a
thread, prices, balances). Bodies are JSON, compressed with zstd, and sealed with AES-256-GCM
when ``MEMORY_ENCRYPTION_KEY`` is set (:class:`RecordCodec`): prompts and mentions are
people's words, as sensitive as memories.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.errors import ConfigError
from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.tables import actions, agents, recordings

_PLAIN, _SEALED = b"z", b"e"  # first byte of a body: zstd only, or zstd then AES-GCM
_NONCE = 12
_INFO = b"puppet-engine recordings v1"  # its own key: a memory's ciphertext never opens as a recording


class RecordCodec:
    """JSON ⇄ compressed (and, with a secret, encrypted) bytes. The key never appears in reprs."""

    def __init__(self, secret: str | None = None, *, level: int = 3) -> None:
        self._aead: AESGCM | None = None
        if secret:
            if len(secret) < 16:
                raise ConfigError("MEMORY_ENCRYPTION_KEY: use at least 16 characters (a long random string)")
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
            self._aead = AESGCM(key)
        self._compress = zstandard.ZstdCompressor(level=level)
        self._decompress = zstandard.ZstdDecompressor()

    def __repr__(self) -> str:
        return f"RecordCodec(encrypted={self._aead is not None})"

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    def encode(self, body: dict[str, Any], *, agent_id: str, kind: str) -> bytes:
        packed = self._compress.compress(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))
        if self._aead is None:
            return _PLAIN + packed
        nonce = os.urandom(_NONCE)
        return _SEALED + nonce + self._aead.encrypt(nonce, packed, _aad(agent_id, kind))

    def decode(self, blob: bytes, *, agent_id: str, kind: str) -> dict[str, Any]:
        head, rest = blob[:1], blob[1:]
        if head == _SEALED:
            if self._aead is None:
                raise ConfigError(f"recordings of agent {agent_id!r} are encrypted: set MEMORY_ENCRYPTION_KEY "
                                  "to the key they were recorded with")
            try:
                rest = self._aead.decrypt(rest[:_NONCE], rest[_NONCE:], _aad(agent_id, kind))
            except InvalidTag:
                raise ConfigError(f"a recording of agent {agent_id!r} does not open with this "
                                  "MEMORY_ENCRYPTION_KEY (another key, or the row was altered)") from None
        elif head != _PLAIN:
            raise ConfigError(f"a recording of agent {agent_id!r} has an unknown format")
        data = orjson.loads(self._decompress.decompress(rest))
        if not isinstance(data, dict):
            raise ConfigError(f"a recording of agent {agent_id!r} is not a JSON object")
        return data


def _aad(agent_id: str, kind: str) -> bytes:
    return f"{agent_id}\x00{kind}".encode()


@dataclass(frozen=True)
class Recording:
    """One decoded row."""

    id: int
    agent_id: str
    event_id: int | None
    kind: str
    seq: int
    created_at: float
    body: dict[str, Any]


_INSERT = Prepared(recordings.insert())


async def insert_batches(conn: AsyncConnection, batches: list[list[dict[str, Any]]]) -> list[None]:
    """Write several events' rows in one statement (a group commit's writer)."""
    rows = [row for batch in batches for row in batch]
    if rows:
        await _INSERT.run(conn, rows)
    return [None] * len(batches)


async def load(db: Database, codec: RecordCodec, agent_id: str, since: float, until: float) -> list[Recording]:
    """The agent's records of events that started in ``[since, until]``, in order."""
    q = (sa.select(recordings).where(recordings.c.agent_id == agent_id, recordings.c.created_at >= since,
                                     recordings.c.created_at <= until)
         .order_by(recordings.c.created_at, recordings.c.id))
    async with db.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [Recording(r.id, r.agent_id, r.event_id, r.kind, r.seq, r.created_at,
                      codec.decode(r.body, agent_id=r.agent_id, kind=r.kind)) for r in rows]


async def first_event_at(db: Database, agent_id: str) -> float | None:
    """When the agent's oldest kept recording starts (``None``: nothing recorded)."""
    q = sa.select(sa.func.min(recordings.c.created_at)).where(recordings.c.agent_id == agent_id)
    async with db.connect() as conn:
        value = (await conn.execute(q)).scalar()
    return None if value is None else float(value)


async def prune_recordings(db: Database, before: float) -> int:
    """Delete every recording older than ``before`` (epoch seconds); returns how many went.

    The retention job calls it with ``now - HISTORY_RETENTION_DAYS``; a replay can then start
    no earlier than the oldest event kept.
    """
    async with db.transaction() as conn:
        result = await conn.execute(sa.delete(recordings).where(recordings.c.created_at < before))
    return int(result.rowcount or 0)


async def size_by_agent(db: Database, agent_ids: Iterable[str] | None = None) -> dict[str, tuple[int, int]]:
    """Agent → (rows, bytes of stored bodies): what recording costs."""
    q = sa.select(recordings.c.agent_id, sa.func.count(), sa.func.sum(sa.func.length(recordings.c.body))) \
        .group_by(recordings.c.agent_id)
    if agent_ids is not None:
        q = q.where(recordings.c.agent_id.in_(list(agent_ids)))
    async with db.connect() as conn:
        return {a: (int(n), int(b or 0)) for a, n, b in (await conn.execute(q)).all()}


async def posts_before(db: Database, agent_id: str, since: float, until: float) -> list[dict[str, Any]]:
    """The agent's outbox rows created in ``[since, until)`` (key, kind, payload, status, time, event):
    what a replay starting at ``until`` must know it had already posted (repeat checks read it)."""
    q = (sa.select(actions.c.key, actions.c.kind, actions.c.payload, actions.c.status, actions.c.created_at,
                   actions.c.event_id)
         .where(actions.c.agent_id == agent_id, actions.c.created_at >= since, actions.c.created_at < until)
         .order_by(actions.c.created_at, actions.c.id))
    async with db.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(q)).all()]


async def seed_actions(db: Database, agent_id: str, rows: list[dict[str, Any]]) -> None:
    """Put outbox rows (as :func:`posts_before` returns them, or a peer's posts with
    ``external_id``) into a replay's scratch database, as they stood: repeat checks and peers'
    timelines read them there. Keys already present are left alone."""
    async with db.transaction() as conn:
        known = set((await conn.execute(sa.select(actions.c.key).where(
            actions.c.key.in_([r["key"] for r in rows])))).scalars()) if rows else set()
        fresh = [{"key": r["key"], "agent_id": r.get("agent_id", agent_id), "kind": r["kind"],
                  "payload": r["payload"], "status": r.get("status", "done"), "external_id": r.get("external_id"),
                  "attempts": 1, "not_before": 0.0, "created_at": r["created_at"],
                  "updated_at": r.get("updated_at", r["created_at"])} for r in rows if r["key"] not in known]
        if fresh:
            await conn.execute(actions.insert(), fresh)


async def stored_config(db: Database, agent_id: str) -> dict[str, Any] | None:
    """The agent's current config as registered (secrets masked), or ``None``: what an exact
    replay runs with when no other file is given."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(agents.c.config).where(agents.c.id == agent_id))).first()
    return None if row is None else dict(row.config)


async def drop_actions(db: Database, key_prefix: str) -> None:
    """Remove a replay's seeded rows whose key starts with ``key_prefix`` (peers' posts of an
    earlier event: each interaction round sees exactly what it saw then)."""
    async with db.transaction() as conn:
        await conn.execute(sa.delete(actions).where(actions.c.key.startswith(key_prefix, autoescape=True)))
