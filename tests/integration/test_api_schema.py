"""Schemathesis against the API's own OpenAPI schema: no 500s, responses as documented.

The engine and the API run on a loopback port in a background thread's event loop
(as in ``puppet-engine run``); schemathesis drives them over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_helpers import ADMIN, KEYS, auth, build_engine, running_engine
from hypothesis import HealthCheck, settings

from puppet_engine.api import KeyRing, create_app
from puppet_engine.serving import BackgroundServer


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schema")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            async with running_engine(build_engine(tmp)) as engine:
                app = create_app(engine, keys=KeyRing.parse(KEYS), auth_failures_per_minute=1_000_000)
                server = BackgroundServer(app)
                await server.start()
                box["url"] = server.url
                ready.set()
                await stop.wait()
                await server.stop()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(60), "the API did not start"
    if "error" in box:
        raise RuntimeError("the API could not start") from box["error"]  # type: ignore[arg-type]
    yield str(box["url"])
    loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
    thread.join(60)


@pytest.fixture(scope="module")
def api_schema(live_api: str) -> schemathesis.BaseSchema:
    # /feed streams forever; it has its own tests.
    return schemathesis.openapi.from_url(f"{live_api}/openapi.json").exclude(path="/feed")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_api: str) -> None:
    case.call_and_validate(base_url=live_api, headers=auth(ADMIN))
