"""Agents start as their files say: keys in a file never stop a rehearsal, keys refused by X
are named and retried, and a config that cannot be applied leaves the agent as it was."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from structlog.testing import capture_logs

from puppet_engine.api import KeyRing, create_app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import load_agents_dir
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate

from .test_mention_replies import persona

ADMIN = "start-admin-key-3c9e1d7a"
PLACEHOLDER_KEYS = {"apiKey": "agent_specific_key", "apiKeySecret": "agent_specific_secret",
                    "accessToken": "agent_specific_token", "accessTokenSecret": "agent_specific_token_secret"}


def settings(url: str, **values: Any) -> Settings:
    return Settings(database_url=url, embedder="hashing", _env_file=None, **values)  # type: ignore[call-arg]


def write_agents(directory: Path, *agents: dict[str, Any]) -> Path:
    directory.mkdir()
    for agent in agents:
        (directory / f"{agent['id']}.json").write_text(json.dumps(agent))
    return directory


def chatty(agent_id: str, **extra: Any) -> dict[str, Any]:
    agent = persona(agent_id)
    agent["behavior"]["post_frequency"] = {"min_hours_between_posts": 1, "max_hours_between_posts": 2}
    return {**agent, **extra}


async def test_keys_and_logins_in_files_get_sandbox_accounts_in_a_simulation(tmp_path: Path) -> None:
    agents = write_agents(tmp_path / "agents", chatty("keyed", twitter_credentials=PLACEHOLDER_KEYS),
                          chatty("scraper", twitter_credentials={"username": "scraper", "password": "hunter2"}),
                          chatty("plain"))
    sandbox = Sandbox(SandboxConfig(seed=3), clock=VirtualClock())
    options = EngineOptions(agents=load_agents_dir(agents), clock=sandbox.clock, sandbox=sandbox, seed=3)
    with capture_logs() as logs:
        report = await simulate(settings(f"sqlite:///{tmp_path / 'sim.db'}"), options, hours=6)
    for agent_id in ("keyed", "scraper", "plain"):
        assert report.agents[agent_id]["posts"] >= 2, report.agents
    assert not [e for e in logs if e["event"] == "agent_start_failed"]
    [ignored] = [e for e in logs if e["event"] == "x_keys_ignored_in_sandbox"]  # said once, not per agent
    assert ignored["agent_id"] == "keyed" and "twitter_credentials" in ignored["keys"]
    assert "agent_specific_key" not in json.dumps(logs, default=str)
    posted_by = {c: n for c, n in sandbox.service("x").consumer_stats.items() if n}
    assert posted_by and "agent_specific_key" not in posted_by  # every call was signed by a sandbox key


async def test_keys_in_files_get_sandbox_accounts_with_a_sandbox_url(tmp_path: Path) -> None:
    clock = VirtualClock()
    server = BackgroundServer(Sandbox(SandboxConfig(seed=5), clock=clock).app)
    await server.start()
    agents = write_agents(tmp_path / "agents", chatty("keyed", twitter_credentials=PLACEHOLDER_KEYS))
    engine = Engine(settings(f"sqlite:///{tmp_path / 'url.db'}"),
                    EngineOptions(agents=load_agents_dir(agents), clock=clock, seed=5, sandbox_url=server.url))
    try:
        await engine.start()
        assert engine.wiring.rehearsal and engine.manager.status("keyed").state == "running"
        client = engine.manager.agents["keyed"].social
        assert client.credentials.api_key != "agent_specific_key"  # type: ignore[attr-defined]
        await engine.run_until(clock.now() + 3 * 3600)
        async with httpx2.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/sandbox/x/tweets", params={"username": "keyed"})).json()["data"]
    finally:
        await engine.stop()
        await server.stop()


async def test_sandbox_accounts_start_without_asking_x_who_they_are(tmp_path: Path) -> None:
    """The keys the sandbox issues name their account: agents start without a signed call
    (10,000 agents, 10,000 fewer ``GET /2/users/me``), their accounts issued in one batch call,
    and know who they are on X."""
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=6), clock=clock)
    agents = load_agents_dir(write_agents(tmp_path / "agents", chatty("ada"), chatty("bo"), chatty("cy")))
    url = f"sqlite:///{tmp_path / 'who.db'}"
    for restart in range(2):  # a first start, then a restart that remembers
        engine = Engine(settings(url), EngineOptions(agents=agents, clock=clock, seed=6, sandbox=sandbox))
        try:
            await engine.start()
            http = engine.wiring.http
            assert http is not None
            accounts = {a["username"]: a["user_id"] for a in
                        (await http.get(f"{engine.wiring.sandbox_url}/sandbox/x/accounts")).json()["accounts"]}
            for agent_id in ("ada", "bo", "cy"):
                agent = engine.manager.agents[agent_id]
                assert engine.manager.status(agent_id).state == "running"
                assert (agent.user_id, agent.username) == (accounts[agent_id], agent_id)
                stored = await engine.services.states.stored(agent_id)
                assert stored is not None and stored.x_account == {"id": accounts[agent_id], "username": agent_id}
            stats = (await http.get(f"{engine.wiring.sandbox_url}/sandbox/x/stats")).json()
            assert stats["issuance"] == {"calls": 1 + restart, "accounts": 3 * (1 + restart)}  # a batch each
            assert not any(sandbox.service("x").consumer_stats.values())  # no signed call yet
            if restart:  # and the agents work as before: their posts are signed and accepted
                await engine.run_until(clock.now() + 3 * 3600)
                posts = (await http.get(f"{engine.wiring.sandbox_url}/sandbox/x/tweets",
                                        params={"username": "ada"})).json()["data"]
                assert posts and any(sandbox.service("x").consumer_stats.values())
        finally:
            await engine.stop()


async def test_a_sandbox_that_issues_no_account_fails_the_start_visibly_and_retries_it(tmp_path: Path) -> None:
    """Without ``GET /2/users/me``, the start's one X call is the account's issuance: refused
    (X down), the start fails, shows why in ``/agents`` and is retried until X issues it."""
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=7), clock=clock)
    sandbox.faults.add(FaultSpec(service="x", method="POST", path="/sandbox/x/accounts", status=503, count=2))
    agents = load_agents_dir(write_agents(tmp_path / "agents", chatty("dee"), chatty("eli"), chatty("fox")))
    engine = Engine(settings(f"sqlite:///{tmp_path / 'refused.db'}"),
                    EngineOptions(agents=agents, clock=clock, seed=7, sandbox=sandbox))
    try:
        with capture_logs() as logs:
            await engine.start()
        manager = engine.manager
        assert manager.running == {"fox"}  # one batch call: the first two accounts were refused
        for agent_id in ("dee", "eli"):
            status = manager.status(agent_id)
            assert status.state == "failed" and status.retry_at == clock.now() + 15
            assert f"agent {agent_id!r}" in (status.reason or "") and "answered 503" in (status.reason or "")
        failed = sorted(e["agent_id"] for e in logs if e["event"] == "agent_start_failed")
        assert failed == ["dee", "eli"]
        app = create_app(engine, keys=KeyRing.parse(f"{ADMIN}:admin"))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api",
                                      headers={"Authorization": f"Bearer {ADMIN}"}) as api:
            listed = {a["id"]: a for a in (await api.get("/agents")).json()["items"]}
            assert listed["dee"]["status"] == "failed" and "POST /sandbox/x/accounts" in listed["dee"]["status_reason"]
            assert listed["fox"]["status"] == "running"
        clock.advance(15)  # the retries ask one at a time, and are issued
        await _until(lambda: manager.running == {"dee", "eli", "fox"})
        assert manager.status("dee").reason is None and manager.agents["dee"].username == "dee"
        assert not any(sandbox.service("x").consumer_stats.values())  # still no call to X to start
    finally:
        await engine.stop()


async def test_a_garbled_batch_leaves_the_agents_to_ask_one_at_a_time(tmp_path: Path) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=8), clock=clock)
    sandbox.faults.add(FaultSpec(service="x", method="POST", path="/sandbox/x/accounts", kind="garbage"))
    agents = load_agents_dir(write_agents(tmp_path / "agents", chatty("gil"), chatty("hux")))
    engine = Engine(settings(f"sqlite:///{tmp_path / 'garbled.db'}"),
                    EngineOptions(agents=agents, clock=clock, seed=8, sandbox=sandbox))
    try:
        await engine.start()
        assert engine.manager.running == {"gil", "hux"}
        assert sandbox.service("x").state.account_by_username("gil") is not None
    finally:
        await engine.stop()


async def test_keys_refused_by_x_are_named_and_retried_until_fixed(tmp_path: Path) -> None:
    """X here is a sandbox on loopback that the engine treats as the real one: it refuses keys
    it never issued, as X does."""
    clock = VirtualClock()
    x = Sandbox(SandboxConfig(seed=4), clock=clock)
    server = BackgroundServer(x.app)
    await server.start()
    agents = write_agents(tmp_path / "agents", chatty("quill", twitter_credentials=PLACEHOLDER_KEYS),
                          chatty("plain"))
    async with httpx2.AsyncClient(base_url=server.url) as http:  # the engine's own keys are good ones
        shared = (await http.post("/sandbox/x/accounts", json={"username": "plain"})).json()
    keys = {"twitter_api_key": shared["consumer_key"], "twitter_api_secret": shared["consumer_secret"],
            "twitter_access_token": shared["access_token"], "twitter_access_token_secret": shared["access_token_secret"],
            "openai_api_key": "sk-not-used-by-fake-agents"}  # credentials for everything: no sandbox of its own
    engine = Engine(settings(f"sqlite:///{tmp_path / 'real.db'}", twitter_api_base_url=f"{server.url}/x", **keys),
                    EngineOptions(agents=load_agents_dir(agents), clock=clock, seed=4))
    try:
        with capture_logs() as logs:
            await engine.start()
        assert not engine.wiring.rehearsal and not engine.wiring.uses_sandbox
        manager = engine.manager
        assert "plain" in manager.running, [(e["event"], e.get("error")) for e in logs]  # the others start
        status = manager.status("quill")
        assert status.state == "failed" and status.retry_at == clock.now() + 15
        reason = status.reason or ""
        assert "'quill'" in reason and str(agents / "quill.json") in reason and "twitter_credentials" in reason
        assert "401" in reason and "Read and write" in reason and "agent_specific" not in reason
        [failed] = [e for e in logs if e["event"] == "agent_start_failed"]
        assert failed["agent_id"] == "quill" and failed["retrying"] is True and failed["error"] == reason

        # retried with backoff: 15 s, then 30 s
        clock.advance(15)
        await _until(lambda: manager.status("quill").retry_at == clock.now() + 30)
        assert manager.status("quill").state == "failed"

        # the operator's API shows why; other wrong keys are refused, right ones start the agent
        app = create_app(engine, keys=KeyRing.parse(f"{ADMIN}:admin"))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api",
                                      headers={"Authorization": f"Bearer {ADMIN}"}) as api:
            summary = (await api.get("/agents/quill")).json()
            assert summary["status"] == "failed" and summary["status_reason"] == reason
            assert summary["running"] is False and summary["retry_at"] == clock.now() + 30
            config = summary["config"]
            wrong = await api.put("/agents/quill/config", json={**config, "twitter_credentials": {
                **PLACEHOLDER_KEYS, "apiKey": "another_wrong_key"}})
            assert wrong.status_code == 400 and "X refused the keys in PUT /agents/quill/config" in wrong.text
            assert manager.status("quill").state == "failed"
            async with httpx2.AsyncClient(base_url=server.url) as http:
                issued = (await http.post("/sandbox/x/accounts", json={"username": "quill"})).json()
            keys = {"apiKey": issued["consumer_key"], "apiKeySecret": issued["consumer_secret"],
                    "accessToken": issued["access_token"], "accessTokenSecret": issued["access_token_secret"]}
            fixed = await api.put("/agents/quill/config", json={**config, "twitter_credentials": keys})
            assert fixed.status_code == 200, fixed.text
            assert fixed.json()["status"] == "running" and fixed.json()["status_reason"] is None
        assert manager.agents["quill"].username == "quill"
        clock.advance(30)  # the pending retry finds the agent running and ends
        await _until(lambda: "quill" not in manager._retries)
        await engine.run_until(clock.now() + 3 * 3600)
        async with httpx2.AsyncClient(base_url=server.url) as http:
            posts = (await http.get("/sandbox/x/tweets", params={"username": "quill"})).json()["data"]
        assert posts
    finally:
        await engine.stop()
        await server.stop()


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_simulation_with_every_credential_set_stays_on_the_machine(tmp_path: Path) -> None:
    """``simulate`` rehearses real files under real settings: the engine's OpenAI key and X keys,
    an agent's own LLM URL and its wallet key on mainnet all stay unused, and nothing is looked up
    or connected to beyond loopback."""
    from solders.keypair import Keypair

    from .test_agent_corpus import no_network

    ledger = json.loads(Path("agents/ledger.json").read_text())
    ledger["solana_integration"]["private_key"] = str(Keypair())
    remote = chatty("remote", llm_provider="openai",
                    llm_config={"base_url": "https://llm.example.com/v1", "api_key": "sk-agent-own-key-1234"})
    agents = write_agents(tmp_path / "agents", remote, chatty("hosted", llm_provider="openai"), ledger)
    real = {"openai_api_key": "sk-engine-real-key-5678", "twitter_api_key": "real-consumer-key",
            "twitter_api_secret": "real-consumer-secret", "twitter_access_token": "real-token",
            "twitter_access_token_secret": "real-token-secret",
            "solana_rpc_url": "https://api.mainnet-beta.solana.com"}
    sandbox = Sandbox(SandboxConfig(seed=6), clock=VirtualClock())
    engine = Engine(settings(f"sqlite:///{tmp_path / 'sim.db'}", **real),
                    EngineOptions(agents=load_agents_dir(agents), clock=sandbox.clock, sandbox=sandbox, seed=6))
    with no_network() as attempts:
        await engine.start()
        try:
            trader = engine.manager.agents["ledger"].trader
            assert trader is not None and trader.wallet.rpc.url.startswith("http://sandbox.local/")
            await engine.run_until(sandbox.clock.now() + 6 * 3600)
            async with engine.db.connect() as conn:
                done = dict((await conn.execute(sa.text(
                    "SELECT agent_id, count(*) FROM actions WHERE status = 'done' AND kind = 'post' "
                    "GROUP BY agent_id"))).all())
        finally:
            await engine.stop()
    assert attempts == []
    assert done.get("remote", 0) >= 2 and done.get("hosted", 0) >= 2, done
