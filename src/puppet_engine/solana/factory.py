"""Building an agent's trader from its config and the settings, for real networks or the sandbox.

Where each value comes from (first match wins):

- private key: ``SOLANA_PRIVATE_KEY_<AGENT_ID>``, then ``solana_integration.private_key``;
  in the sandbox with neither, a deterministic per-agent sandbox key;
- RPC URL: the sandbox's ``/solana`` when one is used, else ``solana_integration.rpc_url``,
  else ``SOLANA_RPC_URL``;
- Jupiter: the sandbox's ``/jupiter/swap/v1``, else ``JUPITER_API_URL`` with ``JUPITER_API_KEY``;
- mode: read live at every trade: ``dry-run`` when ``solana_integration.trading_mode`` or the
  engine's runtime ``trading_mode`` (``TRADING_MODE``, changed by ``PUT /config``) says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

from puppet_engine.clock import Clock
from puppet_engine.errors import ConfigError
from puppet_engine.persona import AgentConfig
from puppet_engine.runtime_settings import RuntimeSettings
from puppet_engine.settings import Settings, agent_secret, env_suffix
from puppet_engine.solana.jupiter import JupiterAPI, PriceCache
from puppet_engine.solana.risk import RiskLimits
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import TokenRegistry
from puppet_engine.solana.trader import SolanaTrader
from puppet_engine.solana.wallet import SolanaWallet, parse_keypair, sandbox_keypair
from puppet_engine.storage import Database


@dataclass(frozen=True)
class SandboxEndpoints:
    """Where a running sandbox serves Solana and Jupiter (``base`` is the sandbox's root URL)."""

    base: str

    @property
    def rpc_url(self) -> str:
        return f"{self.base.rstrip('/')}/solana"

    @property
    def jupiter_url(self) -> str:
        return f"{self.base.rstrip('/')}/jupiter/swap/v1"


def build_trader(config: AgentConfig, *, settings: Settings, db: Database, clock: Clock,
                 http: httpx2.AsyncClient | None = None, sandbox: SandboxEndpoints | None = None,
                 sandbox_seed: int = 7, confirm_poll_seconds: float = 0.5,
                 runtime: RuntimeSettings | None = None, prices_cache: PriceCache | None = None
                 ) -> SolanaTrader | None:
    """The agent's trader, or ``None`` when its file does not enable trading.

    ``runtime``: the engine's live runtime settings (default: a fixed view of ``settings``).
    ``confirm_poll_seconds`` is the real-time pause between signature-status polls
    (0.5 s suits real clusters; an in-process sandbox under ``simulate`` can use ~0.01).
    """
    sol = config.solana_integration
    if sol is None or not sol.trading_enabled:
        return None
    env_name = f"SOLANA_PRIVATE_KEY_{env_suffix(config.id)}"
    secret = agent_secret("SOLANA_PRIVATE_KEY", config.id)
    if secret:
        keypair = parse_keypair(secret, source=env_name)
    elif sol.private_key is not None:
        keypair = parse_keypair(sol.private_key, source=f"agent {config.id}: solana_integration.private_key")
    elif sandbox is not None:
        keypair = sandbox_keypair(config.id, sandbox_seed)
    else:
        raise ConfigError(f"agent {config.id}: trading_enabled but no wallet key; set {env_name} "
                          "(base58 secret key or JSON byte array)")
    if sol.wallet_address and sandbox is None and str(keypair.pubkey()) != sol.wallet_address:
        raise ConfigError(f"agent {config.id}: solana_integration.wallet_address does not match the private key "
                          f"(the key's address is {keypair.pubkey()})")
    if sandbox is not None:
        rpc = SolanaRpc(sandbox.rpc_url, http=http)
        jupiter = JupiterAPI(sandbox.jupiter_url, http=http, clock=clock, prices_cache=prices_cache)
        registry = TokenRegistry.for_network("sandbox")
    else:
        rpc = SolanaRpc(sol.rpc_url or settings.solana_rpc_url, http=http)
        jupiter = JupiterAPI(settings.jupiter_api_url, api_key=settings.jupiter_api_key, http=http, clock=clock,
                             prices_cache=prices_cache)
        registry = TokenRegistry.for_network(sol.network)
    trading = config.behavior.trading_behavior
    return SolanaTrader(
        config.id, SolanaWallet(keypair, rpc), jupiter, db, limits=RiskLimits.from_agent_config(config),
        clock=clock, registry=registry, mode=sol.trading_mode,
        runtime=runtime or RuntimeSettings.from_settings(settings), timezone=config.timezone,
        factors=trading.trade_decision_factors, random_probability=trading.trading_frequency.random_probability,
        confirm_poll_seconds=confirm_poll_seconds,
    )


async def fund_sandbox_wallet(http: httpx2.AsyncClient, sandbox: SandboxEndpoints, address: str, *,
                              sol: float = 5.0, usdc: float = 500.0) -> None:
    """Give a sandbox wallet SOL and USDC through the admin routes (only if it holds less)."""
    base = sandbox.base.rstrip("/")
    held = (await http.get(f"{base}/sandbox/solana/balances/{address}")).json()
    if held["lamports"] < sol * 1e9 / 2:
        resp = await http.post(f"{base}/sandbox/solana/airdrop", json={"address": address, "sol": sol})
        resp.raise_for_status()
    has_usdc = any(t["symbol"] == "USDC" and int(t["amount"]) > 0 for t in held["tokens"])
    if usdc > 0 and not has_usdc:
        resp = await http.post(f"{base}/sandbox/solana/mint", json={"owner": address, "symbol": "USDC",
                                                                    "amount": usdc})
        resp.raise_for_status()
