"""The live runtime-settings object and its table: validation, persistence, refresh across
processes (two objects on one database), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import ConfigError
from puppet_engine.runtime_settings import RuntimeSettings
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.runtime_settings import RuntimeSettingsStore
from puppet_engine.storage.tables import runtime_settings


def _live(db: Database, clock: VirtualClock, **env: Any) -> RuntimeSettings:
    settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
    return RuntimeSettings.from_settings(settings, RuntimeSettingsStore(db, clock))


async def _two_processes(db: Database) -> None:
    clock = VirtualClock()  # stands still: versions must still move on every write
    here, there = _live(db, clock), _live(db, clock, trading_mode="live", llm_daily_token_budget=7)
    heard: list[dict[str, Any]] = []
    there.on_change(heard.append)
    assert await there.refresh() == {}  # nothing persisted yet: the environment's values stand
    assert there.llm_daily_token_budget == 7

    assert await here.update({"trading_mode": "dry-run"}, updated_by="admin:1234") == {"trading_mode": "dry-run"}
    assert here.trading_mode == "dry-run" and there.trading_mode == "live"
    assert await there.refresh() == {"trading_mode": "dry-run"}
    assert heard == [{"trading_mode": "dry-run"}]
    assert await there.refresh() == {}  # unchanged version: nothing re-read, nobody told

    await here.update({"trading_mode": "live", "llm_daily_token_budget": 0})
    assert await there.refresh() == {"trading_mode": "live", "llm_daily_token_budget": 0}
    await here.update({"trading_mode": "dry-run"})
    await here.update({"trading_mode": "live"})  # two writes at one instant, back where it was
    await here.update({"trading_mode": "dry-run"})
    assert (await there.refresh())["trading_mode"] == "dry-run"


async def test_changes_reach_another_process_on_sqlite(database: Database) -> None:
    await _two_processes(database)


@pytest.mark.postgres
async def test_changes_reach_another_process_on_postgres(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        await _two_processes(db)
    finally:
        await db.close()


async def test_bad_values_are_refused_before_anything_is_stored(database: Database) -> None:
    live = _live(database, VirtualClock())
    with pytest.raises(ConfigError, match="not a runtime setting: database_url"):
        await live.update({"database_url": "sqlite:///elsewhere.db"})
    with pytest.raises(ConfigError, match="trading_mode"):
        await live.update({"trading_mode": "yolo", "engine_concurrency": 2})
    with pytest.raises(ConfigError, match="llm_daily_token_budget"):
        await live.update({"llm_daily_token_budget": -1})
    async with database.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(runtime_settings))).scalar() == 0
    assert live.engine_concurrency == 16 and live.trading_mode == "live"


async def test_a_hand_edited_invalid_row_is_ignored_not_adopted(database: Database) -> None:
    async with database.transaction() as conn:
        await conn.execute(runtime_settings.insert(), [
            {"name": "trading_mode", "value": "sideways", "updated_at": 1.0, "updated_by": None},
            {"name": "engine_concurrency", "value": 4, "updated_at": 1.0, "updated_by": None},
            {"name": "retired_setting", "value": True, "updated_at": 1.0, "updated_by": None},
        ])
    live = _live(database, VirtualClock(), trading_mode="dry-run")
    assert await live.refresh() == {"engine_concurrency": 4}
    assert live.trading_mode == "dry-run"


def test_environment_values_are_read_as_logging_reads_them() -> None:
    assert _plain(log_level="warn").log_level == "WARNING" and _plain(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        _plain(log_level="LOUD")


def _plain(**env: Any) -> RuntimeSettings:
    return RuntimeSettings.from_settings(Settings(_env_file=None, **env))  # type: ignore[call-arg]
