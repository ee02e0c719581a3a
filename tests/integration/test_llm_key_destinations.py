"""An agent config can point its LLM anywhere, but never takes the engine's key there.

A real engine (``puppet-engine run`` shape: sandbox on a loopback port, the API over ASGI)
holds a fake but real-looking global ``OPENAI_API_KEY`` and ``OPENAI_COMPATIBLE_API_KEY``.
An operator (or an attacker holding an admin key) points agents' ``llm_config.base_url`` at
a listener on another loopback port that records every request: the global keys never
arrive there, the URLs are validated, and the listener's hostile error text comes back
trimmed and redacted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from api_helpers import ADMIN, KEYS, assert_error, auth, eventually, example_configs, example_data

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import events

GLOBAL_KEY = "sk-global-openai-fake-4b9e2c7a1d6f8e3b"
GLOBAL_COMPAT_KEY = "sk-global-compat-fake-9d3a6e1c4b8f"
AGENT_KEY = "agent-own-passphrase-2f7c9a4e6b1d3e8a"  # not key-shaped: redacted as a known secret


class Listener:
    """A tiny ASGI server that records each request's headers and body and answers like a
    hostile OpenAI-compatible server: a 400 whose message reflects the request and rambles."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append(json.dumps(headers) + body.decode("utf-8", "replace"))
        reflected = f"bad request from {headers.get('authorization', 'nobody')}; " + "blah " * 400
        payload = json.dumps({"error": {"message": reflected, "type": "invalid_request_error", "code": "bad"}})
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload.encode()})


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[BackgroundServer]:
    server = BackgroundServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(agent_id: str, **llm: Any) -> dict[str, Any]:
    data = example_data()[agent_id]
    data["llm_provider"] = llm.pop("provider", data.get("llm_provider"))
    data["llm_config"] = {**data.get("llm_config", {}), **llm}
    return data


async def test_the_global_llm_key_never_reaches_an_agent_set_base_url(tmp_path: Path) -> None:
    listener = Listener()
    sandbox = Sandbox(SandboxConfig(openai_key=GLOBAL_KEY))
    async with served(sandbox.app) as box, served(listener) as evil:
        settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'engine.db'}",  # type: ignore[call-arg]
                            embedder="hashing", llm_max_retries=0, openai_api_key=GLOBAL_KEY,
                            openai_base_url=f"{box.url}/openai/v1", openai_compatible_api_key=GLOBAL_COMPAT_KEY,
                            openai_compatible_base_url=f"{box.url}/openai/v1")
        engine = Engine(settings, EngineOptions(agents=example_configs(), sandbox_url=box.url, seed=3))
        await engine.start()
        runner = asyncio.create_task(engine.run())
        try:
            app = create_app(engine, keys=KeyRing.parse(KEYS))
            async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api",
                                          headers=auth(ADMIN)) as api:
                target = f"{evil.url}/v1"
                # The attack as filed: an openai agent, the engine's key, someone else's URL. Refused.
                error = assert_error(await api.put("/agents/coby/config", json=_config("coby", base_url=target)),
                                     422, "invalid_config")
                problem = error["details"][0]["message"]
                assert "llm_config" in problem and "base_url needs api_key" in problem and "OPENAI_API_KEY" in problem
                # URLs are validated, and a password in one is never echoed back.
                error = assert_error(await api.put("/agents/coby/config", json=_config(
                    "coby", base_url="http://user:hunter2pass@127.0.0.1:9/v1", api_key=AGENT_KEY)), 422)
                assert "llm_config.base_url" in error["details"][0]["message"] and "hunter2pass" not in json.dumps(error)
                error = assert_error(await api.put("/agents/coby/config", json=_config(
                    "coby", base_url="file:///etc/passwd", api_key=AGENT_KEY)), 422)
                assert "llm_config.base_url: expected an http:// or https:// URL" in error["details"][0]["message"]
                rpc = example_data()["ledger"]
                rpc["solana_integration"]["rpc_url"] = "gopher://127.0.0.1:70/"
                error = assert_error(await api.put("/agents/ledger/config", json=rpc), 422)
                assert "solana_integration.rpc_url" in error["details"][0]["message"]
                assert engine.manager.agents["coby"].config.llm_config.base_url is None  # nothing was applied

                # With its own key the agent may use its own server: only that key goes there.
                own = await api.put("/agents/coby/config", json=_config("coby", base_url=target, api_key=AGENT_KEY))
                assert own.status_code == 200, own.text
                assert own.json()["config"]["llm_config"]["api_key"] == "***"
                # The agent's own key stays with its URL: a new base_url with the key left out, or sent
                # back as "***", does not take the key along.
                elsewhere = _config("coby", base_url=f"{evil.url}/elsewhere/v1")
                assert_error(await api.put("/agents/coby/config", json=elsewhere), 422)
                assert_error(await api.put("/agents/coby/config", json={**elsewhere, "llm_config": {
                    **elsewhere["llm_config"], "api_key": "***"}}), 422)
                kept = await api.put("/agents/coby/config", json=_config("coby", base_url=target, api_key="***"))
                assert kept.status_code == 200, kept.text  # same URL: "***" keeps the key
                assert engine.manager.agents["coby"].config.llm_config.api_key.get_secret_value() == AGENT_KEY
                # openai-compatible with its own URL and no key of its own: no key at all, not the global one.
                compat = await api.put("/agents/nova/config", json=_config("nova", provider="openai-compatible",
                                                                           base_url=target))
                assert compat.status_code == 200, compat.text
                for agent in ("coby", "nova"):
                    assert (await api.post(f"/agents/{agent}/post", json={"topic": "keys"})).status_code == 202

                async def both_called() -> bool:
                    return sum(AGENT_KEY in s for s in listener.seen) >= 1 and sum(
                        "not-needed" in s for s in listener.seen) >= 1

                await eventually(both_called, timeout=30)
                # ledger (openai, no base_url of its own) still reaches the engine's URL with the engine's key
                assert (await api.post("/agents/ledger/post", json={"topic": "keys"})).status_code == 202

                async def failed_posts() -> list[str]:
                    async with engine.db.connect() as conn:
                        q = sa.select(events.c.error).where(events.c.agent_id.in_(["coby", "nova"]),
                                                            events.c.type == "post.manual",
                                                            events.c.error.is_not(None))
                        return [e for e in (await conn.execute(q)).scalars()]

                errors = await eventually(failed_posts, timeout=30)
                shown = (await api.get("/events", params={"type": "post.manual", "agent": "coby"})).text
        finally:
            await engine.stop()
            await asyncio.wait_for(runner, timeout=30)

    everything = "\n".join(listener.seen)
    assert GLOBAL_KEY not in everything and GLOBAL_COMPAT_KEY not in everything
    assert f"Bearer {AGENT_KEY}" in everything  # the agent's own key, to the agent's own server
    for error in errors:  # the server's reflected text comes back short and without the key it saw
        assert AGENT_KEY not in error and len(error) <= 230 and "bad request from Bearer" in error, error
    assert AGENT_KEY not in shown and GLOBAL_KEY not in shown
