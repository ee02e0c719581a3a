"""The agents directory, read at start-up and then watched: agent files follow their edits live.

- **start-up** (:meth:`AgentFiles.load`): every ``*.json`` with the hash of its bytes; the
  database decides which definition runs (an unchanged file gives way to a config changed
  through the API, a changed file is the new definition: ``storage/repos/agents.save_configs``).
  A registered agent without a file here (created elsewhere, its file on another node's disk or
  removed while no engine watched) runs from its stored definition, enabled or not as recorded:
  only a removal seen happen stops an agent.
- **watching** (:meth:`AgentFiles.watch`, watchfiles' ``awatch``: the operating system reports
  changes, editors' temp file + rename settle in its debounce): a new file starts an agent; a
  changed file is a ``config`` command (only that agent restarts, on the node that owns it; every
  node runs the definition the database then holds); a removed file is a ``stop`` command. Several
  nodes watching the same files record an edit once: the file's hash is recorded with its
  commands in one transaction (:func:`~puppet_engine.storage.repos.agents.record_file_edit`).
- **refused edits**: a file that does not validate (the problems ``agents validate`` gives, file
  and field) changes nothing: the running version stays, one ``agent_file_refused`` log line says
  why, and the agent's ``definition_error`` (``/agents/{id}``, the dashboard) holds the problems
  until a valid version is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from watchfiles import Change, awatch

from puppet_engine.agents.commands import CommandRunner
from puppet_engine.agents.manager import AgentManager
from puppet_engine.clock import Clock
from puppet_engine.errors import AgentConfigError, ConfigError, PuppetError, StorageError
from puppet_engine.persona import AgentConfig, LoadedAgent, load_agent_file, parse_agent_config
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos.commands import FILE_REQUESTER

log = structlog.get_logger("puppet_engine.agents")

DEBOUNCE_MS = 300  # changes grouped this long: an editor's temp file + rename arrive as one


def _agent_file(change: Change, path: str) -> bool:
    """Agent files only: ``*.json``, not hidden (editors' swap and backup files are neither)."""
    name = Path(path).name
    return name.endswith(".json") and not name.startswith(".")


class AgentFiles:
    """The agent files of one directory and the agents they define (see the module)."""

    def __init__(self, directory: Path, db: Database, clock: Clock, manager: AgentManager,
                 commands: CommandRunner, after_added: Callable[[], Awaitable[None]] | None = None) -> None:
        self.directory = directory
        self.db = db
        self.clock = clock
        self.manager = manager
        self.commands = commands
        self.after_added = after_added  # e.g. take a lease on the new agent now rather than later
        self.known: dict[Path, tuple[str, str | None]] = {}  # file → (agent id, hash of the version in force)
        self.ready = asyncio.Event()  # set once changes are being watched
        self.refused: set[str] = set()  # agents whose current file this node saw refused
        self.read: dict[str, AgentConfig] = {}  # agent id → its latest valid file version, secrets included

    # -- start-up -------------------------------------------------------------------

    async def load(self) -> tuple[list[AgentConfig], dict[str, str]]:
        """The agents to start, with agent id → file hash: those of the files and the registered
        ones without a file. A file that does not validate whose ``id`` names a registered agent
        is a refused edit (the agent runs its stored definition, flagged); any other problem
        raises ``AgentConfigError`` listing every one (``agents validate``'s)."""
        if not self.directory.is_dir():
            raise AgentConfigError([f"{self.directory}: agents directory not found"])
        loaded: list[LoadedAgent] = []
        problems: dict[Path, list[str]] = {}
        for path in sorted(self.directory.glob("*.json")):
            try:
                loaded.append(load_agent_file(path))
            except AgentConfigError as exc:
                problems[path] = exc.problems
        seen: dict[str, str] = {}
        for agent in list(loaded):
            if agent.config.id in seen:
                loaded.remove(agent)
                problems[Path(agent.source)] = [f'{agent.source}: id: duplicate agent id "{agent.config.id}", '
                                                f"already defined in {seen[agent.config.id]}"]
            seen.setdefault(agent.config.id, agent.source)
        stored = await agent_rows.stored_without(self.db, seen)
        refused = {path: _declared_id(path) for path in problems}
        fatal = [p for path, found in problems.items() if refused[path] not in stored for p in found]
        if fatal:
            raise AgentConfigError(fatal)
        for agent in loaded:
            for warning in agent.warnings:
                log.warning("agent config: " + warning)
        self.known = {Path(a.source): (a.config.id, a.sha) for a in loaded}
        self.read = {a.config.id: a.config for a in loaded}
        configs = [a.config for a in loaded]
        for agent_id, (config, file_sha) in sorted(stored.items()):
            try:
                configs.append(parse_agent_config(config, source=f"database (agent {agent_id})"))
            except ConfigError as exc:
                log.warning("agent_stored_config_unusable", agent_id=agent_id, error=str(exc))
                continue
            invalid = next((p for p, declared in refused.items() if declared == agent_id), None)
            if invalid is not None:  # edited while the engine was down, refused: the stored definition runs
                self.known[invalid] = (agent_id, file_sha)
                await self._refused(invalid, problems[invalid])
        return configs, {a.config.id: a.sha for a in loaded if a.sha is not None}

    # -- watching -------------------------------------------------------------------

    async def watch(self) -> None:
        """Apply every change of the directory until cancelled."""
        changes = awatch(self.directory, watch_filter=_agent_file, debounce=DEBOUNCE_MS, recursive=False)
        following = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(0)  # the generator's first step sets the operating system's watch up
            await self.apply(set(self.directory.glob("*.json")) | set(self.known))  # changed since load()
            self.ready.set()
            while True:
                batch = await following
                following = asyncio.ensure_future(anext(changes))
                try:
                    await self.apply({Path(path) for _, path in batch})
                except Exception:  # e.g. the database away for a moment: the next change is applied
                    log.exception("agent_files_apply_failed")
        finally:  # awatch stops its watch when the step it is in is cancelled
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following

    async def apply(self, paths: set[Path]) -> None:
        """Bring the agents in line with these files as they are now (whatever happened in between:
        an editor's temp file renamed over the file is one change)."""
        for path in sorted(paths):
            try:
                if path.is_file():
                    await self._changed(path)
                elif path in self.known:
                    await self._removed(path)
            except PuppetError as exc:  # e.g. X refused the edited keys: the running version stays
                log.error("agent_file_not_applied", file=str(path), error=str(exc))

    async def _changed(self, path: Path) -> None:
        previous = self.known.get(path)
        if previous is not None and previous[1] == _sha(path):
            await self._settled(previous[0])  # a refused edit undone
            return  # the version in force (saved again unchanged, or our own start-up read): not parsed again
        try:
            loaded = load_agent_file(path)
        except AgentConfigError as exc:
            await self._refused(path, exc.problems)
            return
        config = loaded.config
        twin = next((p for p, (agent_id, _) in self.known.items() if agent_id == config.id and p != path), None)
        if twin is not None:
            await self._refused(path, [f'{path}: id: duplicate agent id "{config.id}", already defined in {twin}'])
            return
        if previous is not None and previous[0] != config.id:  # the id changed: the old agent's file is gone
            await self._removed(path)
        for warning in loaded.warnings:
            log.warning("agent config: " + warning)
        self.known[path] = (config.id, loaded.sha)
        self.read[config.id] = config  # the owner applies the edit with this file's secrets (see definition())
        if config.id not in self.manager.agents:
            await self._added(loaded)
        elif not await self._edited(loaded, previous):
            return
        await self._settled(config.id)

    def definition(self, agent_id: str) -> AgentConfig | None:
        """The agent's latest valid version as read from this node's file, secrets included (a
        file edit's config command carries them as ``***``). Read again when the file changed
        since this node's watcher last saw it: another node's record of the edit can reach this
        node's commands first, and its ``***`` must be this version's keys, not the previous ones."""
        path = next((p for p, (known_id, _) in self.known.items() if known_id == agent_id), None)
        if path is not None and _sha(path) != self.known[path][1]:
            try:
                fresh = load_agent_file(path).config
            except AgentConfigError:
                return self.read.get(agent_id)
            if fresh.id == agent_id:
                return fresh
        return self.read.get(agent_id)

    async def _settled(self, agent_id: str) -> None:
        """The agent's file is valid again: its refusal, if this node saw one, is cleared."""
        if agent_id in self.refused:
            self.refused.discard(agent_id)
            await agent_rows.set_definition_error(self.db, agent_id, None)

    async def _added(self, loaded: LoadedAgent) -> None:
        """A new agent: every node that sees its file builds it; the database keeps one definition."""
        config = loaded.config
        try:
            await self.manager.start_agents([config], {config.id: loaded.sha} if loaded.sha else None)
        except StorageError as exc:
            # Another node seeding the same new agent's memories at the same moment: they are there now.
            log.info("agent_file_start_retried", agent_id=config.id, error=str(exc)[:200])
            await self.manager.start_agent(config.id, persist=False)
        log.info("agent_file_added", agent_id=config.id, file=loaded.source)
        if self.after_added is not None:
            await self.after_added()

    async def _edited(self, loaded: LoadedAgent, previous: tuple[str, str | None] | None) -> bool:
        """A known agent's file changed (``previous`` ``None``: came back after a removal): recorded
        once, applied as ``PUT config`` (and ``start``) by the agent's owner. ``False``: refused
        when applied here (flagged; the running version stays, and so does the recorded file
        version, so saving the same content again tries again)."""
        config, agent_id, revived = loaded.config, loaded.config.id, previous is None
        current = self.manager.config_of(agent_id)
        same = current.public_dict() == config.public_dict() and current.secret_values() == config.secret_values()
        wanted: list[tuple[str, dict[str, Any]]] = [] if same else [("config", config.public_dict())]
        if revived:
            wanted.append(("start", {}))
        ids = await agent_rows.record_file_edit(self.db, agent_id, loaded.sha, wanted, FILE_REQUESTER + loaded.source,
                                                self.clock.now())
        if ids is None:  # another node recorded this version: apply its commands now if the agent is ours
            await self.commands.tick()
            return True
        log.info("agent_file_changed", agent_id=agent_id, file=loaded.source, commands=ids)
        for command_id, (kind, _) in zip(ids, wanted, strict=True):
            try:
                await self.commands.settle(command_id, kind, config if kind == "config" else None)
            except PuppetError as exc:  # valid, but refused when applied (X refused its keys): flagged like a refusal
                path, before = Path(loaded.source), previous[1] if previous is not None else None
                await agent_rows.record_file_edit(self.db, agent_id, before, [], "", self.clock.now())
                self.known[path] = (agent_id, before)
                self.read[agent_id] = current
                await self._refused(path, [f"{loaded.source}: {exc}"])
                return False
        return True

    async def _removed(self, path: Path) -> None:
        agent_id, _ = self.known.pop(path)
        if any(other == agent_id for other, _ in self.known.values()):
            return
        ids = await agent_rows.record_file_edit(self.db, agent_id, None, [("stop", {})],
                                                f"{FILE_REQUESTER}{path} (removed)", self.clock.now())
        log.info("agent_file_removed", agent_id=agent_id, file=str(path))
        for command_id in ids or ():
            await self.commands.settle(command_id, "stop")

    async def _refused(self, path: Path, problems: list[str]) -> None:
        """An invalid version: nothing changes but what the operator is told."""
        agent_id = self.known[path][0] if path in self.known else None
        log.error("agent_file_refused", agent_id=agent_id, file=str(path), problems="; ".join(problems),
                  kept="the running version" if agent_id else "nothing started")
        if agent_id is None:
            return
        self.refused.add(agent_id)
        await agent_rows.set_definition_error(self.db, agent_id, {
            "file": str(path), "problems": problems, "since": self.clock.now()}, _sha(path) or "unreadable")


def _declared_id(path: Path) -> str | None:
    """The ``id`` an invalid agent file declares, if it is JSON with one."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    declared = data.get("id") if isinstance(data, dict) else None
    return declared if isinstance(declared, str) else None


def _sha(path: Path) -> str | None:
    """The hash of the file's bytes as they are now (``None``: unreadable, e.g. removed meanwhile)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
