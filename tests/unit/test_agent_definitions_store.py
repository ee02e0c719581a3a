"""Where an agent's definition comes from: the file's hash decides at start-up, an edit is recorded
once with its commands, a refused version is recorded once and cleared by a valid one."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos import commands
from puppet_engine.storage.tables import agents

Definition = agent_rows.Definition


async def _row(database, agent_id: str = "coby"):
    async with database.connect() as conn:
        return (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).one()


async def test_an_unchanged_file_gives_way_to_the_stored_config_and_a_changed_one_is_recorded(database) -> None:
    first = await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby"}, "sha-1", "agents/coby.json"),
                                                     Definition("nova", {"name": "Nova"})], now=1.0)
    assert first == {"coby": agent_rows.Registered(True), "nova": agent_rows.Registered(True)}
    row = await _row(database)
    assert (row.file_sha, row.config_source, row.config_changed_by) == ("sha-1", "file", "file agents/coby.json")

    # Changed through the API (a config command's claim), then the engine starts again from the same file.
    command_id = await commands.create(database, "config", "coby", {"name": "Coby II"}, "ops-key", now=2.0)
    assert await commands.claim(database, (await commands.get(database, command_id)), "node-a", now=2.0)
    assert (await _row(database)).config_source == "api"
    again = await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby"}, "sha-1", "agents/coby.json")],
                                          now=3.0)
    assert again["coby"].config == {"name": "Coby II"}  # the database wins
    assert (await _row(database)).config == {"name": "Coby II"}

    # The file edited while the engine was down: the new definition.
    edited = await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby 3"}, "sha-2", "agents/coby.json")],
                                           now=4.0)
    assert edited["coby"].config is None
    row = await _row(database)
    assert (row.config, row.file_sha, row.config_source, row.version) == ({"name": "Coby 3"}, "sha-2", "file", 3)

    # Without a file (a test, simulate): the given config replaces the stored one, as before.
    await agent_rows.save_configs(database, [Definition("nova", {"name": "Nova II"})], now=5.0)
    assert (await _row(database, "nova")).config == {"name": "Nova II"}


async def test_an_edit_is_recorded_once_with_its_commands(database) -> None:
    await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby"}, "sha-1", "coby.json")], now=1.0)
    ids = await agent_rows.record_file_edit(database, "coby", "sha-2", [("config", {"name": "B"})], "file coby.json", 2.0)
    assert ids is not None and len(ids) == 1
    assert await agent_rows.record_file_edit(database, "coby", "sha-2", [("config", {"name": "B"})],
                                             "file coby.json", 2.1) is None  # a second node: nothing
    [command] = await commands.pending(database)
    assert command["id"] == ids[0] and command["kind"] == "config" and command["requested_by"] == "file coby.json"
    removed = await agent_rows.record_file_edit(database, "coby", None, [("stop", {})], "file coby.json (removed)", 3.0)
    assert removed is not None and (await _row(database)).file_sha is None
    assert await agent_rows.record_file_edit(database, "coby", None, [("stop", {})], "x", 3.1) is None


async def test_a_refused_version_is_recorded_once_and_cleared_by_a_valid_one(database) -> None:
    await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby"}, "sha-1", "coby.json")], now=1.0)
    error = {"file": "coby.json", "problems": ["coby.json: name: expected text"], "since": 5.0}
    await agent_rows.set_definition_error(database, "coby", error, "bad-1")
    await agent_rows.set_definition_error(database, "coby", {**error, "since": 6.0}, "bad-1")  # another node
    assert (await _row(database)).definition_error["since"] == 5.0
    await agent_rows.set_definition_error(database, "coby", {**error, "since": 7.0}, "bad-2")  # another bad version
    assert (await _row(database)).definition_error["since"] == 7.0
    [overview] = (await agent_rows.overviews(database, ["coby"])).values()
    assert overview.definition_error == {**error, "since": 7.0}
    await agent_rows.set_definition_error(database, "coby", None)
    row = await _row(database)
    assert row.definition_error is None and row.refused_sha is None

    # Refused, then undone while the engine was down: the start finds the recorded file and clears it.
    await agent_rows.set_definition_error(database, "coby", error, "bad-3")
    await agent_rows.save_configs(database, [Definition("coby", {"name": "Coby"}, "sha-1", "coby.json")], now=8.0)
    assert (await _row(database)).definition_error is None
