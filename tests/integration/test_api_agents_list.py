"""``GET /agents`` answers as it did before its fast path: same JSON, every field, the model's form.

The example agents run four virtual hours on the in-process sandbox (seeded; the LLM API refuses
a stretch of calls, so some scheduled posts are skipped and one agent is flagged), one agent has a
refused file edit on record. The pages asked for then are compared with
``tests/data/api/agents_list_examples.json``, recorded from the route before the change
(commit 1a109d4: summaries as pydantic models, the overview through SQLAlchemy); only the node's
id, which is random per process, is left out. The list's own SQLite reader is also held to the
SQLAlchemy statement it replaces, and each item to :class:`AgentSummary`. (These pages are served
by the list's lean route; ``test_api_lean_routes.py`` holds it to the FastAPI route for every query.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from api_helpers import EXAMPLE_AGENTS, KEYS, READ, auth

from puppet_engine.api import KeyRing, create_app
from puppet_engine.api.schemas import AgentSummary, Page
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import load_agents_dir
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.settings import Settings
from puppet_engine.storage.repos import agents as agent_rows

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "api" / "agents_list_examples.json"
PAGES = ("/agents", "/agents?limit=2", "/agents?limit=1&offset=2", "/agents?offset=5")
REFUSED = {"file": "agents/nova.json", "problems": ["behavior.post_frequency: min above max"], "since": 1767230000.0}


def _engine(tmp_path: Path) -> Engine:
    clock = VirtualClock()
    box = Sandbox(SandboxConfig(seed=7), clock=clock)
    box.faults.add(FaultSpec(service="openai", path="/v1/chat/completions", status=400, count=12))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'list.db'}", embedder="hashing",
                        _env_file=None)  # type: ignore[call-arg]
    return Engine(settings, EngineOptions(agents=load_agents_dir(EXAMPLE_AGENTS), clock=clock, seed=7, sandbox=box))


def _without_node(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with the node's id (random per process) as ``<node>``."""
    items = [{**item, "owner": "<node>" if item["owner"] else None} for item in answer.get("items", [])]
    return {**answer, "items": items} if "items" in answer else answer


async def listing(tmp_path: Path, check: Callable[[Engine], Awaitable[None]] | None = None) -> dict[str, Any]:
    """The scenario's pages, by path (``owner`` as ``<node>``); ``check`` looks at the engine after."""
    engine = _engine(tmp_path)
    await engine.start()
    try:
        clock = engine.clock
        assert isinstance(clock, VirtualClock)
        await engine.run_until(clock.now() + 4 * 3600)
        await agent_rows.set_definition_error(engine.db, "nova", REFUSED, sha="0" * 64)
        app = create_app(engine, keys=KeyRing.parse(KEYS))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
            pages = {}
            for path in PAGES:
                response = await client.get(path, headers=auth(READ))
                assert response.status_code == 200, response.text
                assert response.headers["content-type"] == "application/json"
                pages[path] = _without_node(response.json())
        if check is not None:
            await check(engine)
    finally:
        await engine.stop()
    return pages


async def _reader_as_sqlalchemy(engine: Engine) -> None:
    """The list's own SQLite reader reads what the SQLAlchemy statement reads."""
    ids = engine.manager.known()
    reference = await agent_rows.overviews(engine.db, ids)
    reader = agent_rows.OverviewReader(engine.db)
    traced: list[str] = []
    reader.connection().set_trace_callback(traced.append)
    try:
        fast = await reader.read(ids)
    finally:
        reader.close()
    assert len(traced) == 2  # answered on its own connection: the page, then the recent posts
    assert fast == reference and any(o.skips for o in fast.values()) and any(o.posts for o in fast.values())


async def test_the_agents_list_answers_as_before(tmp_path: Path) -> None:
    pages = await listing(tmp_path, _reader_as_sqlalchemy)
    everything = pages["/agents"]["items"]
    assert any(a["warnings"] for a in everything) and any(a["posts"] for a in everything)  # the scenario bites
    assert any(a["definition_error"] for a in everything)
    assert pages == json.loads(GOLDEN.read_text())


async def test_each_item_is_the_models_json_form(tmp_path: Path) -> None:
    pages = await listing(tmp_path)
    for answer in pages.values():
        assert Page[AgentSummary].model_validate(answer).model_dump(mode="json") == answer
        for item in answer["items"]:
            assert list(item) == list(AgentSummary.model_fields)  # every field, in the model's order


async def test_the_list_keeps_its_security(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    await engine.start()
    try:
        app = create_app(engine, keys=KeyRing.parse(KEYS))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
            assert (await client.get("/agents")).status_code == 401
            assert (await client.get("/agents", headers=auth("not-a-key-at-all-000"))).status_code == 401
            unknown = await client.get("/agents?agent=coby", headers=auth(READ))
            assert unknown.status_code == 422 and "unknown query parameter" in unknown.text
            assert (await client.get("/agents?limit=0", headers=auth(READ))).status_code == 422
            body = (await client.get("/agents", headers=auth(READ))).text
        for data in (json.loads(p.read_text()) for p in EXAMPLE_AGENTS.glob("*.json")):
            for section in ("twitter_credentials", "solana_integration", "llm_config"):
                for name, value in (data.get(section) or {}).items():
                    if isinstance(value, str) and len(value) >= 8 and ("key" in name or "token" in name):
                        assert value not in body, f"{section}.{name} served"
    finally:
        await engine.stop()
