"""The platform-neutral social seam: a name → client registry, runtimes built complete with
an unconnected client that connects when the agent starts; the shared resilience module on
Jupiter and Solana RPC against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.errors import AuthError, ConfigError, ServiceUnavailable
from puppet_engine.networks import CLIENTS, ClientSpec, build_client
from puppet_engine.persona import parse_agent_config
from puppet_engine.resilience import CircuitBreaker, RetryPolicy
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.social import DryRunClient
from puppet_engine.solana.jupiter import JupiterAPI
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT
from puppet_engine.twitter import TwitterClient


def persona(agent_id: str) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
            "personality": {"traits": ["curious"], "interests": ["tea"], "speaking_style": "plain"}}


def test_networks_are_chosen_by_name_and_an_unknown_one_is_named() -> None:
    assert set(CLIENTS) == {"x", "dry-run"}
    clock = VirtualClock()
    assert isinstance(build_client("dry-run", ClientSpec("ada", clock)), DryRunClient)
    with pytest.raises(ConfigError, match=r"unknown social network 'mastodon'; known: dry-run, x"):
        build_client("mastodon", ClientSpec("ada", clock))
    with pytest.raises(ConfigError, match="ada: an X client needs a key source"):
        build_client("x", ClientSpec("ada", clock))


async def test_runtimes_are_built_complete_and_their_client_connects_when_the_agent_starts(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(seed=2), clock=VirtualClock())
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'seam.db'}", embedder="hashing",  # type: ignore[call-arg]
                        _env_file=None)
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(persona(a)) for a in ("ada", "bo")], clock=sandbox.clock, sandbox=sandbox,
                                            seed=2))
    await engine.start()
    try:
        for agent_id in ("ada", "bo"):
            agent = engine.manager.agents[agent_id]
            assert isinstance(agent.social, TwitterClient) and agent.social.credentials.is_set
            assert agent.user_id == agent.social.credentials.user_id and agent.username == agent_id

        fresh = engine.wiring.build_runtime(engine.manager.config_of("ada"))
        client = fresh.social
        assert isinstance(client, TwitterClient) and not client.credentials.is_set  # built without a call
        with pytest.raises(AuthError, match="no X credentials yet"):
            await client.get_me()
        await client.connect()  # the sandbox account is looked up (made) now
        assert fresh.social is client and (await client.get_me()).username == "ada"
        assert client.breaker is engine.wiring.x_breaker  # one breaker for X, shared by every account

        await engine.manager.restart_agent("bo")  # a fresh runtime, connected before it replaces the old one
        bo = engine.manager.agents["bo"]
        assert engine.manager.status("bo").state == "running" and bo.username == "bo"
    finally:
        await engine.stop()


@pytest.fixture
async def chain():
    clock = VirtualClock()
    server = BackgroundServer(Sandbox(clock=clock).app)
    await server.start()
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
        yield server.url, http, clock
    await server.stop()


async def fault(http: httpx2.AsyncClient, **spec: Any) -> None:
    response = await http.post("/sandbox/faults", json=spec)
    assert response.status_code < 300, response.text


async def hits(http: httpx2.AsyncClient) -> int:
    return sum(f["hits"] for f in (await http.get("/sandbox/faults")).json()["faults"])


async def test_jupiter_behind_a_breaker_fails_fast_while_down_and_recovers(chain: Any) -> None:
    url, http, clock = chain
    heard: list[tuple[str, str]] = []
    breaker = CircuitBreaker("jupiter", clock=clock, failures=2, cooldown=30, on_state=lambda n, s: heard.append((n, s)))
    jupiter = JupiterAPI(f"{url}/jupiter/swap/v1", http=http, clock=clock, breaker=breaker)
    await fault(http, service="jupiter", status=503, count=100)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable, match="HTTP 503"):
            await jupiter.quote(SOL_MINT, USDC_MINT, 1_000_000)
    assert breaker.state == "open" and await hits(http) == 2
    with pytest.raises(ServiceUnavailable, match="quote: circuit open after 2 failures"):
        await jupiter.quote(SOL_MINT, USDC_MINT, 1_000_000)
    assert await hits(http) == 2  # failed fast: Jupiter was not called
    assert (await http.delete("/sandbox/faults")).status_code < 300
    clock.advance(30)
    quote = await jupiter.quote(SOL_MINT, USDC_MINT, 1_000_000)  # the trial call answers
    assert quote.out_amount > 0 and breaker.state == "closed"
    assert heard == [("jupiter", "open"), ("jupiter", "half_open"), ("jupiter", "closed")]


async def test_solana_rpc_with_a_retry_policy_rides_out_a_short_outage(chain: Any) -> None:
    url, http, clock = chain
    once = SolanaRpc(f"{url}/solana", http=http)  # the default: one try, as the trader expects
    await fault(http, service="solana", status=503, count=1)
    with pytest.raises(ServiceUnavailable, match="getBalance: RPC answered HTTP 503"):
        await once.lamports(Keypair().pubkey())
    patient = SolanaRpc(f"{url}/solana", http=http, clock=clock,
                        retry=RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0))
    await fault(http, service="solana", status=503, count=2)
    assert await patient.lamports(Keypair().pubkey()) == 0  # third try answers
    assert (await http.get("/sandbox/faults")).json()["faults"] == []  # both failures were met
