"""Shared set-up for the API tests: a real Engine on a temp SQLite database with the example
agents and an in-process sandbox, the API app around it, and an httpx2 client over ASGI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings

EXAMPLE_AGENTS = Path(__file__).resolve().parents[2] / "agents"
ADMIN = "admin-key-6f1d0c8e2b7a4d95"
CONTROL = "control-key-0b3e9a1f57c24d88"
READ = "read-key-94c2e7d1a0b64f3e"
KEYS = f"{ADMIN}:admin,{CONTROL}:control,{READ}:read"

T = TypeVar("T")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def example_data() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(EXAMPLE_AGENTS.glob("*.json"))}


def example_configs(changes: dict[str, dict[str, Any]] | None = None) -> list[AgentConfig]:
    """The example agents, with top-level fields of some replaced."""
    data = example_data()
    for agent_id, fields in (changes or {}).items():
        data[agent_id].update(fields)
    return [parse_agent_config(d, source=f"agents/{name}.json") for name, d in data.items()]


def build_engine(tmp_path: Path, configs: list[AgentConfig] | None = None, **settings: Any) -> Engine:
    values = {"database_url": f"sqlite:///{tmp_path / 'api.db'}", "embedder": "hashing", **settings}
    return Engine(Settings(_env_file=None, **values),  # type: ignore[call-arg]
                  EngineOptions(agents=configs if configs is not None else example_configs(),
                                sandbox=Sandbox(SandboxConfig()), seed=11))


@dataclass
class Harness:
    engine: Engine
    app: Any
    client: httpx2.AsyncClient

    async def get(self, path: str, key: str = ADMIN, **kw: Any) -> httpx2.Response:
        return await self.client.get(path, headers=auth(key), **kw)

    async def post(self, path: str, key: str = ADMIN, **kw: Any) -> httpx2.Response:
        return await self.client.post(path, headers=auth(key), **kw)

    async def put(self, path: str, key: str = ADMIN, **kw: Any) -> httpx2.Response:
        return await self.client.put(path, headers=auth(key), **kw)

    async def delete(self, path: str, key: str = ADMIN, **kw: Any) -> httpx2.Response:
        return await self.client.request("DELETE", path, headers=auth(key), **kw)


@asynccontextmanager
async def running_engine(engine: Engine) -> AsyncIterator[Engine]:
    """The engine started and processing events in this loop, as ``puppet-engine run`` does."""
    await engine.start()
    runner = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        await engine.stop()
        await asyncio.wait_for(runner, timeout=30)


@asynccontextmanager
async def harness(tmp_path: Path, configs: list[AgentConfig] | None = None, **kw: Any) -> AsyncIterator[Harness]:
    engine = build_engine(tmp_path, configs, **kw.pop("settings", {}))
    async with running_engine(engine):
        app = create_app(engine, keys=KeyRing.parse(KEYS), feed_interval=0.1, **kw)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield Harness(engine, app, client)


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last value: {value!r}")
        await asyncio.sleep(every)


def assert_error(response: httpx2.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an error in the one API shape, with this status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]
