"""The event engine: ordering per agent, retries then failure, outbox, graceful shutdown."""

from __future__ import annotations

import asyncio
import random

import sqlalchemy as sa

from puppet_engine.errors import ProviderError, RateLimited
from puppet_engine.events import (
    Action,
    ActionExecutor,
    ActionOutcome,
    ActionSpec,
    Event,
    EventEngine,
    HandlerResult,
    Outbox,
    RetryPolicy,
)
from puppet_engine.storage.tables import actions, events


class Recorder(ActionExecutor):
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail_next = 0

    async def execute(self, action: Action) -> ActionOutcome:
        if self.fail_next:
            self.fail_next -= 1
            raise RateLimited(service="x", retry_after=30)
        self.sent.append(action.key)
        return ActionOutcome(external_id=f"id-{len(self.sent)}")


def make_engine(database, clock, executor=None, concurrency=4):
    executor = executor or Recorder()
    outbox = Outbox(database, clock, lambda a: executor, rng=random.Random(1))
    engine = EventEngine(database, clock, outbox, concurrency=concurrency, rng=random.Random(1),
                         retry=RetryPolicy(base_seconds=10, cap_seconds=60), max_attempts=3)
    return engine, executor


async def test_events_of_one_agent_run_in_order_and_agents_run_concurrently(database, virtual_clock) -> None:
    engine, _ = make_engine(database, virtual_clock)
    log: list[tuple[str, int, str]] = []

    async def handler(ev: Event) -> None:
        log.append((ev.agent_id, ev.payload["n"], "start"))
        await asyncio.sleep(0.01)
        log.append((ev.agent_id, ev.payload["n"], "end"))

    engine.register("work", handler)
    for n in range(3):
        for agent in ("a", "b"):
            await engine.schedule(Event("work", agent, {"n": n}, due_at=virtual_clock.now()))
    assert await engine.run_until_idle() == 6
    for agent in ("a", "b"):
        mine = [(n, what) for a, n, what in log if a == agent]
        assert mine == [(0, "start"), (0, "end"), (1, "start"), (1, "end"), (2, "start"), (2, "end")]
    # both agents were in flight at the same time at least once
    first_end = next(i for i, entry in enumerate(log) if entry[2] == "end")
    assert {entry[0] for entry in log[:first_end]} == {"a", "b"}


async def test_failing_handler_retries_with_backoff_then_fails_without_stopping(database, virtual_clock) -> None:
    engine, _ = make_engine(database, virtual_clock)
    calls = 0

    async def broken(ev: Event) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    async def fine(ev: Event) -> HandlerResult:
        return HandlerResult(result={"ok": True})

    engine.register("broken", broken)
    engine.register("fine", fine)
    await engine.schedule(Event("broken", "a", due_at=virtual_clock.now()))
    await engine.schedule(Event("fine", "b", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    for _ in range(5):
        virtual_clock.advance(120)
        await engine.run_until_idle()
    assert calls == 3
    async with database.connect() as conn:
        rows = {r.type: r for r in (await conn.execute(sa.select(events))).fetchall()}
    assert rows["broken"].status == "failed" and rows["broken"].attempts == 3
    assert "boom" in rows["broken"].error
    assert rows["fine"].status == "done" and rows["fine"].result == {"ok": True}


async def test_same_key_is_scheduled_once(database, virtual_clock) -> None:
    engine, _ = make_engine(database, virtual_clock)
    first = await engine.schedule(Event("x", "a", key="post:a:1", due_at=virtual_clock.now()))
    again = await engine.schedule(Event("x", "a", key="post:a:1", due_at=virtual_clock.now()))
    assert first is not None and again is None


async def test_actions_commit_with_the_event_and_are_sent_once(database, virtual_clock) -> None:
    engine, executor = make_engine(database, virtual_clock)

    async def post(ev: Event) -> HandlerResult:
        return HandlerResult(actions=[ActionSpec(key=f"post:{ev.agent_id}:1", agent_id=ev.agent_id, kind="post",
                                                 payload={"text": "hello"})])

    engine.register("post", post)
    await engine.schedule(Event("post", "a", key="e1", due_at=virtual_clock.now()))
    await engine.schedule(Event("post", "a", key="e2", due_at=virtual_clock.now()))  # same action key
    await engine.run_until_idle()
    assert executor.sent == ["post:a:1"]
    async with database.connect() as conn:
        row = (await conn.execute(sa.select(actions))).one()
    assert row.status == "done" and row.external_id == "id-1"


async def test_rate_limited_action_waits_and_is_retried(database, virtual_clock) -> None:
    engine, executor = make_engine(database, virtual_clock)
    executor.fail_next = 1

    async def post(ev: Event) -> HandlerResult:
        return HandlerResult(actions=[ActionSpec(key="k", agent_id="a", kind="post")])

    engine.register("post", post)
    await engine.schedule(Event("post", "a", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    assert executor.sent == []
    virtual_clock.advance(10)
    await engine.run_until_idle()
    assert executor.sent == []  # the 30 s window is not over
    virtual_clock.advance(25)
    await engine.run_until_idle()
    assert executor.sent == ["k"]


async def test_stop_lets_in_flight_work_finish(database) -> None:
    from puppet_engine.clock import WallClock

    engine, _ = make_engine(database, WallClock())
    finished = asyncio.Event()
    started = asyncio.Event()

    async def slow(ev: Event) -> HandlerResult:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()
        return HandlerResult(result={"slow": True})

    engine.register("slow", slow)
    await engine.schedule(Event("slow", "a"))
    runner = asyncio.create_task(engine.run())
    await asyncio.wait_for(started.wait(), 5)
    await engine.stop()
    await asyncio.wait_for(runner, 5)
    assert finished.is_set()
    async with database.connect() as conn:
        assert (await conn.execute(sa.select(events.c.status))).scalar() == "done"


async def test_crash_mid_send_is_reconciled_not_resent(database, virtual_clock) -> None:
    class Remembers(Recorder):
        async def reconcile(self, action: Action) -> ActionOutcome | None:
            return ActionOutcome(external_id="found-it") if action.key == "was-sent" else None

    executor = Remembers()
    engine, _ = make_engine(database, virtual_clock, executor)
    now = virtual_clock.now()
    async with database.transaction() as conn:
        for key in ("was-sent", "never-sent"):
            await conn.execute(actions.insert().values(key=key, agent_id="a", kind="post", payload={},
                                                      status="sending", attempts=1, not_before=0,
                                                      created_at=now, updated_at=now))
    await engine.recover()
    await engine.run_until_idle()
    assert executor.sent == ["never-sent"]
    async with database.connect() as conn:
        rows = {r.key: r for r in (await conn.execute(sa.select(actions))).fetchall()}
    assert rows["was-sent"].status == "done" and rows["was-sent"].external_id == "found-it"
    assert rows["never-sent"].status == "done"


async def test_a_busy_agents_due_retry_is_sent_during_its_backlog_not_after(database) -> None:
    """An agent with a backlog is busy at every outbox pass: its due retries go out between its events."""
    from puppet_engine.clock import WallClock

    clock = WallClock()
    engine, executor = make_engine(database, clock)
    handled: list[int] = []
    sent_after: list[int] = []
    record = executor.execute

    async def execute(action: Action) -> ActionOutcome:
        sent_after.append(len(handled))
        return await record(action)

    executor.execute = execute  # type: ignore[method-assign]

    async def chain(ev: Event) -> HandlerResult:
        n = ev.payload["n"]
        handled.append(n)
        await asyncio.sleep(0.002)
        follow = [Event("chain", "a", {"n": n + 1}, key=f"chain:{n + 1}")] if n < 40 else []
        return HandlerResult(follow_ups=follow)

    engine.register("chain", chain)
    now = clock.now()
    async with database.transaction() as conn:
        await conn.execute(actions.insert().values(key="retry", agent_id="a", kind="post", payload={},
                                                  status="pending", attempts=1, not_before=now - 1,
                                                  created_at=now, updated_at=now))
    await engine.schedule(Event("chain", "a", {"n": 1}, key="chain:1"))
    runner = asyncio.create_task(engine.run())
    for _ in range(500):
        if len(handled) >= 40:
            break
        await asyncio.sleep(0.01)
    await engine.stop()
    await asyncio.wait_for(runner, 5)
    assert executor.sent == ["retry"]
    assert sent_after and sent_after[0] < 5, sent_after  # not starved until the chain ended


async def test_an_action_is_recorded_claimed_and_sent_without_a_second_claim(database, virtual_clock) -> None:
    """The event's commit records its actions as ``sending``: the send needs no claim of its own,
    and a crash before the send leaves them to reconciliation, never to a blind resend."""
    states: list[tuple[str, int]] = []

    class Looks(Recorder):
        async def execute(self, action: Action) -> ActionOutcome:
            async with database.connect() as conn:
                row = (await conn.execute(sa.select(actions.c.status, actions.c.attempts)
                                          .where(actions.c.key == action.key))).one()
            states.append((row.status, row.attempts))
            return await super().execute(action)

    executor = Looks()
    engine, _ = make_engine(database, virtual_clock, executor)

    async def post(ev: Event) -> HandlerResult:
        return HandlerResult(actions=[ActionSpec(key="post:a:1", agent_id="a", kind="post", payload={})])

    engine.register("post", post)
    await engine.schedule(Event("post", "a", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    assert states == [("sending", 1)] and executor.sent == ["post:a:1"]
    async with database.connect() as conn:
        row = (await conn.execute(sa.select(actions))).one()
    assert (row.status, row.attempts, row.external_id) == ("done", 1, "id-1")


async def test_an_events_actions_are_marked_done_in_one_commit_after_the_last_send(database, virtual_clock) -> None:
    """Sent actions stay ``sending`` until the event's last send (reconciled after a crash, never
    resent); then one commit marks them all done. A refused one fails without holding up the rest."""
    seen: list[tuple[str, str]] = []

    class Refuses(Recorder):
        async def execute(self, action: Action) -> ActionOutcome:
            async with database.connect() as conn:
                rows = (await conn.execute(sa.select(actions.c.key, actions.c.status).order_by(actions.c.id))).all()
            seen.extend((r.key, r.status) for r in rows)
            if action.key == "like:2":
                raise ProviderError("not allowed", service="x", status=403)
            return await super().execute(action)

    executor = Refuses()
    engine, _ = make_engine(database, virtual_clock, executor, concurrency=1)
    each: list[str] = []
    batches: list[list[str]] = []

    async def one(action: Action, _outcome: ActionOutcome) -> None:
        each.append(action.key)

    async def together(done: list[tuple[Action, ActionOutcome]]) -> None:
        batches.append([action.key for action, _ in done])

    engine.outbox.on_done(one)
    engine.outbox.on_done_batch(together)

    async def interact(ev: Event) -> HandlerResult:
        return HandlerResult(actions=[ActionSpec(key=f"like:{i}", agent_id="a", kind="like", payload={})
                                      for i in (1, 2, 3)])

    engine.register("interact", interact)
    await engine.schedule(Event("interact", "a", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    assert executor.sent == ["like:1", "like:3"]
    assert seen[-3:] == [("like:1", "sending"), ("like:2", "failed"), ("like:3", "sending")]
    assert engine.outbox.done_commits == 1
    assert each == ["like:1", "like:3"] and batches == [["like:1", "like:3"]]  # hooks once each, batch hooks once
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(actions.c.key, actions.c.status, actions.c.external_id)
                                   .order_by(actions.c.id))).all()
    assert [tuple(r) for r in rows] == [("like:1", "done", "id-1"), ("like:2", "failed", None),
                                        ("like:3", "done", "id-2")]


async def test_the_start_up_heap_is_out_of_full_collections_while_running_and_back_after_stop(database) -> None:
    import gc

    from puppet_engine.clock import WallClock

    engine, _ = make_engine(database, WallClock())
    seen: list[int] = []

    async def look(ev: Event) -> None:
        seen.append(gc.get_freeze_count())  # what a full collection while events run leaves alone

    engine.register("look", look)
    await engine.schedule(Event("look", "a"))
    assert gc.get_freeze_count() == 0
    runner = asyncio.create_task(engine.run())
    while not seen:
        await asyncio.sleep(0.01)
    assert seen[0] > 1000  # the heap as start-up left it: modules, the engine, its connections
    await engine.stop()
    await asyncio.wait_for(runner, 5)
    assert gc.get_freeze_count() == 0  # collectable again: nothing kept alive past the engine


async def test_the_collectors_young_passes_run_between_events_and_its_thresholds_come_back(database) -> None:
    import gc

    from puppet_engine.clock import WallClock
    from puppet_engine.events.engine import YOUNG_WHILE_RUNNING

    before = gc.get_threshold()
    engine, _ = make_engine(database, WallClock())
    seen: list[tuple[tuple[int, ...], int]] = []
    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    async def garbage(ev: Event) -> None:
        seen.append((gc.get_threshold(), len(collected)))
        for _ in range(2 * before[0]):  # cycles: more than a young pass's worth, left to the collector
            cycle: list[object] = []
            cycle.append(cycle)

    engine.register("garbage", garbage)
    for n in range(3):
        await engine.schedule(Event("garbage", "a", {"n": n}, key=f"g{n}"))
    runner = asyncio.create_task(engine.run())
    gc.callbacks.append(count)
    try:
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        gc.callbacks.remove(count)
    await engine.stop()
    await asyncio.wait_for(runner, 5)
    assert seen[0][0] == (YOUNG_WHILE_RUNNING, *before[1:])  # no young pass inside an event
    assert seen[1][1] >= 1 and seen[2][1] > seen[1][1]  # each event's garbage collected once it finished
    assert gc.get_threshold() == before


async def test_an_event_sleeping_on_the_virtual_clock_is_woken_instead_of_waited_for_forever(database,
                                                                                            virtual_clock) -> None:
    # An event that backs off on the engine's virtual clock (the X client's retry after a dropped
    # connection) waits for the clock to move, and the clock moved only once events were done.
    engine, _ = make_engine(database, virtual_clock)
    started = virtual_clock.now()
    woke: list[float] = []

    async def backs_off(ev: Event) -> None:
        await virtual_clock.sleep(30)
        woke.append(virtual_clock.now())

    engine.register("backs_off", backs_off)
    engine.register("quick", lambda ev: asyncio.sleep(0))
    await engine.schedule(Event("backs_off", "a", {}, due_at=started))
    await engine.schedule(Event("quick", "b", {}, due_at=started))
    assert await asyncio.wait_for(engine.run_until_idle(), 10) == 2
    assert woke == [started + 30]  # moved to the sleeper's wake-up, not further


async def test_the_virtual_clock_moves_only_when_every_event_in_flight_sleeps_on_it(database, virtual_clock) -> None:
    # Something else asleep on the clock (a background loop) never moves it, nor does an event
    # that is asleep while another still works: only all of them asleep do, to their earliest.
    engine, _ = make_engine(database, virtual_clock)
    started = virtual_clock.now()
    background = asyncio.ensure_future(virtual_clock.sleep(5))  # not an event: not waited on
    release = asyncio.Event()
    woke: dict[str, float] = {}

    async def backs_off(ev: Event) -> None:
        await virtual_clock.sleep(ev.payload["seconds"])
        woke[ev.agent_id] = virtual_clock.now()

    async def works(ev: Event) -> None:
        await release.wait()  # e.g. a slow upstream call, on wall time
        woke[ev.agent_id] = virtual_clock.now()

    engine.register("backs_off", backs_off)
    engine.register("works", works)
    await engine.schedule(Event("backs_off", "a", {"seconds": 30}, due_at=started))
    await engine.schedule(Event("backs_off", "b", {"seconds": 90}, due_at=started))
    await engine.schedule(Event("works", "c", {}, due_at=started))
    running = asyncio.ensure_future(engine.run_until_idle())
    await asyncio.sleep(0.3)
    assert virtual_clock.now() == started and not background.done()  # c works: nothing moves
    release.set()
    assert await asyncio.wait_for(running, 10) == 3
    assert woke == {"c": started, "a": started + 30, "b": started + 90}  # each woken at its own time
    assert background.done()  # it was due on the way


async def test_a_handlers_own_writes_commit_with_its_outcome_once(database, virtual_clock) -> None:
    """``HandlerResult.writes`` run in the outcome's transaction: an attempt whose outcome is
    not committed leaves nothing behind, so the retried event counts an interaction once."""
    from puppet_engine.memory.relationships import RelationshipStore

    engine, _ = make_engine(database, virtual_clock)
    rels = RelationshipStore(database, virtual_clock)
    attempts = 0

    async def lost_once(_conn: object) -> None:
        if attempts == 1:
            raise RuntimeError("the outcome's commit fails (a full disk)")

    async def meet(ev: Event) -> HandlerResult:
        nonlocal attempts
        attempts += 1
        met = rels.interactions_write("ann", ["ben", "cat", "ben"], 0.1)
        assert met is not None and await rels.get("ann", "ben") is None  # nothing written until the outcome
        return HandlerResult(result={"met": 2}, writes=[met, lost_once])

    engine.register("meet", meet)
    await engine.schedule(Event("meet", "ann", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    virtual_clock.advance(120)
    await engine.run_until_idle()
    assert attempts == 2
    met = {r.other: r for r in await rels.list_for("ann")}
    assert sorted(met) == ["ben", "cat"] and met["ben"].interactions == 1 and met["cat"].interactions == 1
    assert rels.interactions_write("ann", []) is None
    async with database.connect() as conn:
        status = (await conn.execute(sa.select(events.c.status))).scalar_one()
    assert status == "done"
