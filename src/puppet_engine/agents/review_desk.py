"""The review desk: a person's decisions on actions held by the review gate.

:meth:`ReviewDesk.approve` makes a waiting action ``pending`` (with edited text, validated
again by the agent's own rules and X's limits), in one transaction with the item's state and
the audit row; the outbox then sends it through its usual claim, exactly once.
:meth:`ReviewDesk.reject` makes it ``rejected`` and, for a tweet, leaves the agent a
``feedback`` memory ("not to say again", with the reason) that later prompts list.
Every decision names the API key that made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import structlog

from puppet_engine.agents.runtime import AgentRuntime, recent_post_texts
from puppet_engine.clock import Clock
from puppet_engine.content.validation import validate_post
from puppet_engine.errors import ValidationFailed
from puppet_engine.memory.base import FEEDBACK, Memory
from puppet_engine.observability.metrics import Metrics, get_metrics
from puppet_engine.persona import AgentConfig
from puppet_engine.storage import Database
from puppet_engine.storage.repos import review as review_rows

log = structlog.get_logger("puppet_engine.review")

FEEDBACK_IN_PROMPT = 5  # rejected drafts a prompt lists
_SPACES = re.compile(r"\s+")


class ReviewConflict(Exception):
    """The item is not waiting any more (decided by someone else, or expired)."""


class ReviewEditRefused(Exception):
    """Edited text that the agent's rules or X's limits refuse; ``reasons`` says why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def text_of(payload: dict[str, Any]) -> str:
    """The words of a tweet action (a thread's parts joined by blank lines)."""
    if payload.get("parts"):
        return "\n\n".join(str(p) for p in payload["parts"])
    return str(payload.get("text") or "")


def reason_label(reason: str | None) -> str:
    """A rejection reason as counted (metrics label): lower case, spaces collapsed, 60 characters."""
    return _SPACES.sub(" ", (reason or "").strip().lower())[:60] or "unspecified"


@dataclass
class ReviewDesk:
    """Approve and reject review items (the API's ``/review`` endpoints)."""

    db: Database
    clock: Clock
    metrics: Metrics | None = None

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = get_metrics()

    async def approve(self, action_id: int, *, decided_by: str | None, config: AgentConfig,
                      text: str | None = None) -> dict[str, Any]:
        """Approve a waiting item (with ``text`` replacing the words); the item as it is now.

        Raises ``LookupError`` (no such item), :class:`ReviewConflict`, :class:`ReviewEditRefused`."""
        item = await self._waiting(action_id)
        payload = None
        if text is not None:
            payload = await self._edited(item, text, config)
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if not await review_rows.decide(conn, action_id, state="approved", action_status="pending", now=now,
                                            decision="approved", decided_by=decided_by, payload=payload):
                raise ReviewConflict(f"review item {action_id} is no longer waiting")
        self._count(item["agent_id"], "approved")
        log.info("review_approved", action_id=action_id, agent_id=item["agent_id"], edited=payload is not None,
                 decided_by=decided_by)
        return await self._reread(action_id)

    async def reject(self, action_id: int, *, decided_by: str | None, reason: str,
                     agent: AgentRuntime | None = None) -> dict[str, Any]:
        """Reject a waiting item; a rejected tweet becomes the agent's ``feedback`` memory."""
        item = await self._waiting(action_id)
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if not await review_rows.decide(conn, action_id, state="rejected", action_status="rejected", now=now,
                                            decision="rejected", decided_by=decided_by, reason=reason):
                raise ReviewConflict(f"review item {action_id} is no longer waiting")
        self._count(item["agent_id"], "rejected")
        if self.metrics is not None:
            self.metrics.review_rejections.labels(agent=item["agent_id"], reason=reason_label(reason)).inc()
        words = text_of(item["payload"])
        if agent is not None and agent.memory is not None and words and item["category"] != "trades":
            await agent.memory.add_memory(agent.id, Memory(
                agent_id=agent.id, kind=FEEDBACK, content=f"Not to say again: {words!r} (rejected: {reason})",
                importance=0.8, created_at=now,
                metadata={"action_key": item["key"], "category": item["category"], "reason": reason}))
        log.info("review_rejected", action_id=action_id, agent_id=item["agent_id"], decided_by=decided_by)
        return await self._reread(action_id)

    async def _waiting(self, action_id: int) -> dict[str, Any]:
        item = await review_rows.item(self.db, action_id)
        if item is None:
            raise LookupError(action_id)
        if item["state"] != "waiting":
            raise ReviewConflict(f"review item {action_id} is already {item['state']}")
        return item

    async def _edited(self, item: dict[str, Any], text: str, config: AgentConfig) -> dict[str, Any]:
        """The payload with the edited words, checked like an operator's own post (never cut)."""
        kind = item["kind"]
        if kind not in ("post", "thread", "reply", "quote"):
            raise ReviewEditRefused([f"a {kind} has no text to edit"])
        payload = dict(item["payload"])
        original = text_of(payload)
        recent = [t for t in await recent_post_texts(self.db, item["agent_id"]) if t != original.replace("\n\n", " ")
                  and t != original]
        replying_to = str((item["context"].get("mention") or {}).get("author_username") or "") or None
        try:
            validated = validate_post(text, config, recent, kind="thread" if kind == "thread" else kind,
                                      replying_to=replying_to, fit=False)
        except ValidationFailed as exc:
            raise ReviewEditRefused(list(exc.reasons)) from None
        if kind == "thread":
            payload["parts"] = list(validated.parts)
        elif validated.is_thread:
            raise ReviewEditRefused([f"too long for one {kind}: it would need {len(validated.parts)} posts"])
        else:
            payload["text"] = validated.parts[0]
        return payload

    async def _reread(self, action_id: int) -> dict[str, Any]:
        item = await review_rows.item(self.db, action_id)
        assert item is not None
        return item

    def _count(self, agent_id: str, decision: str) -> None:
        if self.metrics is not None:
            self.metrics.review_decisions.labels(agent=agent_id, decision=decision).inc()


async def feedback_lines(agent: AgentRuntime, limit: int = FEEDBACK_IN_PROMPT) -> list[str]:
    """The agent's latest ``feedback`` memories (rejected drafts and why), newest first."""
    if agent.memory is None:
        return []
    return [m.content for m in await agent.memory.recent_memories(agent.id, kind=FEEDBACK, limit=limit)]
