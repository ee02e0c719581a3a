"""``/agents`` flags an agent that skips most of its scheduled posts, with the reason.

Two agents run six virtual hours against the in-process sandbox; the LLM API refuses every
call of one of them (an armed sandbox fault), so that one writes nothing."""

from __future__ import annotations

from pathlib import Path

import httpx2
from api_helpers import KEYS, auth

from puppet_engine.api import KeyRing, create_app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.settings import Settings

HOUR = 3600.0


def persona(agent_id: str, provider: str) -> dict:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": provider,
        "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
        "behavior": {"post_frequency": {"min_hours_between_posts": 0.5, "max_hours_between_posts": 1}},
    }


async def test_an_agent_that_skips_most_posts_is_flagged_with_the_reason(tmp_path: Path) -> None:
    clock = VirtualClock()
    box = Sandbox(SandboxConfig(seed=4), clock=clock)
    box.faults.add(FaultSpec(service="openai", path="/v1/chat/completions", status=400, count=10_000))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'flag.db'}", embedder="hashing",
                        _env_file=None)  # type: ignore[call-arg]
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(persona("mute", "openai")),
                                                    parse_agent_config(persona("chatty", "fake"))],
                                            clock=clock, seed=4, sandbox=box))
    await engine.start()
    try:
        await engine.run_until(clock.now() + 6 * HOUR)
        app = create_app(engine, keys=KeyRing.parse(KEYS))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api.test") as client:
            page = (await client.get("/agents", headers=auth(KEYS.split(":")[0]))).json()
            mute_detail = (await client.get("/agents/mute", headers=auth(KEYS.split(":")[0]))).json()
    finally:
        await engine.stop()
    by_id = {a["id"]: a for a in page["items"]}
    mute, chatty = by_id["mute"], by_id["chatty"]
    assert mute["skipped_posts"]["skipped"] == mute["skipped_posts"]["recent"] >= 5, mute
    assert mute["skipped_posts"]["reason"].startswith("llm unavailable: openai"), mute
    [warning] = mute["warnings"]
    assert warning.startswith(f"skipped {mute['skipped_posts']['skipped']} of its last ")
    assert "llm unavailable" in warning
    assert mute_detail["warnings"] == mute["warnings"] and mute_detail["skipped_posts"] == mute["skipped_posts"]
    assert chatty["posts"] >= 5 and chatty["warnings"] == [], chatty
    assert chatty["skipped_posts"] == {"skipped": 0, "recent": min(chatty["posts"], 10), "reason": None}
