"""Schemathesis against the API's own OpenAPI schema: no 500s, responses as documented.

The engine and the API run on a loopback port in a background thread's event loop
(as in ``puppet-engine run``); schemathesis drives them over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_helpers import ADMIN, KEYS, READ, auth, build_engine, running_engine
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from puppet_engine.api import KeyRing, create_app
from puppet_engine.serving import BackgroundServer

EXAMPLES = 8  # per operation and mode: the whole run stays well under a minute
# Rules a schema cannot state, so a schema-valid request may rightly be refused: an agent
# config's (IANA zone names, min <= max gaps), clearing memory's confirmation, which can
# come in the query or in the body, and a replay's range (recorded events in it).
LOOSE_BODIES = {"PUT /agents/{agent_id}/config": [positive_data_acceptance],
                "DELETE /memory/{agent_id}": [positive_data_acceptance],
                # a replay's range must hold recorded events (and end after it starts)
                "POST /agents/{agent_id}/replay": [positive_data_acceptance]}


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


def _explore(operation: Any, mode: GenerationMode, base_url: str) -> str | None:
    """Run one operation's cases in one mode; the failure, described, or None."""
    excluded = LOOSE_BODIES.get(operation.label, [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=auth(ADMIN), excluded_checks=excluded)

    try:
        check()
    except Unsatisfiable:  # nothing invalid to send (an endpoint without parameters)
        return None
    except (Exception, BaseExceptionGroup) as exc:
        return f"{operation.label} ({mode.value}): {str(exc)[:1500]}"
    return None


def test_api_conforms_to_its_schema(live_api: str) -> None:
    """Positive and negative cases for every operation (``/feed`` streams forever: it has its own tests)."""
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json", headers=auth(READ)).exclude(path="/feed")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures = [found for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (found := _explore(operation, mode, live_api)) is not None]
    assert not failures, "\n\n".join(failures)
