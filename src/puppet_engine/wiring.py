"""Which real or sandbox client each agent talks through, decided once from Settings.

For every external service the rule is the same: credentials configured → the real
service at its configured base URL; none → the sandbox (in-process transport for
``simulate``, an already-running one with ``--sandbox-url``, else one started here on
a loopback port). The client code is identical either way; only URLs and keys differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import structlog
from pydantic import SecretStr

from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.clock import Clock
from puppet_engine.errors import AuthError, ConfigError, ProviderError
from puppet_engine.events import Action, ActionExecutor
from puppet_engine.llm.base import LLMProvider
from puppet_engine.llm.registry import build_provider
from puppet_engine.llm.wrappers import prometheus_hook
from puppet_engine.memory import build_memory_store
from puppet_engine.memory.base import MemoryStore
from puppet_engine.memory.embeddings import Embedder
from puppet_engine.networks import ClientSpec, build_client
from puppet_engine.observability.logging import redact, update_secrets
from puppet_engine.observability.metrics import Metrics
from puppet_engine.persona import AgentConfig
from puppet_engine.resilience import CircuitBreaker
from puppet_engine.runtime_settings import RuntimeSettings
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings, agent_secret, env_suffix
from puppet_engine.social import SocialClient
from puppet_engine.social.base import Account
from puppet_engine.solana import SandboxEndpoints, TradeExecutor, build_trader, fund_sandbox_wallet
from puppet_engine.solana.jupiter import price_cache
from puppet_engine.solana.trader import SolanaTrader
from puppet_engine.solana.wallet import parse_keypair
from puppet_engine.storage import Database
from puppet_engine.twitter.cache import XReadCache
from puppet_engine.twitter.client import XAccount
from puppet_engine.twitter.credentials import TwitterCredentials, agent_keys
from puppet_engine.twitter.issuance import SandboxAccounts, sandbox_username
from puppet_engine.twitter.stream import TweetStream

log = structlog.get_logger("puppet_engine.wiring")


def add_secrets(values: list[str]) -> None:
    """New credentials (sandbox accounts, rotated keys) are redacted from logs from now on."""
    if values:
        update_secrets(values)

SANDBOX_HOST = "http://sandbox.local"
LLM_KEY_FIELDS = {"openai_api_key", "grok_api_key", "openai_compatible_api_key"}
CREDENTIAL_FIELDS = LLM_KEY_FIELDS | {"twitter_api_key", "twitter_api_secret", "twitter_access_token",
                                      "twitter_access_token_secret", "twitter_bearer_token", "jupiter_api_key"}


# provider → (its base URL setting, its key setting)
_LLM_FIELDS = {"openai": ("openai_base_url", "openai_api_key"), "grok": ("grok_base_url", "grok_api_key"),
               "openai-compatible": ("openai_compatible_base_url", "openai_compatible_api_key")}


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _plain(value: Any) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value or "")


@dataclass(frozen=True)
class WiringDeps:
    """What the wiring needs from the engine, built by the engine before the agents exist."""

    settings: Settings
    clock: Clock
    db: Database
    rng: random.Random
    metrics: Metrics
    runtime: RuntimeSettings  # read live by the traders and the LLM budget
    services: AgentServices
    sandbox: Sandbox | None = None  # an in-process sandbox, reached through an ASGI transport
    sandbox_url: str | None = None  # an already-running sandbox
    embedder: Embedder | None = None  # instead of the one EMBEDDER names


def build_sandbox(*, clock: Clock | None = None, **config: Any) -> Sandbox:
    """The sandbox (every emulator, one ASGI app) with ``config`` as :class:`SandboxConfig` fields.

    Production code reaches the sandbox only through the composition root (an import
    contract): ``run``, ``simulate`` and ``puppet-engine sandbox`` all build it here.
    """
    return Sandbox(SandboxConfig(**config), clock=clock)


class Wiring:
    """Builds each agent's clients (X, LLM, wallet) and the sandbox they may need."""

    def __init__(self, deps: WiringDeps) -> None:
        self.deps = deps
        self.settings: Settings = deps.settings
        self.sandbox_url: str | None = None  # base URL of the sandbox in use, if any
        # simulate / --sandbox-url: a rehearsal, every agent gets a sandbox X account
        self.rehearsal = False
        self._x_keys_from: dict[str, str] = {}  # agent id → where its X keys came from (for errors)
        self.accounts: SandboxAccounts | None = None  # the sandbox's X account issuance, with a sandbox
        self._issued: dict[str, Account] = {}  # agent id → the sandbox account its keys were issued for
        self._ignored_keys_logged = False
        self.sandbox_server: BackgroundServer | None = None
        self.http: httpx2.AsyncClient | None = None  # shared client (ASGI transport for in-process)
        self.llm_settings: Settings = deps.settings
        self.providers: dict[str, LLMProvider] = {}
        # One breaker for X, shared by every account: an outage is X's, not one account's.
        self.x_breaker = CircuitBreaker("x", clock=deps.clock, failures=5, cooldown=30.0,
                                        on_state=deps.metrics.set_breaker)
        self.memory: MemoryStore | None = None
        self._embedder_task: asyncio.Task[None] | None = None
        # Reads every agent shares (docs/caching.md): X users and tweets, Jupiter prices.
        cached, counter = deps.settings.read_cache, deps.metrics.cache_requests
        self.x_cache = XReadCache(deps.clock.now, counter, enabled=cached)
        self.prices_cache = price_cache(deps.clock.now, counter, enabled=cached)

    @property
    def uses_sandbox(self) -> bool:
        return self.sandbox_url is not None

    async def start(self) -> None:
        deps = self.deps
        needs_sandbox = not (self.settings.has_x_credentials() and self.settings.has_llm_credentials())
        self.rehearsal = bool(deps.sandbox is not None or deps.sandbox_url or self.settings.sandbox_url)
        if deps.sandbox is not None:
            await deps.sandbox.start()
            transport = httpx2.ASGITransport(app=deps.sandbox.app)
            self.http = httpx2.AsyncClient(transport=transport, base_url=SANDBOX_HOST, timeout=30)
            self.sandbox_url = SANDBOX_HOST
        elif deps.sandbox_url:
            self.sandbox_url = deps.sandbox_url.rstrip("/")
        elif self.settings.sandbox_url:
            self.sandbox_url = self.settings.sandbox_url.rstrip("/")
        elif needs_sandbox:
            sandbox = build_sandbox(seed=self.settings.sandbox_seed, openai_key=self.settings.sandbox_openai_key,
                                    crowd_rate=self.settings.sandbox_crowd_rate)
            self.sandbox_server = BackgroundServer(sandbox.app)
            await self.sandbox_server.start()
            self.sandbox_url = self.sandbox_server.url
            log.info("sandbox_started", url=self.sandbox_url)
        if self.http is None:
            # As many kept-alive connections as events in flight: fewer would be closed and
            # reopened all the time (a TCP connect and a new parser each) under load.
            keep = max(20, self.settings.engine_concurrency)
            self.http = httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=max(100, 2 * keep),
                                                                           max_keepalive_connections=keep))
        if self.sandbox_url is not None:
            self.accounts = SandboxAccounts(self.http, self.sandbox_url)
        self.memory = build_memory_store(self.settings, self.deps.db, embedder=deps.embedder,
                                         clock=self.deps.clock)
        if not self.memory.embedder.ready:  # agents start meanwhile; memory writes wait for the model
            self._embedder_task = asyncio.create_task(self._load_embedder(self.memory.embedder),
                                                      name="embedder-load")
        if self.sandbox_url and (self.rehearsal or not self.settings.has_llm_credentials()):
            self.llm_settings = self._sandbox_llm_settings()

    def on_machine(self, url: str | None) -> bool:
        """Whether ``url`` stays on this machine: the sandbox in use or a loopback address
        (under ``simulate``, only the in-process sandbox: its transport reaches nothing else)."""
        if not url:
            return False
        if self.sandbox_url and url.rstrip("/").startswith(self.sandbox_url):
            return True
        in_process = self.deps.sandbox is not None
        return not in_process and (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS

    def _sandbox_llm_settings(self) -> Settings:
        """LLM services on the sandbox. In a rehearsal (``simulate``, ``--sandbox-url``) with
        credentials set, a service whose base URL already stays on this machine (the sandbox
        itself, a local server) keeps its URL and key; every other one is the sandbox's, so
        nothing leaves the machine. A configured local OpenAI-compatible server is never taken over."""
        update: dict[str, Any] = {}
        for name, (url_field, key_field) in _LLM_FIELDS.items():
            if self.rehearsal and self.on_machine(getattr(self.settings, url_field)):
                continue
            if name == "openai-compatible" and "OPENAI_COMPATIBLE_BASE_URL" in os.environ:
                continue
            update[url_field] = f"{self.sandbox_url}/openai/v1"
            update[key_field] = SecretStr(self.settings.sandbox_openai_key)
        return self.settings.model_copy(update=update)

    @staticmethod
    async def _load_embedder(embedder: Embedder) -> None:
        started = time.monotonic()
        log.info("embedder_loading", embedder=embedder.name)
        try:
            await embedder.ensure_loaded()
        except Exception as exc:  # memory writes and searches fail with it; the health check says so
            log.error("embedder_failed", embedder=embedder.name, error=str(exc))
            return
        log.info("embedder_ready", embedder=embedder.name, seconds=round(time.monotonic() - started, 2))

    async def stop(self) -> None:
        if self._embedder_task is not None:
            self._embedder_task.cancel()  # the model's thread finishes on its own; nothing waits for it
        if self.memory is not None:
            await self.memory.close()
        for provider in self.providers.values():
            await provider.aclose()
        if self.http is not None:
            await self.http.aclose()
        if self.sandbox_server is not None:
            await self.sandbox_server.stop()
        elif self.deps.sandbox is not None:
            await self.deps.sandbox.stop()

    # -- per agent ---------------------------------------------------------------------

    def build_runtime(self, config: AgentConfig) -> AgentRuntime:
        """The agent's runtime, complete: its social client is built unconnected (no network
        call) and connected by :meth:`on_agent_ready` when the agent starts."""
        seed = self.deps.rng.getrandbits(32)
        return AgentRuntime(config=config, social=self.social_for(config, seed), llm=self.llm_for(config),
                            memory=self.memory, rng=random.Random(seed), username=config.id,
                            trader=self.trader_for(config))

    def trader_for(self, config: AgentConfig) -> SolanaTrader | None:
        """The agent's trader: its own key on the configured RPC, else a funded sandbox wallet."""
        sol = config.solana_integration
        if sol is None or not sol.trading_enabled:
            return None
        has_key = agent_secret("SOLANA_PRIVATE_KEY", config.id) or sol.private_key is not None
        # A rehearsal trades on the sandbox's chain, whatever key the file holds, unless the
        # agent's RPC is itself on this machine (a local validator).
        rehearsed = self.rehearsal and not self.on_machine(sol.rpc_url or self.settings.solana_rpc_url)
        sandbox = SandboxEndpoints(self.sandbox_url) if self.sandbox_url and (rehearsed or not has_key) else None
        return build_trader(config, settings=self.settings, db=self.deps.db, clock=self.deps.clock,
                            http=self.http, sandbox=sandbox, sandbox_seed=self.settings.sandbox_seed,
                            runtime=self.deps.runtime, prices_cache=self.prices_cache)

    def llm_for(self, config: AgentConfig) -> LLMProvider:
        """One provider per (provider, base URL, key), wrapped with recording, metrics, budget and breaker.

        An engine key is only ever sent to the engine's base URL for it: an agent with its own
        ``llm_config.base_url`` gets its own ``llm_config.api_key`` there, or no key at all, over
        the network (never through the in-process sandbox transport). Fallbacks of other
        providers keep their own engine URL and key.
        The daily token budget is read live at every call (``PUT /config``).
        """
        name, own_url, own_key = config.llm_provider, config.llm_config.base_url, config.llm_config.api_key
        if self.rehearsal and own_url and not self.on_machine(own_url):  # nothing leaves the machine
            log.warning("llm_base_url_ignored_in_rehearsal", agent_id=config.id)
            own_url, own_key = None, None
        settings = self.llm_settings
        if own_url:
            if name in ("openai", "grok") and own_key is None:  # the agent config refuses this; never fall back
                raise ConfigError(f"agent {config.id}: llm_config.base_url needs llm_config.api_key with "
                                  f"llm_provider {name}; the engine's key is only sent to its own base URL")
            url_field, key_field = _LLM_FIELDS.get(name, _LLM_FIELDS["openai-compatible"])
            settings = settings.model_copy(update={url_field: own_url, key_field: own_key})
        elif own_key is not None and name in _LLM_FIELDS:
            settings = settings.model_copy(update={_LLM_FIELDS[name][1]: own_key})
        fingerprint = hashlib.sha256(_plain(own_key).encode()).hexdigest()[:16] if own_key is not None else ""
        cache_key = f"{name}@{own_url or ''}#{fingerprint}"
        if cache_key not in self.providers:
            if own_key is not None:
                add_secrets([_plain(own_key)])
            metrics, runtime = self.deps.metrics, self.deps.runtime
            self.providers[cache_key] = build_provider(
                name, settings, http_client=None if own_url else self._llm_http(), clock=self.deps.clock,
                db=self.deps.db, on_call=prometheus_hook(metrics), on_breaker=metrics.set_breaker,
                daily_budget=lambda: runtime.llm_daily_token_budget, redact=redact)
        return self.providers[cache_key]

    def _llm_http(self) -> httpx2.AsyncClient | None:
        # In-process sandbox: the SDK must go through the ASGI transport too.
        return self.http if self.deps.sandbox is not None else None

    @asynccontextmanager
    async def starting(self, agents: Sequence[AgentRuntime]) -> AsyncIterator[None]:
        """Around the start of many agents at once: their sandbox X accounts are issued ahead,
        in a few batch calls instead of one call each (what no agent took is dropped after)."""
        wanted = {sandbox_username(a.id): a.config.name or a.id for a in agents
                  if a.user_id is None and self._sandbox_keys(a.config)}
        if self.accounts is None or len(wanted) < 2:
            yield
            return
        await self.accounts.prefetch(wanted)
        try:
            yield
        finally:
            self.accounts.forget()

    async def on_agent_ready(self, agent: AgentRuntime) -> None:
        """Connect the agent's accounts (X account, wallet) before it starts."""
        if agent.user_id is None:
            await agent.social.connect()
            agent.user_id, agent.username = await self._whoami(agent)
            remember_me = getattr(agent.social, "remember_me", None)  # X: our posts are cached complete
            if remember_me is not None:
                remember_me(Account(agent.user_id, agent.username))
            self.deps.services.connected(agent)
        if agent.memory is not None:
            await agent.memory.seed_initial(agent.id, agent.config.initial_memory)
        if agent.trader is not None:
            if self.sandbox_url and agent.trader.jupiter.base_url.startswith(self.sandbox_url):
                assert self.http is not None
                await fund_sandbox_wallet(self.http, SandboxEndpoints(self.sandbox_url),
                                          agent.trader.wallet.address)
            await agent.trader.reconcile()

    async def _whoami(self, agent: AgentRuntime) -> tuple[str, str]:
        """The agent's X id and username: remembered from an earlier start when the keys are the
        same account, so restarts do not spend ``GET /2/users/me`` (75 per 15 minutes on X); known
        from the issuance when the sandbox issued the keys (a real X account still asks X).

        Keys that X refuses (401/403) raise an :class:`AuthError` naming the agent, where the
        keys came from and what to check; the manager retries the start with backoff.
        """
        states = self.deps.services.states
        creds = getattr(agent.social, "credentials", None)
        known = (await states.get(agent.id)).x_account or {}
        if creds is not None and creds.user_id and known.get("id") == creds.user_id and known.get("username"):
            return str(known["id"]), str(known["username"])
        issued = self._issued.get(agent.id)
        try:
            if issued is not None and creds is not None and creds.user_id == issued.id:
                me = issued  # keys the sandbox just issued name their account: no call to X to start
            else:
                me = await agent.social.get_me()
        except ProviderError as exc:
            origin = self._x_keys_from.get(agent.id)
            if origin is None or exc.status not in (401, 403):
                raise
            raise AuthError(f"agent {agent.id!r}: X refused the keys in {origin} (GET /2/users/me answered "
                            f"{exc.status}); check that they are the four OAuth 1.0a values of the agent's own "
                            "account, that the app has Read and write permission and that the access token was "
                            "generated again after any permission change", service="x", status=exc.status) from None
        await states.merge(agent.id, {"x_account": {"id": me.id, "username": me.username}}, self.deps.clock.now())
        return me.id, me.username

    def social_for(self, config: AgentConfig, seed: int = 0) -> SocialClient:
        """The agent's social client, unconnected: X when the agent has X keys (file,
        ``TWITTER_*_<ID>``, ``TWITTER_*``) or a sandbox runs, else a dry-run client.
        ``seed`` makes its retry jitter reproducible."""
        if self.uses_sandbox or self._x_keys(config)[0].is_set:
            spec = ClientSpec(config.id, self.deps.clock, keys=lambda: self._x_account(config), http=self.http,
                              rng=random.Random(f"x:{seed}"), breaker=self.x_breaker, x_cache=self.x_cache)
            return build_client("x", spec)
        return build_client("dry-run", ClientSpec(config.id, self.deps.clock))

    async def _x_account(self, config: AgentConfig) -> XAccount:
        """Where and as whom the agent calls X, looked up when it connects: its own keys (file),
        else ``TWITTER_*_<ID>``/``TWITTER_*``, else a sandbox account.

        Under ``simulate`` and ``--sandbox-url`` (a rehearsal: nothing leaves the machine) every
        agent gets a sandbox account and keys are ignored, unless ``TWITTER_API_BASE_URL`` points
        at that very sandbox (keys issued by it).
        """
        creds, origin = self._x_keys(config)
        base_url = self.settings.twitter_api_base_url
        if self._sandbox_keys(config, creds):
            if creds.is_set:
                self._log_ignored_keys(config.id, origin)
            creds = await self._sandbox_account(config)
            base_url = f"{self.sandbox_url}/x"
            self._x_keys_from.pop(config.id, None)
        else:
            self._x_keys_from[config.id] = origin
        add_secrets(creds.secrets())
        return XAccount(creds, base_url)

    def _sandbox_keys(self, config: AgentConfig, creds: TwitterCredentials | None = None) -> bool:
        """Whether the agent gets a sandbox account: a rehearsal ignores X keys (unless
        ``TWITTER_API_BASE_URL`` is that sandbox), else it has none (``creds``: its keys, if known)."""
        if not self.uses_sandbox:
            return False
        if self.rehearsal and not self.settings.twitter_api_base_url.startswith(str(self.sandbox_url)):
            return True
        return not (creds if creds is not None else self._x_keys(config)[0]).is_set

    def _x_keys(self, config: AgentConfig) -> tuple[TwitterCredentials, str]:
        """The agent's X keys and where they come from, in words an operator can act on."""
        own, own_env = config.twitter_credentials, agent_keys(config.id)
        shared = TwitterCredentials.from_settings(self.settings, config.id, own_env=own_env)
        if own is not None and own.has_user_context:
            creds = TwitterCredentials.of(api_key=own.api_key, api_secret=own.api_key_secret,
                                          access_token=own.access_token,
                                          access_token_secret=own.access_token_secret,
                                          bearer_token=own.bearer_token or shared.bearer_token)
            return creds, (f"{config.source or 'the agent file'}: twitter_credentials "
                           "(apiKey, apiKeySecret, accessToken, accessTokenSecret)")
        suffix = env_suffix(config.id)
        if own_env:
            return shared, f"the environment: TWITTER_*_{suffix} (e.g. TWITTER_ACCESS_TOKEN_{suffix})"
        return shared, "the environment: TWITTER_API_KEY, TWITTER_API_SECRET, TWITTER_ACCESS_TOKEN, " \
                       "TWITTER_ACCESS_TOKEN_SECRET"

    def _log_ignored_keys(self, agent_id: str, origin: str) -> None:
        """Once per engine: a rehearsal never sends anyone's keys to X."""
        if not self._ignored_keys_logged:
            self._ignored_keys_logged = True
            log.warning("x_keys_ignored_in_sandbox", agent_id=agent_id, keys=origin,
                        detail="simulate and --sandbox-url are rehearsals: every agent gets a sandbox X "
                               "account and X keys from agent files or TWITTER_* are not used")

    async def _sandbox_account(self, config: AgentConfig) -> TwitterCredentials:
        """The agent's sandbox X account (a refusal is a ProviderError: a start failed, retried)."""
        assert self.accounts is not None
        issued = await self.accounts.issue(config.id, config.name or config.id)
        self._issued[config.id] = issued.account
        return issued.credentials

    async def reload_credentials(self, fresh: Settings, agents: Mapping[str, AgentRuntime],
                                 running: Collection[str]) -> set[str]:
        """Adopt the X, LLM and Solana credentials of ``fresh`` (the environment read again).

        LLM keys apply in place: the providers are rebuilt and every agent gets its new one.
        Returns the running agents whose X keys (``TWITTER_*``, ``TWITTER_*_<ID>``) or wallet
        (``SOLANA_PRIVATE_KEY_<ID>``, ``JUPITER_API_KEY``) changed: restarting just those
        agents rebuilds their clients. Old keys are never used again once this returns.
        ``agents`` are the engine's runtimes, ``running`` the ids of those running.
        """
        changed = {name for name in CREDENTIAL_FIELDS if _plain(getattr(self.settings, name))
                   != _plain(getattr(fresh, name))}
        sandbox_llm = self.llm_settings is not self.settings
        for name in changed:
            setattr(self.settings, name, getattr(fresh, name))
            if sandbox_llm and name not in LLM_KEY_FIELDS:
                setattr(self.llm_settings, name, getattr(fresh, name))
        if sandbox_llm and changed & LLM_KEY_FIELDS and self.settings.has_llm_credentials():
            self.llm_settings = self.settings  # real LLM keys now: the sandbox's are no longer used
        add_secrets(self.settings.secret_values())
        if changed & LLM_KEY_FIELDS:
            old, self.providers = self.providers, {}
            for agent in agents.values():
                agent.llm = self.llm_for(agent.config)
            for provider in old.values():
                await provider.aclose()
        return {agent.id for agent in agents.values()
                if agent.id in running and self._keys_changed(agent, changed)}

    def _keys_changed(self, agent: AgentRuntime, changed: set[str]) -> bool:
        own = agent.config.twitter_credentials
        current = getattr(agent.social, "credentials", None)
        if current is not None and not (own is not None and own.has_user_context):
            wanted = TwitterCredentials.from_settings(self.settings, agent.id)
            if (wanted.has_user_context or wanted.bearer_token) and wanted != current:
                return True
        if agent.trader is not None:
            if "jupiter_api_key" in changed:
                return True
            secret = agent_secret("SOLANA_PRIVATE_KEY", agent.id)
            if secret:
                return parse_keypair(secret).pubkey() != agent.trader.wallet.public_key
        return False

    async def tweet_stream(self) -> TweetStream | None:
        """The app's filtered stream: the sandbox's app account when agents are on the sandbox, else
        ``TWITTER_BEARER_TOKEN`` at ``TWITTER_API_BASE_URL``; None without a bearer token or with the
        in-process sandbox (its transport cannot stream)."""
        if self.deps.sandbox is not None or self.http is None:
            return None
        if self.uses_sandbox and (self.rehearsal or not self.settings.has_x_credentials()):
            response = await self.http.post(f"{self.sandbox_url}/sandbox/x/accounts",
                                            json={"username": "puppet_stream", "name": "Puppet Engine app"})
            bearer, base_url = str(response.json()["bearer_token"]), f"{self.sandbox_url}/x"
        elif self.settings.twitter_bearer_token is not None:
            bearer, base_url = _plain(self.settings.twitter_bearer_token), self.settings.twitter_api_base_url
        else:
            return None
        add_secrets([bearer])
        return TweetStream(self.http, base_url, bearer, self.deps.clock)

    def executor_for(self, agent: AgentRuntime, action: Action) -> ActionExecutor | None:
        if action.kind == "trade" and agent.trader is not None:
            return TradeExecutor(agent.trader)
        return None
