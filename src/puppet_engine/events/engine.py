"""The event engine: claims due events, routes them by type, records every outcome.

Concurrency is bounded across agents and events of one agent run in order (at most
one in flight per agent). A failing handler is retried with exponential back-off and
jitter, then lands in ``failed``; the engine keeps going. A handler's result, the
side effects it asks for (outbox actions), its follow-up events and agent state
changes commit in one transaction; the actions are then sent through the outbox.
Shutdown stops claiming and lets in-flight work finish.

Idle costs nothing: there is one loop and one timer for all agents, never a task per
agent. The loop goes to the database only when something may be due — the earliest
due time it knows of (from its last claim and from every event this process writes)
has come, an agent finished while its next event waited, or ``poll_interval`` passed
(which is how work written by other processes is noticed).
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.clock import Clock, VirtualClock
from puppet_engine.errors import ProviderError, RateLimited
from puppet_engine.events import records
from puppet_engine.events.event import Action, Event, HandlerResult
from puppet_engine.events.outbox import Outbox
from puppet_engine.observability import upstream
from puppet_engine.storage import Database
from puppet_engine.storage.group_commit import GroupCommitter
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos.facts import current_cause

log = structlog.get_logger("puppet_engine.events")

Handler = Callable[[Event], Awaitable[HandlerResult | None]]
Observer = Callable[[Event, str, float], None]
StateHook = Callable[[str, dict[str, Any]], None]


YOUNG_WHILE_RUNNING = 5_000  # first GC generation's threshold while events run (CPython's: 700)
VIRTUAL_STALL_SECONDS = 0.05  # on a virtual clock: how often to look whether every event in flight is asleep on it
_threshold: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (saved, set) by settle_heap


def settle_heap() -> None:
    """Start-up is over: leave what is alive now out of the collector's full scans, and move
    its young passes out of events.

    Agents, personas, clients, compiled statements live as long as the engine; at 10,000
    agents a full collection walking them all pauses the loop for tens of milliseconds,
    which lands on the events in flight as their p99. Frozen (``gc.freeze``), a full
    collection walks only what was made since. The collector's own passes (every 700 net
    allocations, and older generations every tenth of those) would still land in the
    middle of events, a few milliseconds each for the older ones: while events run, they
    are left to :func:`collect_between_events` when nothing is in flight, and the collector
    runs by itself only after :data:`YOUNG_WHILE_RUNNING` (an engine never idle). :func:`release_heap`
    gives all this back.
    """
    global _threshold
    gc.freeze()
    saved = gc.get_threshold()
    if saved[0] and _threshold is None:
        _threshold = (saved, (max(YOUNG_WHILE_RUNNING, saved[0]), *saved[1:]))
        gc.set_threshold(*_threshold[1])


def release_heap() -> None:
    """The engine stopped: what :func:`settle_heap` froze is collectable again (an engine
    started and stopped in a long-lived process, as in tests, leaves no cycles behind), and
    the collector's thresholds are back (unless something changed them meanwhile)."""
    global _threshold
    gc.unfreeze()
    if _threshold is not None:
        saved, set_here = _threshold
        _threshold = None
        if gc.get_threshold() == set_here:
            gc.set_threshold(*saved)


def collect_between_events() -> None:
    """No event is in flight: run the collections that are due by the thresholds
    :func:`settle_heap` found (the oldest generation due, as the collector would), so that
    they pause no event."""
    if _threshold is None or not gc.isenabled():
        return
    thresholds, counts = _threshold[0], gc.get_count()
    if counts[0] < thresholds[0]:
        return
    generation = next((g for g in (2, 1) if counts[g] > thresholds[g]), 0)  # the collector's own rule
    gc.collect(generation)


@dataclass
class RetryPolicy:
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempts: int, rng: random.Random) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return raw * (0.5 + rng.random() / 2)  # jitter: half to full


class EventEngine:
    def __init__(self, db: Database, clock: Clock, outbox: Outbox, *, concurrency: int = 16,
                 owner: str | None = None, retry: RetryPolicy | None = None,
                 max_attempts: int = 5, poll_interval: float = 1.0, rng: random.Random | None = None,
                 owned_agents: Callable[[], Iterable[str] | None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.outbox = outbox
        self.concurrency = concurrency
        self.owner = owner or f"engine-{uuid.uuid4().hex[:8]}"
        self.retry = retry or RetryPolicy()
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.rng = rng or random.Random()
        self.owned_agents = owned_agents or (lambda: None)
        self.handlers: dict[str, Handler] = {}
        self.observers: list[Observer] = []
        self.state_hooks: list[StateHook] = []
        self.claim_lock = asyncio.Lock()  # held while claiming; lease changes take it too
        outbox.claim_lock = self.claim_lock
        outbox.owned_agents = self.owned_agents
        self._busy: dict[str, asyncio.Task[None]] = {}  # agent id (or "event:<id>") → task
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._loop_done: asyncio.Event | None = None
        self._outcomes = GroupCommitter(db, self._record_outcomes)
        # What the engine knows about the queue without asking the database:
        self._look = True  # something may be due now
        self._next_due = math.inf  # earliest due time known (from claims and own writes)
        self._blocked = False  # due events wait for a busy agent
        self._backlog = False  # the last claim filled every free slot: more may be due
        self._polled = -math.inf  # monotonic time of the last claim
        self.processed = 0

    # -- registration and scheduling -------------------------------------------------

    def register(self, event_type: str, handler: Handler) -> None:
        self.handlers[event_type] = handler

    def observe(self, observer: Observer) -> None:
        """``observer(event, outcome, handler_seconds)`` after each event (metrics, feeds)."""
        self.observers.append(observer)

    def on_state(self, hook: StateHook) -> None:
        """``hook(agent_id, changes)`` once a handler's state changes are committed."""
        self.state_hooks.append(hook)

    async def schedule(self, event: Event) -> int | None:
        """Persist ``event``; returns its id, or ``None`` if its key was already scheduled."""
        [event_id] = await self.schedule_many([event])
        return event_id

    async def schedule_many(self, batch: list[Event]) -> list[int | None]:
        """Persist several events in one transaction (ids, ``None`` for keys already taken)."""
        if not batch:
            return []
        now = self.clock.now()
        async with self.db.transaction() as conn:
            ids = await records.insert_new_events(conn, batch, now, self.max_attempts)
        for event in batch:
            self._saw_due(event.due_at or now)
        self.notify()
        return ids

    def notify(self) -> None:
        """Look at the queue now (new work written elsewhere, an agent started, a lease gained)."""
        self._look = True
        self._wakeup.set()

    def _saw_due(self, due_at: float) -> None:
        self._next_due = min(self._next_due, due_at)
        if due_at <= self.clock.now():
            self._look = True

    # -- running ---------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def busy_agents(self) -> set[str]:
        """Agents with an event in flight in this process."""
        return {k for k in self._busy if not k.startswith("event:")}

    async def recover(self) -> None:
        """After a crash: events left running go back to pending; the outbox reconciles."""
        requeued = await event_rows.requeue_running(self.db, self._owned_list())
        reconciled = await self.outbox.recover(self._owned_set())
        self.notify()
        if requeued or reconciled:
            log.info("recovered", requeued_events=requeued, reconciled_actions=reconciled)

    def _room(self) -> int:
        """Free slots to claim for; behind a backlog, claims wait for a quarter of them (fewer claims)."""
        free = self.concurrency - len(self._busy)
        if self._backlog and self._busy and free < max(1, self.concurrency // 4):
            return 0
        return free

    def _should_look(self) -> bool:
        if self._look or self._next_due <= self.clock.now():
            return True
        return time.monotonic() - self._polled >= self.poll_interval

    async def tick(self, *, force: bool = False) -> int:
        """Start every due event there is room for; returns how many were started."""
        free = self._room()
        if free <= 0 or self._stopping or not (force or self._should_look()):
            return 0
        async with self.claim_lock:
            now = self.clock.now()
            self._look = False
            self._polled = time.monotonic()
            async with self.db.pinned_transaction() as conn:  # the owned-agents table lives on it
                found = await records.claim(conn, now, free, self.owner, busy=self.busy_agents(),
                                          agent_ids=self.owned_agents())
            self._next_due = found.next_due if found.next_due is not None else math.inf
            self._backlog = len(found.events) >= free
            self._blocked = found.blocked or self._backlog
            for event in found.events:
                slot = event.agent_id or f"event:{event.id}"
                self._busy[slot] = asyncio.create_task(self._process(event, slot), name=f"event:{event.id}")
        return len(found.events)

    async def run(self) -> None:
        """Process events until :meth:`stop`; sleeps until the next due moment or a notify."""
        self._loop_done = asyncio.Event()
        try:
            await self.recover()
            settle_heap()
            while not self._stopping:
                started = await self.tick()
                if self.outbox.should_look(self.poll_interval):
                    await self.outbox.run_due(skip_agents=set(self._busy))
                if started:
                    await asyncio.sleep(0)
                    continue
                await self._idle()
        finally:
            self._loop_done.set()
            release_heap()
        await self.drain()

    async def _idle(self) -> None:
        """Sleep until something may be due: a known due time, a notify, or the poll interval."""
        self._wakeup.clear()
        now = self.clock.now()
        delay = min(self.poll_interval, self.outbox.next_due - now)
        if self._room() > 0:  # else saturated: only a finished event can make room
            if self._look:
                return
            delay = min(delay, self._next_due - now)
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waiter = asyncio.ensure_future(self._wakeup.wait())
        done, pending = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        del done

    async def run_until_idle(self) -> int:
        """Process everything due now, including what it triggers; returns events processed."""
        before = self.processed
        force = True  # the first look always asks the database
        while True:
            started = await self.tick(force=force)
            force = False
            if self._busy:
                await self._wait_for_one_in_flight()
                continue
            await self.outbox.run_due()
            if started == 0 and (not self._look or self._stopping):
                break
        return self.processed - before

    async def _wait_for_one_in_flight(self) -> None:
        """Until an in-flight event finishes. On a virtual clock, events may all be asleep on it
        (a retry's back-off): nothing else would move it, so it moves to the earliest of their
        wake-ups, as time would pass on a wall clock. Asleep is checked whenever none has
        finished for a moment; an event still working elsewhere leaves the clock alone."""
        in_flight = list(self._busy.values())
        if not isinstance(self.clock, VirtualClock):
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            return
        while True:
            done, _ = await asyncio.wait(in_flight, timeout=VIRTUAL_STALL_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if done:
                return
            wake_up = self.clock.all_asleep(in_flight)
            if wake_up is not None:
                self.clock.set(wake_up)

    async def drain(self) -> None:
        """Wait for in-flight events to finish."""
        while self._busy:
            await asyncio.gather(*list(self._busy.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Stop claiming new work; in-flight events (and an outbox pass under way) finish."""
        self._stopping = True
        self.notify()
        if self._loop_done is not None:
            await self._loop_done.wait()
        await self.drain()

    # -- one event ------------------------------------------------------------------

    async def _process(self, event: Event, slot: str) -> None:
        started = time.perf_counter()
        outcome = "done"
        upstream.track()  # what this event's calls to X, the LLM and the chain wait (observers read it)
        try:
            structlog.contextvars.bind_contextvars(agent_id=event.agent_id, event_id=event.id)
            current_cause.set(event.id)  # what this task changes, this event caused (facts)
            handler = self.handlers.get(event.type)
            if handler is None:
                outcome = "failed"
                await self._finish(event, "failed", error=f"no handler for event type {event.type!r}")
                return
            try:
                hr = await handler(event) or HandlerResult()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcome = await self._handle_failure(event, exc)
                return
            try:
                recorded = await self._commit(event, hr)
            except Exception as exc:  # e.g. a result that cannot be stored: retried, then failed
                log.warning("event_commit_failed", event_type=event.type, error=str(exc))
                outcome = await self._handle_failure(event, exc)
                return
            await self.outbox.dispatch_actions(recorded)
            await self.outbox.send_skipped(event.agent_id)  # retries that waited for this agent
        except Exception:
            outcome = "failed"
            log.exception("event_processing_crashed", event_type=event.type)
        finally:
            structlog.contextvars.unbind_contextvars("agent_id", "event_id")
            self.processed += 1
            elapsed = time.perf_counter() - started
            for observer in self.observers:
                try:
                    observer(event, outcome, elapsed)
                except Exception:
                    log.exception("event_observer_failed")
            self._busy.pop(slot, None)
            self.outbox.agent_free(slot)
            if not self._busy:
                collect_between_events()
            if self._blocked:
                self.notify()  # its next event (or another's, waiting for a free slot) can go
            elif self._look:
                self._wakeup.set()

    async def _commit(self, event: Event, hr: HandlerResult) -> list[Action]:
        """Record the outcome; events finishing together share one transaction (group commit)."""
        recorded = await self._outcomes.write((event, hr))
        if hr.state and event.agent_id:
            for hook in self.state_hooks:
                hook(event.agent_id, hr.state)
        now = self.clock.now()
        for follow in hr.follow_ups:
            self._saw_due(follow.due_at or now)
        event.status, event.result = "done", hr.result
        return recorded

    async def _record_outcomes(self, conn: AsyncConnection, outcomes: list[tuple[Event, HandlerResult]]
                               ) -> list[list[Action]]:
        return await records.record_outcomes(conn, outcomes, self.clock.now(), self.max_attempts)

    async def _handle_failure(self, event: Event, exc: Exception) -> str:
        error = f"{exc.__class__.__name__}: {exc}"
        retryable = not isinstance(exc, ProviderError) or exc.retryable
        if retryable and event.attempts < event.max_attempts:
            delay = exc.retry_after if isinstance(exc, RateLimited) else self.retry.delay(event.attempts, self.rng)
            await self._finish(event, "pending", error=error, retry_at=self.clock.now() + delay)
            log.warning("event_retry", event_type=event.type, attempts=event.attempts, error=error,
                        retry_in=round(delay, 2))
            return "retry"
        await self._finish(event, "failed", error=error)
        log.error("event_failed", event_type=event.type, attempts=event.attempts, error=error)
        return "failed"

    async def _finish(self, event: Event, status: str, *, error: str | None = None,
                      retry_at: float | None = None) -> None:
        assert event.id is not None
        async with self.db.transaction() as conn:
            await event_rows.finish_event(conn, event.id, status, self.clock.now(), error=error, retry_at=retry_at)
        if retry_at is not None:
            self._saw_due(retry_at)
        event.status = "pending" if retry_at is not None else status  # type: ignore[assignment]
        event.error = error

    def _owned_list(self) -> list[str] | None:
        owned = self.owned_agents()
        return None if owned is None else list(owned)

    def _owned_set(self) -> set[str] | None:
        owned = self.owned_agents()
        return None if owned is None else set(owned)

