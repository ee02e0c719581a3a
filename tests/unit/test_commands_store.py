"""The commands table: one claim wins, the desired state is written with it, a dead claimer's
command is claimed again once stale, a refused config is put back under its old version."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from puppet_engine.storage.repos import commands
from puppet_engine.storage.tables import agents


async def _agent(database, agent_id: str = "coby") -> None:
    async with database.transaction() as conn:
        await conn.execute(agents.insert().values(id=agent_id, config={"name": "Coby"}, state={}, enabled=True,
                                                  version=1, created_at=0, updated_at=0))


async def _row(database, agent_id: str = "coby"):
    async with database.connect() as conn:
        return (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).one()


async def test_one_claim_wins_and_writes_the_desired_state(database) -> None:
    await _agent(database)
    command_id = await commands.create(database, "stop", "coby", {}, "ops", now=10.0)
    [pending] = await commands.pending(database)
    assert pending["id"] == command_id and pending["state"] == "pending"
    assert await commands.claim(database, pending, "node-a", now=11.0)
    assert not await commands.claim(database, pending, "node-b", now=11.5)  # applied once
    assert (await _row(database)).enabled is False
    await commands.complete(database, command_id, "node-b", now=12.0)  # not b's: nothing changes
    assert (await commands.get(database, command_id))["state"] == "applying"
    await commands.complete(database, command_id, "node-a", now=12.0)
    done = await commands.get(database, command_id)
    assert done is not None and done["state"] == "applied" and done["applied_by"] == "node-a"
    assert done["applied_at"] == 12.0 and await commands.pending(database) == []


async def test_a_command_left_applying_by_a_dead_process_is_claimed_again_once_stale(database) -> None:
    await _agent(database)
    command_id = await commands.create(database, "start", "coby", {}, None, now=0.0)
    [command] = await commands.pending(database)
    assert await commands.claim(database, command, "dead-node", now=1.0)
    assert not await commands.claim(database, command, "node-b", now=1.0 + commands.STALE_SECONDS - 1)
    assert await commands.claim(database, command, "node-b", now=2.0 + commands.STALE_SECONDS)
    assert (await commands.get(database, command_id))["applied_by"] == "node-b"


async def test_a_failed_config_puts_the_previous_one_back_under_its_version(database) -> None:
    await _agent(database)
    command_id = await commands.create(database, "config", "coby", {"name": "Coby II"}, "admin", now=0.0)
    [command] = await commands.pending(database)
    assert await commands.claim(database, command, "node-a", now=1.0)
    row = await _row(database)
    assert row.config == {"name": "Coby II"} and row.version == 2
    await commands.fail(database, command_id, "AuthError: keys refused", now=2.0, restore=("coby", {"name": "Coby"}))
    row = await _row(database)
    assert row.config == {"name": "Coby"} and row.version == 1
    failed = await commands.get(database, command_id)
    assert failed is not None and failed["state"] == "failed" and failed["reason"] == "AuthError: keys refused"


async def test_an_unknown_kind_is_refused(database) -> None:
    with pytest.raises(ValueError, match="command kind 'pause' is not one of start, stop"):
        await commands.create(database, "pause", "coby", {}, None, now=0.0)
