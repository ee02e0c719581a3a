"""The live activity feed: posts, replies, mentions, trades and errors as they happen.

One poller per API process reads new rows of ``actions``, ``events``, ``mentions``
and ``trades`` every ``interval`` seconds while at least one client listens, and fans
them out to every subscriber. Reading the database (rather than hooking the
in-process engine) means a dashboard sees the work of every engine process that
shares the database. Rows are found by their update time with a short look-back,
so a row committed slightly out of order is still seen, and each (row, status) is
delivered once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog

from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, events, mentions, trades

log = structlog.get_logger("puppet_engine.api.feed")

LOOKBACK_SECONDS = 2.0
_ACTION_TYPES = {"thread": "post", "quote": "post"}


def _text(payload: dict[str, Any]) -> str:
    if payload.get("parts"):
        return " / ".join(str(p) for p in payload["parts"])
    return str(payload.get("text") or "")


def _action_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    payload = m["payload"] or {}
    failed = m["status"] != "done"
    kind = _ACTION_TYPES.get(m["kind"], m["kind"])
    text = _text(payload)
    if failed:
        text = f"{m['kind']} {m['status']}: {m['error'] or 'no detail'}"
    return {"type": "error" if failed else kind, "agent_id": m["agent_id"], "at": m["updated_at"], "text": text,
            "status": m["status"], "external_id": m["external_id"], "kind": m["kind"],
            "reply_to": payload.get("reply_to")}


def _event_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {"type": "error", "agent_id": m["agent_id"], "at": m["finished_at"], "status": "failed",
            "kind": m["type"], "text": f"{m['type']} failed after {m['attempts']} attempt(s): {m['error'] or ''}"}


def _mention_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {"type": "mention", "agent_id": m["agent_id"], "at": m["received_at"], "status": m["decision"],
            "text": m["text"], "author": m["author_username"], "external_id": m["tweet_id"]}


def _trade_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    what = f"{m['amount_sol']:g} SOL" if m["amount_sol"] is not None else "trade"
    text = f"{what}: {m['input_mint'][:6]}… → {m['output_mint'][:6]}… {m['status']}"
    if m["rule"]:
        text += f" ({m['rule']})"
    elif m["error"]:
        text += f": {m['error']}"
    return {"type": "trade", "agent_id": m["agent_id"], "at": m["updated_at"], "status": m["status"],
            "text": text, "external_id": m["signature"], "amount_sol": m["amount_sol"]}


@dataclass(frozen=True)
class Source:
    name: str
    table: sa.Table
    time_col: str
    where: Callable[[], Any]
    item: Callable[[Any], dict[str, Any]]
    status_col: str | None = "status"


SOURCES = (
    Source("action", actions, "updated_at",
           lambda: sa.and_(actions.c.status.in_(("done", "failed", "unknown")), actions.c.kind != "trade"),
           _action_item),
    Source("event", events, "finished_at", lambda: events.c.status == "failed", _event_item),
    Source("mention", mentions, "received_at", lambda: sa.true(), _mention_item, status_col=None),
    Source("trade", trades, "updated_at", lambda: sa.true(), _trade_item),
)


def _row_key(source: Source, row: Any) -> str:
    m = row._mapping
    ident = f"{m['agent_id']}:{m['tweet_id']}" if source.name == "mention" else str(m["id"])
    status = m[source.status_col] if source.status_col else ""
    return f"{source.name}:{ident}:{status}"


class FeedHub:
    """Polls the database while someone listens and hands new items to every subscriber."""

    def __init__(self, db: Database, *, interval: float = 0.5, queue_size: int = 500) -> None:
        self.db = db
        self.interval = interval
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._marks: dict[str, float] = {}
        self._seen: dict[str, float] = {}

    async def recent(self, limit: int, agent_id: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` items, oldest first (what a new listener sees first)."""
        items: list[dict[str, Any]] = []
        async with self.db.connect() as conn:
            for source in SOURCES:
                col = source.table.c[source.time_col]
                q = sa.select(source.table).where(source.where(), col.is_not(None))
                if agent_id:
                    q = q.where(source.table.c.agent_id == agent_id)
                for row in (await conn.execute(q.order_by(col.desc()).limit(limit))).fetchall():
                    items.append({"id": _row_key(source, row), **source.item(row)})
        items.sort(key=lambda i: i["at"] or 0.0)
        return items[-limit:] if limit else []

    async def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of new items; ``None`` on it means the feed is closing."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.queue_size)
        if self.closed:
            queue.put_nowait(None)
            return queue
        if self._task is None or self._task.done():
            await self._init_marks()
            self._task = asyncio.create_task(self._run(), name="api-feed-poller")
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every open stream now (server shutdown); later subscribers are refused."""
        self.closed = True
        for queue in list(self._subscribers):
            self._offer(queue, None)

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _init_marks(self) -> None:
        self._seen.clear()
        async with self.db.connect() as conn:
            for source in SOURCES:
                latest = (await conn.execute(sa.select(sa.func.max(source.table.c[source.time_col])))).scalar()
                self._marks[source.name] = float(latest) if latest is not None else 0.0
        await self.poll()  # what is already there counts as seen: only later rows are live

    async def _run(self) -> None:
        while self._subscribers:
            try:
                for item in await self.poll():
                    self._publish(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly busy; the feed keeps going
                log.warning("feed_poll_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)
        self._task = None

    async def poll(self) -> list[dict[str, Any]]:
        """New items since the last poll, oldest first."""
        found: list[dict[str, Any]] = []
        async with self.db.connect() as conn:
            for source in SOURCES:
                col = source.table.c[source.time_col]
                mark = self._marks.get(source.name, 0.0)
                q = (sa.select(source.table).where(source.where(), col >= mark - LOOKBACK_SECONDS)
                     .order_by(col).limit(500))
                for row in (await conn.execute(q)).fetchall():
                    key = _row_key(source, row)
                    at = float(row._mapping[source.time_col])
                    if key in self._seen:
                        continue
                    self._seen[key] = at
                    self._marks[source.name] = max(self._marks.get(source.name, 0.0), at)
                    found.append({"id": key, **source.item(row)})
        marks = self._marks
        self._seen = {k: t for k, t in self._seen.items()
                      if t >= marks.get(k.partition(":")[0], 0.0) - 2 * LOOKBACK_SECONDS}
        found.sort(key=lambda i: i["at"] or 0.0)
        return found

    def _publish(self, item: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            self._offer(queue, item)

    @staticmethod
    def _offer(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
        if queue.full():  # a stalled client loses its oldest items, never blocks the others
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(item)
