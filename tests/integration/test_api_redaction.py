"""Secrets never leave through the API: agent keys, wallet keys, API keys, settings secrets."""

from __future__ import annotations

from pathlib import Path

from api_helpers import ADMIN, CONTROL, READ, example_configs, harness
from pydantic import SecretStr
from solders.keypair import Keypair

PRIVATE_KEY = str(Keypair())  # base58 of the 64-byte keypair
TWITTER_SECRET = "tw-consumer-secret-8d1f3c5a9e"
TWITTER_KEY = "tw-consumer-key-52b7e0d4c6"
BEARER = "tw-bearer-AAAAAAAAAA0f9e8d7c6b5a"
OPENAI_KEY = "sk-test-openai-00112233445566778899"


def secret_configs():  # type: ignore[no-untyped-def]
    return example_configs({
        "ledger": {"solana_integration": {"private_key": PRIVATE_KEY, "network": "sandbox", "trading_enabled": True}},
        "nova": {"twitter_credentials": {"apiKey": TWITTER_KEY, "apiKeySecret": TWITTER_SECRET,
                                         "bearerToken": BEARER}},
    })


SECRETS = (PRIVATE_KEY, TWITTER_SECRET, TWITTER_KEY, BEARER, OPENAI_KEY, ADMIN, CONTROL, READ)


async def test_no_response_contains_a_secret(tmp_path: Path) -> None:
    async with harness(tmp_path, secret_configs(), settings={"openai_api_key": SecretStr(OPENAI_KEY)}) as api:
        paths = ["/", "/openapi.json", "/health", "/health/details", "/status", "/agents", "/events", "/config",
                 "/metrics", "/dashboard/app.js"]
        for agent_id in ("coby", "ledger", "nova"):
            paths += [f"/agents/{agent_id}", f"/agents/{agent_id}/timeline", f"/agents/{agent_id}/mentions",
                      f"/memory/{agent_id}", f"/trading/{agent_id}/stats", f"/trading/{agent_id}/transactions",
                      f"/trading/{agent_id}/balance", f"/trading/{agent_id}/portfolio"]
        bodies = []
        for path in paths:
            response = await api.get(path)
            assert response.status_code != 500, (path, response.text)  # 503: a sandbox service may be down
            bodies.append((path, response.text + str(response.headers)))
        ledger = (await api.get("/agents/ledger")).json()["config"]
        assert ledger["solana_integration"]["private_key"] == "***"
        nova = (await api.get("/agents/nova")).json()["config"]
        assert nova["twitter_credentials"]["apiKeySecret"] == "***"
        settings = (await api.get("/config")).json()
        assert settings["openai_api_key"] == "***"

        # a config round trip, an invalid one, and a search: still nothing secret comes back
        put = await api.put("/agents/ledger/config", json={**ledger, "description": "still counting"})
        bodies.append(("PUT ledger", put.text))
        bad = {**ledger, "solana_integration": {**ledger["solana_integration"], "trade_safety": {"max_slippage_percent": 500}}}
        bodies.append(("PUT bad", (await api.put("/agents/ledger/config", json=bad)).text))
        bodies.append(("search", (await api.post("/memory/ledger/search", json={"query": "private key"})).text))
        for path, text in bodies:
            for secret in SECRETS:
                assert secret not in text, f"a secret leaked through {path}"


async def test_config_update_keeps_secrets_left_out(tmp_path: Path) -> None:
    async with harness(tmp_path, secret_configs()) as api:
        runtime = lambda: api.engine.manager.agents["ledger"].config  # noqa: E731
        public = (await api.get("/agents/ledger")).json()["config"]

        await api.put("/agents/ledger/config", json={**public, "name": "Ledger 2"})  # "***" round trip
        assert runtime().name == "Ledger 2"
        assert runtime().solana_integration.private_key.get_secret_value() == PRIVATE_KEY

        section = {k: v for k, v in public["solana_integration"].items() if k != "private_key"}
        await api.put("/agents/ledger/config", json={**public, "solana_integration": section})  # key left out
        assert runtime().solana_integration.private_key.get_secret_value() == PRIVATE_KEY

        minimal = {"id": "ledger", "name": "Ledger 3", "llm_provider": "fake"}  # whole block left out
        await api.put("/agents/ledger/config", json=minimal)
        assert runtime().name == "Ledger 3"
        assert runtime().solana_integration.private_key.get_secret_value() == PRIVATE_KEY

        await api.put("/agents/ledger/config", json={**minimal, "solana_integration": {**section, "private_key": None}})
        assert runtime().solana_integration.private_key is None  # an explicit null removes it

        nova = (await api.get("/agents/nova")).json()["config"]
        creds = {"apiKey": "***"}  # the others are left out: kept too
        await api.put("/agents/nova/config", json={**nova, "twitter_credentials": creds})
        kept = api.engine.manager.agents["nova"].config.twitter_credentials
        assert kept.api_key_secret.get_secret_value() == TWITTER_SECRET
        assert kept.bearer_token.get_secret_value() == BEARER


async def test_other_accounts_user_ids_are_not_served(tmp_path: Path) -> None:
    from puppet_engine.events import Event

    tweet = {"id": "1790000000000000042", "text": "@coby hi", "author_id": "987654321012345",
             "author_username": "crowd_amy", "in_reply_to_user_id": "123450987654321"}
    async with harness(tmp_path) as api:
        await api.engine.events.schedule(Event("audit.sample", "coby", {"tweet": tweet}, key="audit:1"))
        await api.post("/memory/coby", json={"content": "amy said hi", "metadata": {"author_id": tweet["author_id"]}})
        texts = [(await api.get(path)).text for path in ("/events", "/agents/coby", "/memory/coby")]
        for text in texts:
            assert tweet["author_id"] not in text and tweet["in_reply_to_user_id"] not in text
        events = (await api.get("/events", params={"type": "audit.sample"})).json()["items"]
        assert events[0]["payload"]["tweet"]["author_username"] == "crowd_amy"  # handles are public
