"""Settings an operator changes while the engine runs, as one live object every part reads.

``PUT /config`` changes a :class:`RuntimeSettings` that the composition root builds once
and hands to whatever depends on those values: the trader reads ``trading_mode`` before
every trade, the LLM budget wrapper reads ``llm_daily_token_budget`` before every call.
Nothing copies a value at build time, so a change applies at once in the receiving
process.

Changes are persisted (the ``runtime_settings`` table, through a :class:`RuntimeSource`),
so a restart keeps them, and every process sharing the database applies them: each one
calls :meth:`RuntimeSettings.refresh` before a trade and on a short loop; a refresh is one
cheap query (the newest ``updated_at``) unless something changed.

A persisted value wins over the environment: ``TRADING_MODE`` gives the starting value
until an operator changes it at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from puppet_engine.errors import ConfigError

log = logging.getLogger(__name__)


class RuntimeValues(BaseModel):
    """The values an operator may change at run time, each validated as ``PUT /config`` does.

    How each one takes effect (documented in the README and proved by a test each):

    - ``trading_mode``: before the next trade is sent, in every process (``dry-run`` wins over
      an agent file's ``live``);
    - ``llm_daily_token_budget``: at the next LLM call (0 = unlimited);
    - ``engine_concurrency``: at the next claim of events;
    - ``event_max_attempts``: for events scheduled from then on;
    - ``mention_poll_seconds``: from each agent's next mentions poll on;
    - ``log_level``: at once, for every logger.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    mention_poll_seconds: float = Field(60.0, ge=1, le=86_400)
    engine_concurrency: int = Field(16, ge=1, le=1024)
    event_max_attempts: int = Field(5, ge=1, le=100)
    trading_mode: Literal["live", "dry-run"] = "live"
    llm_daily_token_budget: int = Field(0, ge=0, le=10**12)


RUNTIME_FIELDS: tuple[str, ...] = tuple(RuntimeValues.model_fields)


class RuntimeSource(Protocol):
    """Where runtime settings are persisted (``storage.runtime_settings.RuntimeSettingsStore``)."""

    async def version(self) -> Hashable:
        """A cheap value that changes whenever any setting is written."""

    async def load(self) -> dict[str, Any]:
        """Every persisted setting by name."""

    async def save(self, changes: Mapping[str, Any], updated_by: str | None) -> None:
        """Persist ``changes`` (a name → value mapping) in one transaction."""


Listener = Callable[[dict[str, Any]], None]


class RuntimeSettings:
    """The live runtime settings of one process; read attributes, never copy them."""

    def __init__(self, initial: Mapping[str, Any], source: RuntimeSource | None = None) -> None:
        """``initial``: the starting values (usually the ``Settings`` from the environment)."""
        start = {name: initial[name] for name in RUNTIME_FIELDS if name in initial}
        try:
            self._values = RuntimeValues.model_validate(_upper_level(start))
        except ValidationError as exc:
            problems = "; ".join(f"{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid settings: {problems}") from None
        self._source = source
        self._version: Hashable = None
        self._listeners: list[Listener] = []

    @classmethod
    def from_settings(cls, settings: Any, source: RuntimeSource | None = None) -> RuntimeSettings:
        return cls({name: getattr(settings, name) for name in RUNTIME_FIELDS if hasattr(settings, name)}, source)

    # -- reading ----------------------------------------------------------------------

    @property
    def trading_mode(self) -> Literal["live", "dry-run"]:
        return self._values.trading_mode

    @property
    def llm_daily_token_budget(self) -> int:
        return self._values.llm_daily_token_budget

    @property
    def engine_concurrency(self) -> int:
        return self._values.engine_concurrency

    @property
    def event_max_attempts(self) -> int:
        return self._values.event_max_attempts

    @property
    def mention_poll_seconds(self) -> float:
        return self._values.mention_poll_seconds

    @property
    def log_level(self) -> str:
        return self._values.log_level

    def values(self) -> dict[str, Any]:
        """Every runtime setting by name (a snapshot, for display)."""
        return self._values.model_dump()

    # -- changing ---------------------------------------------------------------------

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(changed)`` with the settings that changed, each time some do."""
        self._listeners.append(listener)

    def apply(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and adopt ``changes`` in this process; returns what actually changed.

        A bad name or value raises ``ConfigError`` naming it; nothing is adopted then.
        """
        fresh = self._validated(changes)
        changed = {name: getattr(fresh, name) for name in RUNTIME_FIELDS
                   if getattr(fresh, name) != getattr(self._values, name)}
        self._values = fresh
        if changed:
            for listener in self._listeners:
                listener(dict(changed))
        return changed

    async def update(self, changes: Mapping[str, Any], updated_by: str | None = None) -> dict[str, Any]:
        """An operator's change: validated, persisted (for every process and restarts), applied here.

        Returns what changed in this process.
        """
        self._validated(changes)  # a bad value is refused before anything is persisted
        if self._source is not None:
            await self._source.save(dict(_upper_level(dict(changes))), updated_by)
        return self.apply(changes)

    def _validated(self, changes: Mapping[str, Any]) -> RuntimeValues:
        unknown = sorted(set(changes) - set(RUNTIME_FIELDS))
        if unknown:
            raise ConfigError(f"not a runtime setting: {', '.join(unknown)} "
                              f"(runtime settings: {', '.join(RUNTIME_FIELDS)})")
        try:
            return RuntimeValues.model_validate({**self._values.model_dump(), **_upper_level(dict(changes))})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid runtime setting: {problems}") from None

    async def refresh(self) -> dict[str, Any]:
        """Adopt what other processes (or an earlier run) persisted; returns what changed.

        One cheap query when nothing changed. A persisted value that is no longer valid
        (written by hand) is skipped with a warning, never adopted.
        """
        if self._source is None:
            return {}
        version = await self._source.version()
        if version == self._version:
            return {}
        stored = await self._source.load()
        self._version = version
        good: dict[str, Any] = {}
        for name, value in stored.items():
            if name not in RUNTIME_FIELDS:
                continue
            try:
                self._validated({name: value})
            except ConfigError:
                log.warning("runtime setting %s in the database is invalid (%r); ignored", name, value)
                continue
            good[name] = value
        return self.apply(good)


_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def _upper_level(values: dict[str, Any]) -> dict[str, Any]:
    level = values.get("log_level")
    if isinstance(level, str):
        level = level.strip().upper()
        values["log_level"] = _LEVEL_ALIASES.get(level, level)
    return values
