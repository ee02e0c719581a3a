"""Agent files follow their changes, and the database's definition is the one every node runs.

Real engines started from a directory of agent files (copies of the examples) with in-process
sandboxes: one process on SQLite, and two engines with leases on one PostgreSQL database
watching the same directory. Every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from api_helpers import EXAMPLE_AGENTS, KEYS, Harness, eventually

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.errors import AgentConfigError
from puppet_engine.observability.logging import configure_logging
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import agents as agents_table
from puppet_engine.storage.tables import commands as commands_table


def agents_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "agents"
    directory.mkdir()
    for path in EXAMPLE_AGENTS.glob("*.json"):
        shutil.copy(path, directory / path.name)
    return directory


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def save(path: Path, data: dict[str, Any]) -> None:
    """As editors save: a temp file beside it, renamed over it."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=2))
    os.replace(temp, path)


@asynccontextmanager
async def node(directory: Path, database_url: str, owner: str = "node-a", **settings: Any) -> AsyncIterator[Harness]:
    """An engine reading ``directory`` (watched unless told), its API over ASGI."""
    values = {"database_url": database_url, "embedder": "hashing", **settings}
    engine = Engine(Settings(_env_file=None, **values),
                    EngineOptions(agents_dir=directory, sandbox=Sandbox(SandboxConfig()), seed=11, owner=owner))
    await engine.start()
    try:
        if engine.files is not None and engine._watch_task is not None:
            await eventually(lambda: _true(engine.files.ready.is_set()))
        app = create_app(engine, keys=KeyRing.parse(KEYS), feed_interval=0.1)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=f"http://{owner}") as c:
            yield Harness(engine, app, c)
    finally:
        await engine.stop()


async def _true(value: bool) -> bool:
    return value


async def _row(engine: Engine, agent_id: str) -> Any:
    async with engine.db.connect() as conn:
        return (await conn.execute(sa.select(agents_table).where(agents_table.c.id == agent_id))).mappings().first()


async def _file_commands(engine: Engine) -> list[Any]:
    async with engine.db.connect() as conn:
        return list((await conn.execute(sa.select(commands_table).where(commands_table.c.requested_by.like("file %"))
                                        .order_by(commands_table.c.id))).mappings())


async def _applied_file_commands(engine: Engine, count: int = 1) -> list[Any]:
    """The commands recorded from file edits, once ``count`` exist and all are applied."""
    found = await _file_commands(engine)
    return found if len(found) == count and all(c["state"] == "applied" for c in found) else []


async def _decided_file_commands(engine: Engine, count: int) -> list[Any]:
    """The commands recorded from file edits, once ``count`` exist and none is pending."""
    found = await _file_commands(engine)
    return found if len(found) == count and all(c["state"] in ("applied", "failed") for c in found) else []


# -- start-up: which definition wins ---------------------------------------------------------------


async def test_an_api_change_survives_a_restart_and_a_file_edited_meanwhile_wins(tmp_path: Path) -> None:
    directory, url = agents_dir(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}"
    async with node(directory, url, watch_agents=False) as api:
        config = (await api.get("/agents/nova")).json()["config"]
        assert (await api.put("/agents/nova/config", json={**config, "name": "Nova II"})).status_code == 200
        detail = (await api.get("/agents/nova")).json()
        assert detail["config_source"] == "api" and detail["definition_error"] is None

    # Same file, restarted: the database's definition (the API change) is what runs.
    async with node(directory, url, watch_agents=False) as api:
        assert api.engine.manager.config_of("nova").name == "Nova II"
        assert (await api.get("/agents/nova")).json()["name"] == "Nova II"
        assert api.engine.manager.status("nova").state == "running"
        version = (await _row(api.engine, "nova"))["version"]

    # The file edited while the engine was down: a new edit, recorded as the definition.
    save(directory / "nova.json", {**read(directory / "nova.json"), "name": "Nova from the file"})
    async with node(directory, url, watch_agents=False) as api:
        assert api.engine.manager.config_of("nova").name == "Nova from the file"
        row = await _row(api.engine, "nova")
        assert row["config_source"] == "file" and row["version"] == version + 1
        assert row["config_changed_by"].startswith("file ") and row["config_changed_by"].endswith("nova.json")


async def test_a_command_applied_before_the_watcher_saw_the_edit_takes_the_new_files_keys(tmp_path: Path) -> None:
    """Another node's record of a file edit can reach this node first: the ``***`` in its command
    are resolved from the file as it is now, not from the version this node's watcher last read."""
    directory, url = agents_dir(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}"
    async with node(directory, url, watch_agents=False) as api:
        files = api.engine.files
        assert files is not None and not files.definition("nova").secret_values()
        path = directory / "nova.json"
        keys = {"apiKey": "file-key-5a1c", "apiKeySecret": "file-secret-9d2e", "accessToken": "file-token-3b7f",
                "accessTokenSecret": "file-token-secret-8c4a"}
        save(path, {**read(path), "twitter_credentials": keys})  # not watched: this node has not seen it
        fresh = api.engine.commands.local_definition("nova")
        assert fresh is not None and "file-secret-9d2e" in fresh.secret_values()
        save(path, {**read(path), "behavior": "broken"})  # invalid now: the last valid version read stands
        assert not files.definition("nova").secret_values()


async def test_agents_without_a_file_here_run_from_the_database(tmp_path: Path) -> None:
    directory, url = agents_dir(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}"
    extra = {**read(directory / "coby.json"), "id": "echo", "name": "Echo"}
    (directory / "echo.json").write_text(json.dumps(extra))
    async with node(directory, url, watch_agents=False) as api:
        assert (await api.post("/agents/ledger/stop")).status_code == 200
    # echo's file goes while no engine watches (or lives on another node's disk): echo runs from the database.
    (directory / "echo.json").unlink()
    (directory / "ledger.json").unlink()
    async with node(directory, url, watch_agents=False) as api:
        assert api.engine.manager.known() == ["coby", "echo", "ledger", "nova"]
        assert api.engine.manager.config_of("echo").name == "Echo"
        assert api.engine.manager.status("echo").state == "running"
        assert api.engine.manager.status("ledger").state == "stopped"  # as the operator left it


async def test_a_file_broken_while_the_engine_was_down_runs_its_stored_definition_flagged(tmp_path: Path) -> None:
    directory, url = agents_dir(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}"
    async with node(directory, url, watch_agents=False):
        pass
    broken = read(directory / "nova.json")
    broken["behavior"]["interaction_patterns"]["reply_probability"] = 3
    broken["name"] = "Never"
    (directory / "nova.json").write_text(json.dumps(broken))
    async with node(directory, url) as api:
        assert api.engine.manager.status("nova").state == "running"
        assert api.engine.manager.config_of("nova").name == "Nova"
        error = (await api.get("/agents/nova")).json()["definition_error"]
        assert error["file"].endswith("nova.json")
        assert any("behavior.interaction_patterns.reply_probability" in p for p in error["problems"])
        listed = {a["id"]: a for a in (await api.get("/agents")).json()["items"]}
        assert listed["nova"]["definition_error"] == error and listed["coby"]["definition_error"] is None

    # A file naming no registered agent cannot fall back on anything: the start refuses, as before.
    (directory / "zed.json").write_text(json.dumps({**broken, "id": "zed"}))
    with pytest.raises(AgentConfigError) as refused:
        async with node(directory, url):
            pass
    assert all("zed.json" in p for p in refused.value.problems), refused.value.problems


# -- watching, one process on SQLite ----------------------------------------------------------------


async def test_files_added_edited_refused_and_removed_apply_live(tmp_path: Path, log_stream: Any) -> None:
    configure_logging("INFO", "console", stream=log_stream)
    directory, url = agents_dir(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}"
    async with node(directory, url) as api:
        engine = api.engine
        # A new file starts an agent.
        save(directory / "echo.json", {**read(directory / "coby.json"), "id": "echo", "name": "Echo"})
        await eventually(lambda: _true(engine.manager.status("echo").state == "running"))
        assert (await api.get("/agents/echo")).json()["name"] == "Echo"

        # A valid edit applies like PUT config: only that agent restarts.
        coby = engine.manager.get("coby")
        save(directory / "nova.json", {**read(directory / "nova.json"), "name": "Nova, edited"})
        await eventually(lambda: _true(engine.manager.config_of("nova").name == "Nova, edited"))
        [command] = await eventually(lambda: _applied_file_commands(engine))
        assert command["kind"] == "config"
        assert command["requested_by"].endswith("nova.json")
        assert engine.manager.get("coby") is coby and engine.manager.status("nova").state == "running"
        detail = (await api.get("/agents/nova")).json()
        assert detail["config_source"] == "file" and detail["name"] == "Nova, edited"

        # An invalid edit is refused with the validator's problems; the running version stays.
        broken = read(directory / "nova.json")
        broken["behavior"]["interaction_patterns"]["reply_probability"] = 3
        save(directory / "nova.json", broken)
        error = await eventually(lambda: _definition_error(api, "nova"))
        assert error["file"].endswith("nova.json") and error["since"] > 0
        assert any("behavior.interaction_patterns.reply_probability" in p and "nova.json" in p for p in error["problems"]), error
        assert engine.manager.config_of("nova").name == "Nova, edited"
        assert engine.manager.status("nova").state == "running" and len(await _file_commands(engine)) == 1
        [line] = [line for line in log_stream.getvalue().splitlines() if "refused" in line]
        assert "nova" in line and "behavior.interaction_patterns.reply_probability" in line

        # Not JSON at all: refused too.
        (directory / "nova.json").write_text('{"id": "nova", ')
        await eventually(lambda: _problem_mentions(api, "nova", "invalid JSON"))

        # Fixed: applied, and the error is gone.
        broken["behavior"]["interaction_patterns"]["reply_probability"] = 0.5
        save(directory / "nova.json", {**broken, "name": "Nova, fixed"})
        await eventually(lambda: _true(engine.manager.config_of("nova").name == "Nova, fixed"))
        assert (await api.get("/agents/nova")).json()["definition_error"] is None

        # Valid, but refused when applied (a wallet key that is no key): flagged, the running version stays.
        ledger = read(directory / "ledger.json")
        wallet = engine.manager.get("ledger")
        save(directory / "ledger.json", {**ledger, "name": "Never", "solana_integration": {
            **ledger["solana_integration"], "private_key": "not-a-key"}})
        await eventually(lambda: _problem_mentions(api, "ledger", "private_key"))
        assert engine.manager.get("ledger") is wallet and engine.manager.config_of("ledger").name == "Ledger"
        assert "not-a-key" not in json.dumps(await _definition_error(api, "ledger"))
        save(directory / "ledger.json", ledger)  # back to the running version: the flag goes
        await eventually(lambda: _no_definition_error(api, "ledger"))

        # A removed file stops its agent (desired state: stopped).
        (directory / "ledger.json").unlink()
        await eventually(lambda: _true(engine.manager.status("ledger").state == "stopped"))
        assert (await _row(engine, "ledger"))["enabled"] is False
        states = [(c["kind"], c["state"]) for c in await eventually(lambda: _decided_file_commands(engine, 4))]
        assert states == [("config", "applied"), ("config", "applied"), ("config", "failed"), ("stop", "applied")]

        # A new file whose id another file has: refused, nothing started.
        save(directory / "copy.json", read(directory / "coby.json"))
        await eventually(lambda: _true("duplicate agent id" in log_stream.getvalue()))
        assert engine.manager.get("coby") is coby


async def _definition_error(api: Harness, agent_id: str) -> Any:
    return (await api.get(f"/agents/{agent_id}")).json()["definition_error"]


def _named(engine: Engine, agent_id: str, name: str) -> Callable[[], Awaitable[bool]]:
    return lambda: _true(engine.manager.config_of(agent_id).name == name)


def _holds_secret(engine: Engine, agent_id: str, secret: str) -> Callable[[], Awaitable[bool]]:
    return lambda: _true(secret in engine.manager.config_of(agent_id).secret_values())


def _in_state(engine: Engine, agent_id: str, state: str) -> Callable[[], Awaitable[bool]]:
    return lambda: _true(engine.manager.status(agent_id).state == state)


async def _no_definition_error(api: Harness, agent_id: str) -> bool:
    return await _definition_error(api, agent_id) is None


async def _problem_mentions(api: Harness, agent_id: str, text: str) -> bool:
    error = await _definition_error(api, agent_id)
    return error is not None and any(text in p for p in error["problems"])


# -- watching, two engines on PostgreSQL ------------------------------------------------------------


@pytest.mark.postgres
async def test_two_workers_on_postgres_record_each_edit_once_and_both_run_it(tmp_path: Path, pg_url: str) -> None:
    slow = functools.partial(eventually, timeout=60.0)  # two PostgreSQL nodes on a loaded 2-core machine
    directory = agents_dir(tmp_path)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node(directory, pg_url, "node-a", engine_leases=True,
                                                 lease_ttl_seconds=600))
        b = await stack.enter_async_context(node(directory, pg_url, "node-b", engine_leases=True,
                                                 lease_ttl_seconds=600))
        await a.engine.rebalance()
        await b.engine.rebalance()
        leases = {n: set(x.engine.leases.owned) for n, x in (("a", a), ("b", b))}
        assert leases["a"] and leases["b"] and leases["a"].isdisjoint(leases["b"])
        engines = (a.engine, b.engine)

        # Both nodes see the edit; it is recorded once and both run it (the owner applies, the other follows).
        victim = sorted(leases["b"])[0]
        path = directory / f"{victim}.json"
        sent = time.monotonic()
        save(path, {**read(path), "name": "Edited once"})
        for engine in engines:
            await slow(_named(engine, victim, "Edited once"))
        print(f"file saved -> both nodes run the edit: {time.monotonic() - sent:.3f}s")
        [command] = await slow(lambda: _applied_file_commands(a.engine))
        assert command["applied_by"] == "node-b"
        row = await _row(a.engine, victim)
        assert row["config_source"] == "file" and row["config"]["name"] == "Edited once"

        # New keys in the file: the database holds them as ***, each node takes them from its own copy.
        keys = {"apiKey": "file-key-5a1c", "apiKeySecret": "file-secret-9d2e", "accessToken": "file-token-3b7f",
                "accessTokenSecret": "file-token-secret-8c4a"}
        save(path, {**read(path), "twitter_credentials": keys})
        for engine in engines:
            await slow(_holds_secret(engine, victim, "file-secret-9d2e"))
        await slow(lambda: _applied_file_commands(a.engine, 2))
        async with a.engine.db.connect() as conn:
            stored = json.dumps([list(r) for r in (await conn.execute(sa.select(
                commands_table.c.payload, agents_table.c.config).join(
                agents_table, agents_table.c.id == commands_table.c.agent_id))).all()])
        assert "***" in stored and not any(secret in stored for secret in keys.values())

        # An invalid edit: refused on both, one definition error, the running version stays.
        broken = {**read(path), "name": "Never"}
        broken["behavior"]["interaction_patterns"]["reply_probability"] = -1
        save(path, broken)
        error = await slow(lambda: _definition_error(a, victim))
        assert any("behavior.interaction_patterns.reply_probability" in p for p in error["problems"])
        assert (await _definition_error(b, victim)) == error
        assert all(e.manager.config_of(victim).name == "Edited once" for e in engines)
        assert len(await _file_commands(a.engine)) == 2

        # A new file: both nodes know the agent, one runs it.
        save(directory / "echo.json", {**read(directory / "coby.json"), "id": "echo", "name": "Echo"})
        for engine in engines:
            await slow(_in_state(engine, "echo", "running"))
        await a.engine.rebalance()
        await b.engine.rebalance()
        holders = [x for x in engines if "echo" in x.leases.owned]
        assert len(holders) == 1
        async with a.engine.db.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(agents_table)
                                       .where(agents_table.c.id == "echo"))).scalar() == 1

        # A removed file: stopped on both, recorded once.
        path.unlink()
        for engine in engines:
            await slow(_in_state(engine, victim, "stopped"))
        assert [c["kind"] for c in await _file_commands(a.engine)] == ["config", "config", "stop"]
        assert (await _row(a.engine, victim))["enabled"] is False
