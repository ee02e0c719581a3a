"""Credentials are replaced while the engine runs; the old ones are never used again.

X keys of one agent through ``PUT /agents/{id}/config`` (only that agent restarts);
X, LLM and Solana keys from the environment through :meth:`Engine.reload_credentials`
(what ``SIGHUP`` does). The sandbox X counts calls by the consumer key that signed
them, regenerates an account's keys on demand (the old ones are refused from then on),
and its LLM API accepts one key at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from solders.keypair import Keypair

from puppet_engine.api import KeyRing, create_app
from puppet_engine.events import Event

from .helpers import Rig, persona, rig, settings_for

ADMIN = "rotation-admin-key-5d1c9e7a"
SANDBOX = "http://sandbox.local"


async def by_key(r: Rig) -> dict[str, int]:
    return dict((await r.admin("GET", "/x/stats"))["by_consumer_key"])


async def answered(r: Rig, agent: str, author: str, text: str) -> int:
    tweet_id = await r.mention(author, f"@{agent} {text}")
    await r.run_for(2 * 60)
    return len(await r.replies_to(agent, tweet_id))


def file_creds(creds: dict[str, str]) -> dict[str, str]:
    return {"apiKey": creds["consumer_key"], "apiKeySecret": creds["consumer_secret"],
            "accessToken": creds["access_token"], "accessTokenSecret": creds["access_token_secret"]}


async def test_new_x_keys_through_the_api_restart_only_that_agent(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("rho"), persona("sig"), twitter_api_base_url=f"{SANDBOX}/x") as r:
        await r.run_for(60)
        old = await r.admin("POST", "/x/accounts", json={"username": "rho"})  # the keys rho uses now
        sig_client = r.engine.manager.agents["sig"].social
        assert (await by_key(r)).get(old["consumer_key"], 0) > 0
        new = await r.admin("POST", "/x/accounts/rho/rotate")  # regenerated: the old keys now get 401
        assert new["consumer_key"] != old["consumer_key"] and new["user_id"] == old["user_id"]

        app = create_app(r.engine, keys=KeyRing.parse(f"{ADMIN}:admin"))
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api") as api:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            config = (await api.get("/agents/rho", headers=auth)).json()["config"]
            put = await api.put("/agents/rho/config", headers=auth,
                                json={**config, "twitter_credentials": file_creds(new)})
            assert put.status_code == 200, put.text
            assert new["consumer_secret"] not in put.text
        old_calls = (await by_key(r)).get(old["consumer_key"], 0)

        assert await answered(r, "rho", "rot_a", "what do you brew when it rains?") == 1
        assert await answered(r, "sig", "rot_b", "what do you brew when it snows?") == 1
        stats = await by_key(r)
        assert stats.get(old["consumer_key"], 0) == old_calls  # the old key is never used again
        assert stats.get(new["consumer_key"], 0) > 0
        assert r.engine.manager.agents["sig"].social is sig_client  # the other agent was not touched
        assert r.engine.manager.agents["rho"].user_id == old["user_id"]  # same account, new keys


async def test_x_llm_and_wallet_keys_reload_from_the_environment(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first_wallet, second_wallet = Keypair(), Keypair()
    monkeypatch.setenv("SOLANA_PRIVATE_KEY_TAU", str(first_wallet))
    tau = persona("tau", solana_integration={"trading_enabled": True, "network": "sandbox",
                                             "trade_safety": {"max_trade_amount_sol": 0.05,
                                                              "max_slippage_percent": 5.0}})
    keys: dict[str, Any] = {"openai_api_key": "sk-first-llm-key-0001", "openai_base_url": f"{SANDBOX}/openai/v1",
                            "solana_rpc_url": f"{SANDBOX}/solana", "jupiter_api_url": f"{SANDBOX}/jupiter/swap/v1",
                            "twitter_api_base_url": f"{SANDBOX}/x"}
    async with rig(tmp_path, tau, persona("ups"), openai_key="sk-first-llm-key-0001", **keys) as r:
        await r.run_for(60)
        assert await answered(r, "ups", "env_a", "is oolong better at dawn?") == 1
        # Everything is replaced at once: the LLM API accepts only the new key, tau's X
        # keys are regenerated (given by env now) and tau gets a new wallet.
        r.sandbox.config.openai_key = "sk-second-llm-key-0002"
        old = await r.admin("POST", "/x/accounts", json={"username": "tau"})
        new = await r.admin("POST", "/x/accounts/tau/rotate")
        for name, field in (("API_KEY", "consumer_key"), ("API_SECRET", "consumer_secret"),
                            ("ACCESS_TOKEN", "access_token"), ("ACCESS_TOKEN_SECRET", "access_token_secret")):
            monkeypatch.setenv(f"TWITTER_{name}_TAU", new[field])
        monkeypatch.setenv("SOLANA_PRIVATE_KEY_TAU", str(second_wallet))
        ups_client = r.engine.manager.agents["ups"].social
        fresh = settings_for(r.engine.settings.database_url, **{**keys, "openai_api_key": "sk-second-llm-key-0002"})
        restarted = await r.engine.reload_credentials(fresh)
        assert restarted == ["tau"]
        assert r.engine.manager.agents["ups"].social is ups_client
        old_calls = (await by_key(r)).get(old["consumer_key"], 0)

        # The LLM answers only the new key: every reply below proves the old one is gone.
        assert await answered(r, "ups", "env_b", "is oolong better at midnight?") == 1
        assert await answered(r, "tau", "env_c", "which book about tea changed your mind?") == 1
        stats = await by_key(r)
        assert stats.get(old["consumer_key"], 0) == old_calls and stats.get(new["consumer_key"], 0) > 0
        assert r.engine.manager.agents["tau"].trader.wallet.address == str(second_wallet.pubkey())
        await r.engine.events.schedule(Event("trade.manual", "tau", {"input": "SOL", "output": "USDC",
                                                                      "amount": 0.01}, key="after-rotation"))
        await r.run_for(60)
        [trade] = await r.rows(sa.text("SELECT status, signature FROM trades WHERE key LIKE '%after-rotation'"))
        assert trade.status == "confirmed"
        tx = await r.http.post(f"{r.url}/solana", json={"jsonrpc": "2.0", "id": 1, "method": "getTransaction",
                                                        "params": [trade.signature, {"encoding": "json", "maxSupportedTransactionVersion": 0}]})
        signer = tx.json()["result"]["transaction"]["message"]["accountKeys"][0]
        assert signer == str(second_wallet.pubkey())  # signed by the new wallet
