"""Agent leases: fair shares, rebalancing when a process joins, takeover when one dies."""

from __future__ import annotations

from puppet_engine.clock import VirtualClock
from puppet_engine.storage.leases import LeaseManager

AGENTS = [f"agent-{i}" for i in range(6)]


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
