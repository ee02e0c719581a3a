"""Operator commands through the database: any process records them, the agent's owner applies them.

A command (start, stop, restart, config, restart_all) is written to the ``commands`` table by
the process whose API received it (:meth:`CommandRunner.submit`). Every process runs
:meth:`CommandRunner.tick` on its runtime-settings cadence (and the receiving process at once):

- **apply**: a pending command for an agent this process owns (with leases: holds its lease,
  or nobody holds a live one; without leases: always) is claimed ``pending → applying`` together
  with the agent's desired state (``agents.enabled`` / ``agents.config``) in one transaction,
  carried out here, then ``applied``. A failure marks it ``failed`` with the reason (a refused
  config is put back).
- **follow**: commands applied by other processes are mirrored here, in order, so a process that
  later gains the agent's lease runs it as the operator left it (stopped stays stopped, the new
  config stays). Nothing of this is on the event-claim path.

A command whose owner dies before claiming it stays pending until the next owner claims it:
the claim's state transition makes one process apply it. One left ``applying`` by a process
that died is claimed again once stale (``storage/repos/commands.STALE_SECONDS``).

``restart_all`` is every worker's: each one that was up when it was sent restarts the agents
it owns and records that (``command_results``); the command is ``applied`` once every live
worker has (a worker that dies meanwhile stops counting once it is gone from ``nodes``).

Wake-ups: on PostgreSQL the engine LISTENs and calls :meth:`CommandRunner.wake` when a command
is recorded or applied anywhere; the runtime loop's :meth:`CommandRunner.tick` stays as the
fallback. A node of role ``api`` (``applies=False``) applies nothing: it only follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from puppet_engine.agents.manager import AgentManager
from puppet_engine.clock import Clock
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.storage import Database
from puppet_engine.storage.repos import commands as command_rows
from puppet_engine.storage.repos import nodes as node_rows

log = structlog.get_logger("puppet_engine.commands")

Owns = Callable[[str], Awaitable[bool]]
UNHELD_GRACE_SECONDS = 2.0  # an agent nobody holds: the node that received the command goes first


class CommandRunner:
    """Applies the commands of the agents this process owns and follows the others' (see module)."""

    def __init__(self, db: Database, clock: Clock, manager: AgentManager, node: str, owns: Owns,
                 owned_now: Callable[[], set[str] | None], *, applies: bool = True) -> None:
        self.db = db
        self.clock = clock
        self.manager = manager
        self.node = node
        self.owns = owns  # whether this process applies commands for the agent now
        self.owned_now = owned_now  # agents whose lease this process holds (None: no leases, all)
        self._cursor = 0  # the last command id followed
        self._lock = asyncio.Lock()
        self._configs: dict[int, AgentConfig] = {}  # configs submitted here, with their secrets
        self._errors: dict[int, Exception] = {}  # failures of commands submitted here, re-raised to the caller
        self.results: dict[int, list[str]] = {}  # restart_all: the agents restarted here
        self.applies = applies  # False on an api node: it records and follows, never applies
        self.started_at = clock.now()  # restart_all sent before this node started is its to do
        self._wake = asyncio.Event()
        self._here: set[int] = set()  # commands being submitted here (their outcome is kept for submit)
        # The agent's definition as this node read it from its own file (with the file's secrets, which
        # the database holds only as ``***``): used for a config command carrying that same definition.
        self.local_definition: Callable[[str], AgentConfig | None] = lambda _agent_id: None

    async def start(self) -> None:
        """Follow from now on: the agents' rows already hold what came before."""
        self._cursor = await command_rows.newest_id(self.db)

    async def submit(self, kind: str, agent_id: str | None, payload: dict[str, Any], requested_by: str | None,
                     config: AgentConfig | None = None) -> dict[str, Any]:
        """Record a command and apply it here at once when this process owns the agent.

        ``config`` (for ``config``): the parsed new config with its secrets, usable only here;
        the database holds ``payload``, its public dict. Returns the command's row (for
        ``restart_all`` with ``restarted``: the agents restarted here); an error of
        applying it here is re-raised (the command is ``failed`` with it).
        """
        command_id = await command_rows.create(self.db, kind, agent_id, payload, requested_by, self.clock.now())
        return await self.settle(command_id, kind, config)

    async def settle(self, command_id: int, kind: str, config: AgentConfig | None = None) -> dict[str, Any]:
        """Apply a recorded command here at once when this process owns its agent (see :meth:`submit`)."""
        self._here.add(command_id)
        if config is not None:
            self._configs[command_id] = config
        try:
            await self.tick()
            error = self._errors.pop(command_id, None)
            if error is not None:
                raise error
        finally:
            self._configs.pop(command_id, None)
            self._here.discard(command_id)
        row = await command_rows.get(self.db, command_id)
        assert row is not None
        if kind == "restart_all":
            row["restarted"] = self.results.pop(command_id, [])
        return row

    def followed(self, command_id: int) -> bool:
        """Whether this process has mirrored the command already (its local view shows it)."""
        return command_id <= self._cursor

    def wake(self, _payload: str | None = None) -> None:
        """A command was recorded or applied somewhere (NOTIFY): tick soon (:meth:`run_woken`)."""
        self._wake.set()

    async def run_woken(self) -> None:
        """Tick at each :meth:`wake` until cancelled (the engine runs it as a task)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("commands_tick_failed")

    async def tick(self) -> None:
        """Apply what this process owns, then mirror what the others applied."""
        async with self._lock:
            for command in await command_rows.pending(self.db):
                agent_id = command["agent_id"]
                if command["kind"] == "restart_all":
                    await self._restart_all(command)
                elif self.applies and self._first_to_try(command) and await self.owns(agent_id):
                    await self._apply(command)
            await self._follow()

    def _first_to_try(self, command: dict[str, Any]) -> bool:
        """Whether this node tries the command now: it received it, or it holds the agent, or the
        command waited :data:`UNHELD_GRACE_SECONDS`. An agent nobody holds (stopped) may be taken by
        any node; NOTIFY wakes them all at once, and the one that received the command should win
        the race, so that it answers "applied" and runs the agent it started."""
        owned = self.owned_now()
        return (owned is None or command["id"] in self._here or command["agent_id"] in owned
                or self.clock.now() - command["created_at"] >= UNHELD_GRACE_SECONDS)

    async def _restart_all(self, command: dict[str, Any]) -> None:
        """This worker's part of a restart_all (once), then decide it if every live worker did its part."""
        command_id, now = command["id"], self.clock.now()
        if self.applies and self.started_at <= command["created_at"]:
            recorded = await command_rows.results_of(self.db, command_id)
            if not any(r["node"] == self.node for r in recorded):
                restarted = await self._restart_owned()
                if command_id in self._here:
                    self.results[command_id] = restarted
                await command_rows.record_result(self.db, command_id, self.node, self.clock.now(),
                                                 {"restarted": restarted})
                log.info("command_applied", command_id=command_id, kind="restart_all", restarted=len(restarted))
        workers = await node_rows.live_workers(self.db, now, started_by=command["created_at"])
        await command_rows.finish(self.db, command_id, self.node, workers, self.clock.now())

    async def _apply(self, command: dict[str, Any]) -> None:
        previous = self._config(command["agent_id"])
        if not await command_rows.claim(self.db, command, self.node, self.clock.now()):
            return  # another process claimed it
        try:
            await self._carry_out(command)
        except Exception as exc:  # the reason is the operator's answer; the process carries on
            restore = None
            if command["kind"] == "config" and previous is not None:
                restore = (command["agent_id"], previous.public_dict())
            await command_rows.fail(self.db, command["id"], f"{type(exc).__name__}: {exc}", self.clock.now(), restore)
            self._errors[command["id"]] = exc
            log.warning("command_failed", command_id=command["id"], kind=command["kind"],
                        agent_id=command["agent_id"], error=str(exc))
            return
        await command_rows.complete(self.db, command["id"], self.node, self.clock.now())
        log.info("command_applied", command_id=command["id"], kind=command["kind"], agent_id=command["agent_id"])

    async def _carry_out(self, command: dict[str, Any]) -> None:
        kind, agent_id, manager = command["kind"], command["agent_id"], self.manager
        state = manager.status(agent_id).state
        if kind == "start" and state in ("stopped", "failed"):
            await manager.start_agent(agent_id)
        elif kind == "stop" and state != "stopped":
            await manager.stop_agent(agent_id)
        elif kind == "restart":
            await manager.restart_agent(agent_id)
        elif kind == "config":
            config = self._configs.get(command["id"]) or self._parse(command)
            await manager.update_config(config)

    async def _restart_owned(self) -> list[str]:
        owned = self.owned_now()
        restarted = []
        for agent_id in sorted(self.manager.running):
            if (owned is None or agent_id in owned) and agent_id in self.manager.running:
                await self.manager.restart_agent(agent_id)
                restarted.append(agent_id)
        return restarted

    async def _follow(self) -> None:
        """Mirror, in order, the commands the other processes applied (stop at one still pending)."""
        for command in await command_rows.after(self.db, self._cursor):
            if command["kind"] == "restart_all":  # each worker's own part: see _restart_all
                self._cursor = command["id"]
                continue
            if command["state"] in command_rows.OPEN:
                break
            if command["state"] == "applied" and command["applied_by"] != self.node:
                try:
                    await self._mirror(command)
                    log.info("command_followed", command_id=command["id"], kind=command["kind"],
                             agent_id=command["agent_id"], applied_by=command["applied_by"])
                except Exception:
                    log.exception("command_mirror_failed", command_id=command["id"], agent_id=command["agent_id"])
            self._cursor = command["id"]  # after mirroring: followed() means this node shows it

    async def _mirror(self, command: dict[str, Any]) -> None:
        kind, agent_id, manager = command["kind"], command["agent_id"], self.manager
        if agent_id not in manager.agents:
            return
        state = manager.status(agent_id).state
        if kind == "stop" and state != "stopped":
            await manager.stop_agent(agent_id)
        elif kind in ("start", "restart") and state in ("stopped", "failed"):
            await manager.start_agent(agent_id, persist=False)
        elif kind == "config" and manager.config_of(agent_id).public_dict() != command["payload"]:
            await manager.update_config(self._parse(command))

    def _config(self, agent_id: str | None) -> AgentConfig | None:
        if agent_id is None or agent_id not in self.manager.agents:
            return None
        return self.manager.config_of(agent_id)

    def _parse(self, command: dict[str, Any]) -> AgentConfig:
        """The stored public config, its redacted secrets kept from the agent's current config (or
        taken from this node's copy of the agent file that config was read from)."""
        local = self.local_definition(command["agent_id"])
        if local is not None and local.public_dict() == command["payload"]:
            return local
        return parse_agent_config(command["payload"], source=f"command {command['id']}",
                                  previous=self.manager.config_of(command["agent_id"]))
