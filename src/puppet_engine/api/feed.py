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
from typing import Any

import structlog

from puppet_engine.storage import Database
from puppet_engine.storage.repos import activity

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


def _review_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {"type": "review", "agent_id": m["agent_id"], "at": m["created_at"], "status": "awaiting_review",
            "kind": m["category"], "external_id": str(m["action_id"]),
            "text": f"{m['category']} awaiting review: " + "; ".join(m["reasons"] or [])}


def _decision_item(row: Any) -> dict[str, Any]:
    m = row._mapping
    who = f" by {m['decided_by']}" if m["decided_by"] else ""
    why = f": {m['reason']}" if m["reason"] else ""
    return {"type": "review", "agent_id": m["agent_id"], "at": m["decided_at"], "status": m["decision"],
            "kind": "decision", "external_id": str(m["action_id"]),
            "text": f"review item {m['action_id']} {m['decision']}{' (edited)' if m['edited'] else ''}{who}{why}"}


# How each source's rows read in the feed, and the column whose change makes a row new again.
_ITEMS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "action": _action_item, "event": _event_item, "mention": _mention_item, "trade": _trade_item,
    "review": _review_item, "decision": _decision_item}
_STATUS_COLS: dict[str, str | None] = {"action": "status", "event": "status", "mention": None, "trade": "status",
                                       "review": None, "decision": None}


def _row_key(source: str, row: Any) -> str:
    m = row._mapping
    ident = f"{m['agent_id']}:{m['tweet_id']}" if source == "mention" else str(
        m["action_id"] if source == "review" else m["id"])
    status_col = _STATUS_COLS[source]
    status = m[status_col] if status_col else ""
    return f"{source}:{ident}:{status}"


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
        items = [{"id": _row_key(source, row), **_ITEMS[source](row)}
                 for source, row in await activity.latest(self.db, limit, agent_id)]
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
        self._marks.update(await activity.high_marks(self.db))
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
        lookback = {name: mark - LOOKBACK_SECONDS for name, mark in self._marks.items()}
        for source, row in await activity.since(self.db, lookback):
            key = _row_key(source, row)
            at = float(row._mapping[activity.time_column(source)])
            if key in self._seen:
                continue
            self._seen[key] = at
            self._marks[source] = max(self._marks.get(source, 0.0), at)
            found.append({"id": key, **_ITEMS[source](row)})
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
