"""Agent leases: fair shares, rebalancing when a process joins, takeover when one dies."""

from __future__ import annotations

from puppet_engine.clock import VirtualClock
from puppet_engine.storage.leases import LeaseManager

AGENTS = [f"agent-{i}" for i in range(6)]


async def register(database, ids: list[str]) -> None:
    from puppet_engine.storage.tables import agents

    async with database.transaction() as conn:
        for agent_id in ids:
            await conn.execute(agents.insert().values(id=agent_id, config={}, state={}, enabled=True, version=1,
                                                      created_at=0, updated_at=0))


async def test_processes_share_agents_and_take_over_a_dead_one(database) -> None:
    clock = VirtualClock()
    a = LeaseManager(database, clock, "proc-a", ttl=30)
    b = LeaseManager(database, clock, "proc-b", ttl=30)

    from puppet_engine.storage.tables import agents

    async with database.transaction() as conn:
        for agent_id in AGENTS:
            await conn.execute(agents.insert().values(id=agent_id, config={}, state={}, enabled=True, version=1,
                                                      created_at=0, updated_at=0))

    gained = await a.balance(AGENTS)
    assert gained.gained == set(AGENTS)

    await b.balance(AGENTS)  # b joins: everything is still leased to a
    assert b.owned == set()
    clock.advance(5)
    lost = await a.balance(AGENTS)  # a sees two processes and hands back its surplus
    assert len(a.owned) == 3 and len(lost.lost) == 3
    await b.balance(AGENTS)
    assert len(b.owned) == 3 and a.owned.isdisjoint(b.owned)

    # a dies: it stops renewing. Before the lease expires, b must not steal.
    clock.advance(20)
    await b.balance(AGENTS)
    assert len(b.owned) == 3
    clock.advance(15)  # a's leases (renewed at t=5, ttl 30) have now expired
    before = set(b.owned)
    changes = await b.balance(AGENTS)
    assert b.owned == set(AGENTS)
    assert changes.gained == set(AGENTS) - before == a.owned


async def test_release_all_frees_agents_at_once(database) -> None:
    clock = VirtualClock()
    from puppet_engine.storage.tables import agents

    async with database.transaction() as conn:
        for agent_id in AGENTS[:2]:
            await conn.execute(agents.insert().values(id=agent_id, config={}, state={}, enabled=True, version=1,
                                                      created_at=0, updated_at=0))
    a = LeaseManager(database, clock, "proc-a", ttl=30)
    b = LeaseManager(database, clock, "proc-b", ttl=30)
    await a.balance(AGENTS[:2])
    await a.release_all()
    await b.balance(AGENTS[:2])
    assert b.owned == set(AGENTS[:2])


async def test_an_agent_with_work_in_flight_is_drained_before_it_is_handed_back(database) -> None:
    clock = VirtualClock()
    await register(database, AGENTS)
    a = LeaseManager(database, clock, "proc-a", ttl=30)
    b = LeaseManager(database, clock, "proc-b", ttl=30)
    await a.balance(AGENTS)
    await b.balance(AGENTS)  # b is alive now; a holds everything
    surplus_if_idle = sorted(AGENTS)[3:]
    busy = {surplus_if_idle[0]}
    changes = await a.balance(AGENTS, busy=busy)
    assert changes.lost == set(surplus_if_idle)  # a stops starting work for all of its surplus at once
    assert a.draining == busy  # …but keeps the busy one leased until its work is done
    await b.balance(AGENTS)
    assert b.owned == set(surplus_if_idle) - busy
    await a.balance(AGENTS)  # the work finished
    assert a.draining == set()
    await b.balance(AGENTS)
    assert b.owned == set(surplus_if_idle) and a.owned.isdisjoint(b.owned)


async def test_a_draining_agent_is_taken_back_when_the_share_grows(database) -> None:
    clock = VirtualClock()
    await register(database, AGENTS)
    a = LeaseManager(database, clock, "proc-a", ttl=30)
    b = LeaseManager(database, clock, "proc-b", ttl=30)
    await a.balance(AGENTS)
    await b.balance(AGENTS)
    await a.balance(AGENTS, busy=set(AGENTS))  # everything busy: the surplus drains
    assert len(a.owned) == 3 and len(a.draining) == 3
    clock.advance(31)  # b died before taking anything
    changes = await a.balance(AGENTS, busy=set(AGENTS))
    assert a.owned == set(AGENTS) and a.draining == set() and changes.gained == set(sorted(AGENTS)[3:])
