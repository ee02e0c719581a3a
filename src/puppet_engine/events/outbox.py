"""The outbox: every side effect is recorded before it is sent, and sent at most once.

An action moves ``pending → sending → done``; one recorded by an event's commit, to be
sent right after it, starts out ``sending`` (the commit claimed it), and the event's sent
actions are marked ``done`` together, in one commit after its last send. A retryable
failure (rate limit, outage) puts it back to ``pending`` with a ``not_before``; a
permanent one marks it ``failed``. An outage (``ServiceUnavailable``, ``RateLimited``)
is waited out for up to ``max_wait`` (6 hours), trying again at least every
``outage_retry_cap`` seconds (a rate limit's own reset is always respected), so sending
resumes soon after the service is back; other retryable failures give up after
``max_attempts``. An action found in ``sending`` at start-up was interrupted
mid-flight: it is *reconciled* (the executor looks for the post among the account's
recent tweets, or the trade's signature on chain) before anything is sent again; one
that cannot be reconciled because the service is down becomes ``unknown`` and is
reconciled again later, never sent blindly.

An action held for a person's approval is recorded ``awaiting_review`` (by the same commit)
and nothing here sends it: approval makes it ``pending`` (then it goes the usual way, so a
crash after the approval neither loses nor doubles it), rejection ``rejected``; an item
nobody decided in time is ``expired`` or, when its rules say ``send``, ``pending``
(:meth:`Outbox.expire_reviews`, on the engine's clock).

Sending a ``pending`` action starts with a conditional ``pending → sending`` update, so
when several processes share the database exactly one of them sends each action; each
only looks at the actions of the agents it owns."""

from __future__ import annotations

import asyncio
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from puppet_engine.clock import Clock
from puppet_engine.errors import DuplicateContent, ProviderError, RateLimited, ServiceUnavailable
from puppet_engine.events import records
from puppet_engine.events.event import Action
from puppet_engine.storage import Database
from puppet_engine.storage.group_commit import GroupCommitter
from puppet_engine.storage.repos import outbox as outbox_rows
from puppet_engine.storage.repos import review as review_rows

log = structlog.get_logger("puppet_engine.outbox")


@dataclass
class ActionOutcome:
    external_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class ActionExecutor(ABC):
    """Performs one kind of side effect for one agent."""

    #: How long an outage is waited out before the action fails (None: the outbox's ``max_wait``).
    outage_wait: float | None = None

    @abstractmethod
    async def execute(self, action: Action) -> ActionOutcome:
        """Do it. Raise ``ProviderError`` subclasses; retryable ones are retried later."""

    async def reconcile(self, action: Action) -> ActionOutcome | None:
        """Was an interrupted ``action`` actually done? ``None`` means no: safe to send again."""
        return None


ExecutorLookup = Callable[[Action], ActionExecutor | None]
DoneHook = Callable[[Action, ActionOutcome], Awaitable[None]]
DoneBatchHook = Callable[[list[tuple[Action, ActionOutcome]]], Awaitable[None]]


class Outbox:
    def __init__(self, db: Database, clock: Clock, executor_for: ExecutorLookup, *,
                 max_attempts: int = 8, backoff_base: float = 5.0, backoff_cap: float = 900.0,
                 max_wait: float = 6 * 3600.0, outage_retry_cap: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.clock = clock
        self.executor_for = executor_for
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.outage_retry_cap = outage_retry_cap
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rng = rng or random.Random()
        self.done_hooks: list[DoneHook] = []
        self.done_batch_hooks: list[DoneBatchHook] = []
        self.failed_hooks: list[Callable[[Action, str], Awaitable[None]]] = []
        # Set by the EventEngine: the agents this process may act for, and the lock that
        # lease changes take, so an agent is never handed over in the middle of a send.
        self.owned_agents: Callable[[], Iterable[str] | None] = lambda: None
        self.claim_lock = asyncio.Lock()
        self.sending: set[str] = set()  # agents with a send under way from run_due
        self.next_due = 0.0  # earliest not_before of a pending action known here (0: look now)
        self._skipped: set[str] = set()  # due, but their agent was busy
        self._done = GroupCommitter(db, outbox_rows.mark_actions_done)  # sends finishing together: one commit
        self._polled = -math.inf

    def on_done(self, hook: DoneHook) -> None:
        self.done_hooks.append(hook)

    def on_done_batch(self, hook: DoneBatchHook) -> None:
        """``hook([(action, outcome), …])`` once for the actions marked done together (an
        event's sends): what is written about each can share a transaction."""
        self.done_batch_hooks.append(hook)

    async def dispatch(self, action_ids: list[int]) -> None:
        """Send these pending actions now, in order."""
        if not action_ids:
            return
        async with self.db.connect() as conn:
            pending = await records.load_actions(conn, ids=action_ids, status="pending")
        await self.dispatch_actions(pending)

    async def dispatch_actions(self, recorded: list[Action]) -> None:
        """Send actions just recorded (their agent is busy with the event that recorded them);
        those recorded as ``sending`` are already claimed.

        They are marked done together, in one commit after the last send: until then a sent
        one stays ``sending``, which after a crash is reconciled, never sent again."""
        sent: list[_Sent] = []
        try:
            for action in recorded:
                await self._send(action, claimed=action.status == "sending", sent=sent)
        finally:
            await self._settle_done(sent)

    async def send_skipped(self, agent_id: str | None) -> None:
        """Still inside an agent's event: send its due actions that :meth:`run_due` skipped because
        the agent was busy (an agent with a backlog of events is always busy: they would starve)."""
        if agent_id is None or agent_id not in self._skipped:
            return
        self._skipped.discard(agent_id)
        async with self.db.connect() as conn:
            due = await records.load_actions(conn, status="pending", due_before=self.clock.now(), limit=20,
                                           agent_ids=[agent_id])
        for action in due:
            await self._send(action)

    @property
    def done_commits(self) -> int:
        """Transactions that marked sent actions done (for tests and benchmarks)."""
        return self._done.groups

    def should_look(self, poll_interval: float) -> bool:
        """Whether :meth:`run_due` may find something (a known back-off is over, or time to poll)."""
        return self.next_due <= self.clock.now() or time.monotonic() - self._polled >= poll_interval

    def agent_free(self, agent_id: str) -> None:
        """An agent's event finished: actions skipped because it was busy can go now."""
        if agent_id in self._skipped:
            self._skipped.discard(agent_id)
            self.next_due = 0.0

    async def run_due(self, limit: int = 50, skip_agents: set[str] | None = None) -> int:
        """Send pending actions whose back-off has elapsed; returns how many were tried."""
        self._polled = time.monotonic()
        owned = self.owned_agents()
        async with self.db.connect() as conn:
            expired, expires = await review_rows.expiring(conn, self.clock.now(), owned)
            due, later = await records.due_actions(conn, self.clock.now(), limit, owned)
            unsure = await records.load_actions(conn, status="unknown", limit=limit, agent_ids=owned)
        self.next_due = min([later if later is not None else math.inf, *(a.not_before for a in unsure),
                             expires if expires is not None else math.inf])
        if expired:
            await self._expire(expired)
            if any(then == "send" for _, then in expired):  # pending now: sent in this pass
                async with self.db.connect() as conn:
                    due, _ = await records.due_actions(conn, self.clock.now(), limit, owned)
        for action in unsure:  # a reconcile that failed (the service was down): ask again
            if action.not_before <= self.clock.now() and not (skip_agents and action.agent_id in skip_agents):
                await self._reconcile(action)
        tried = 0
        for action in due:
            if skip_agents and action.agent_id in skip_agents:
                self._skipped.add(action.agent_id)
                continue
            async with self.claim_lock:  # ownership checked and the send registered at once
                owned = self.owned_agents()
                if owned is not None and action.agent_id not in owned:
                    continue
                self.sending.add(action.agent_id)
            try:
                await self._send(action)
            finally:
                self.sending.discard(action.agent_id)
            tried += 1
        return tried

    async def expire_reviews(self, agent_ids: Iterable[str] | None = None) -> float | None:
        """Items awaiting review whose ``expire_minutes`` are over (on the engine's clock): dropped
        (``expired``), or, for low-risk kinds set to ``send``, made ``pending`` so the next pass
        sends them through the usual claim. Returns when the next item expires.
        (:meth:`run_due` does this on every pass, reading in its own connection, and sends
        those made pending in the same pass.)"""
        async with self.db.connect() as conn:
            due, later = await review_rows.expiring(conn, self.clock.now(), agent_ids)
        await self._expire(due)
        return later

    async def _expire(self, due: list[tuple[int, str]]) -> None:
        if not due:
            return
        now = self.clock.now()
        async with self.db.transaction() as conn:
            for action_id, on_expire in due:
                send = on_expire == "send"
                await review_rows.decide(conn, action_id, state="expired", now=now, decided_by=None,
                                         action_status="pending" if send else "expired",
                                         decision="expired_sent" if send else "expired_dropped")
        for action_id, on_expire in due:
            log.info("review_expired", action_id=action_id, then=on_expire)

    async def recover(self, agent_ids: set[str] | None = None) -> int:
        """Reconcile actions interrupted in ``sending`` (after a crash) before sending anything.

        When the service cannot be asked (it is down), the action becomes ``unknown`` and
        :meth:`run_due` asks again later: it is neither lost nor sent blindly.
        """
        async with self.db.connect() as conn:
            stuck = await records.load_actions(conn, status="sending", limit=10_000, agent_ids=agent_ids)
        count = 0
        for action in stuck:
            count += await self._reconcile(action)
        return count

    async def _reconcile(self, action: Action) -> bool:
        executor = self.executor_for(action)
        if executor is None:
            return False
        now = self.clock.now()
        try:
            found = await executor.reconcile(action)
        except ProviderError as exc:
            retry_at = now + min(self.outage_retry_cap, exc.retry_after if isinstance(exc, RateLimited)
                                 else self.outage_retry_cap)
            log.warning("reconcile_failed", action_key=action.key, error=str(exc), retry_in=round(retry_at - now, 2))
            async with self.db.transaction() as conn:
                await outbox_rows.update_action(conn, action.id, now, status="unknown", error=str(exc), not_before=retry_at)
            self.next_due = min(self.next_due, retry_at)
            return True
        if found is not None:
            await self._mark_done(action, found, reconciled=True)
        else:
            async with self.db.transaction() as conn:
                await outbox_rows.update_action(conn, action.id, now, status="pending", not_before=now)
            self.next_due = 0.0
            log.info("action_requeued_after_crash", action_key=action.key)
        return True

    async def _send(self, action: Action, *, claimed: bool = False, sent: list[_Sent] | None = None) -> None:
        """Send one action; with ``sent``, its done mark is left there for the caller to commit."""
        executor = self.executor_for(action)
        now = self.clock.now()
        if executor is None:
            async with self.db.transaction() as conn:
                await outbox_rows.update_action(conn, action.id, now, status="failed",
                                          error=f"no executor for {action.kind!r} of agent {action.agent_id!r}")
            return
        if not claimed:
            async with self.db.transaction() as conn:
                claimed = await outbox_rows.claim_action(conn, action.id, now)
            if not claimed:
                return  # another process (or an earlier pass) is sending it
            action.attempts += 1
        try:
            outcome = await executor.execute(action)
        except DuplicateContent as exc:
            # X refused it as a duplicate: it was (most likely) sent before. Confirm, never resend.
            found = await _safe_reconcile(executor, action)
            if found is not None:
                await self._mark_done(action, found, reconciled=True, sent=sent)
            else:
                await self._mark_failed(action, str(exc))
        except ProviderError as exc:
            outage = isinstance(exc, (ServiceUnavailable, RateLimited))
            limit = self.max_wait if executor.outage_wait is None else executor.outage_wait
            waiting = outage and self.clock.now() - action.created_at < limit
            if exc.retryable and (action.attempts < self.max_attempts or waiting):
                delay = exc.retry_after if isinstance(exc, RateLimited) else self._backoff(action.attempts)
                if isinstance(exc, ServiceUnavailable):
                    delay = min(delay, self.outage_retry_cap)
                async with self.db.transaction() as conn:
                    await outbox_rows.update_action(conn, action.id, self.clock.now(), status="pending",
                                              not_before=self.clock.now() + delay, error=str(exc))
                self.next_due = min(self.next_due, self.clock.now() + delay)
                log.warning("action_retry_later", action_key=action.key, error=str(exc), delay=round(delay, 2))
            else:
                await self._mark_failed(action, str(exc))
        except Exception as exc:  # a bug in an executor must not lose the action silently
            await self._mark_failed(action, f"{exc.__class__.__name__}: {exc}")
            log.exception("action_crashed", action_key=action.key)
        else:
            await self._mark_done(action, outcome, sent=sent)

    def _backoff(self, attempts: int) -> float:
        base = min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1))
        return base * (0.5 + self.rng.random() / 2)

    async def _mark_done(self, action: Action, outcome: ActionOutcome, *, reconciled: bool = False,
                         sent: list[_Sent] | None = None) -> None:
        done = _Sent(action, outcome, reconciled, self.clock.now())
        if sent is not None:
            sent.append(done)
        else:
            await self._settle_done([done])

    async def _settle_done(self, sent: list[_Sent]) -> None:
        """Mark sent actions done (one commit for all, shared with other tasks'), then run the hooks."""
        if not sent:
            return
        results = [{**s.outcome.result, "reconciled": True} if s.reconciled else dict(s.outcome.result) for s in sent]
        await asyncio.gather(*(self._done.write((s.action.id, s.at, s.outcome.external_id, result))
                               for s, result in zip(sent, results, strict=True)))
        for done, result in zip(sent, results, strict=True):
            action, outcome = done.action, done.outcome
            action.status, action.external_id, action.result = "done", outcome.external_id, result
            log.info("action_done", agent_id=action.agent_id, kind=action.kind, action_key=action.key,
                     external_id=outcome.external_id, reconciled=done.reconciled)
            for hook in self.done_hooks:
                try:
                    await hook(action, outcome)
                except Exception:
                    log.exception("action_done_hook_failed", action_key=action.key)
        batch = [(done.action, done.outcome) for done in sent]
        for batch_hook in self.done_batch_hooks:
            try:
                await batch_hook(batch)
            except Exception:
                log.exception("action_done_hook_failed", action_keys=[action.key for action, _ in batch])

    async def _mark_failed(self, action: Action, error: str) -> None:
        async with self.db.transaction() as conn:
            await outbox_rows.update_action(conn, action.id, self.clock.now(), status="failed", error=error)
        log.warning("action_failed", agent_id=action.agent_id, kind=action.kind, action_key=action.key, error=error)
        for hook in self.failed_hooks:
            try:
                await hook(action, error)
            except Exception:
                log.exception("action_failed_hook_failed", action_key=action.key)


@dataclass(slots=True)
class _Sent:
    """An action sent (or found sent), waiting for its done mark."""

    action: Action
    outcome: ActionOutcome
    reconciled: bool
    at: float


async def _safe_reconcile(executor: ActionExecutor, action: Action) -> ActionOutcome | None:
    try:
        return await executor.reconcile(action)
    except ProviderError:
        return None
