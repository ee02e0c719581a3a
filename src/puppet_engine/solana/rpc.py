"""Solana JSON-RPC through solana-py's ``AsyncClient``, with errors translated once, here.

solana-py 0.41 builds its own ``httpx2.AsyncClient``; :class:`SolanaRpc` swaps in an
injected one when given (an ASGI transport over the in-process sandbox, or a shared
pool), and never closes a client it did not create. Every call goes through
:meth:`SolanaRpc.call`, which maps failures onto :mod:`puppet_engine.errors`:
HTTP 429 → ``RateLimited``, 401/403 → ``AuthError``, 5xx, timeouts and connection
errors → ``ServiceUnavailable``, unparsable replies → ``BadResponse``, JSON-RPC
errors → ``ProviderError`` (``ServiceUnavailable`` for node-unhealthy/internal).
An optional :class:`~puppet_engine.resilience.CircuitBreaker` and
:class:`~puppet_engine.resilience.RetryPolicy` apply to every call (by default none and
a single try: the trader decides what an outage means for a trade); ``sendTransaction``
is never retried here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.errors import SerdeJSONError
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.observability.upstream import upstream
from puppet_engine.resilience import NO_RETRY, CircuitBreaker, RetryPolicy, transient
from puppet_engine.solana.tokens import TOKEN_PROGRAMS

T = TypeVar("T")
SERVICE = "solana"


@dataclass(frozen=True)
class SignatureState:
    """What the cluster knows of a signature: its slot, error (JSON form) and commitment rank."""

    slot: int
    err: Any
    confirmation: int  # 0 processed, 1 confirmed, 2 finalized

    @property
    def confirmed(self) -> bool:
        return self.confirmation >= 1


@dataclass(frozen=True)
class TokenHolding:
    """One SPL token account of an owner."""

    account: str
    mint: str
    amount: int
    decimals: int
    program_id: str


@dataclass(frozen=True)
class SimulationReport:
    err: Any
    logs: list[str]
    units_consumed: int | None

    def to_json(self) -> dict[str, Any]:
        return {"err": self.err, "logs": self.logs[-40:], "units_consumed": self.units_consumed}


class SolanaRpc:
    """The RPC calls the wallet and the trader need, over one ``AsyncClient``."""

    def __init__(self, url: str, *, http: httpx2.AsyncClient | None = None, commitment: Commitment = Confirmed,
                 timeout: float = 30.0, breaker: CircuitBreaker | None = None, retry: RetryPolicy | None = None,
                 clock: Clock | None = None) -> None:
        self.url = url
        self.breaker, self.retry = breaker, retry or RetryPolicy(NO_RETRY)
        self.clock = clock or WallClock()
        self.client = AsyncClient(url, commitment=commitment, timeout=timeout)
        self._own_session = self.client._provider.session
        if http is not None:
            # solana-py has no parameter for this; its provider posts through ``session``.
            self.client._provider.session = http

    def __repr__(self) -> str:
        return f"SolanaRpc({self.url.split('?')[0]!r})"  # query strings often carry provider API keys

    async def aclose(self) -> None:
        await self._own_session.aclose()

    async def call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, idempotent: bool = True,
                   **kwargs: Any) -> T:
        """Run one solana-py call through the breaker and retry policy, translating its failures
        (``what`` names it in messages). ``idempotent=False`` calls are tried once."""
        return await self.retry.call(lambda: self._once(what, fn, *args, **kwargs), clock=self.clock,
                                     breaker=self.breaker, where=what, unwell=transient,
                                     retry_on=transient if idempotent else _never)

    async def _once(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            with upstream("solana"):
                return await fn(*args, **kwargs)
        except RPCException as exc:
            raise translate_rpc_error(what, exc) from exc
        except SolanaRpcException as exc:
            raise translate_http_error(what, exc.__cause__ or exc) from exc
        except httpx2.HTTPError as exc:
            raise translate_http_error(what, exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, SerdeJSONError) as exc:
            raise BadResponse(f"{what}: unreadable reply from {self!r}: {exc}", service=SERVICE) from exc

    # -- reads -----------------------------------------------------------------------

    async def lamports(self, owner: Pubkey) -> int:
        return (await self.call("getBalance", self.client.get_balance, owner)).value

    async def block_height(self) -> int:
        return (await self.call("getBlockHeight", self.client.get_block_height)).value

    async def token_holdings(self, owner: Pubkey) -> list[TokenHolding]:
        """Every token account of ``owner`` under SPL Token and Token-2022."""
        found = []
        for program in TOKEN_PROGRAMS:
            resp = await self.call("getTokenAccountsByOwner", self.client.get_token_accounts_by_owner_json_parsed,
                                   owner, TokenAccountOpts(program_id=program))
            for keyed in resp.value:
                info: Any = keyed.account.data.parsed["info"]
                amount = info["tokenAmount"]
                found.append(TokenHolding(str(keyed.pubkey), info["mint"], int(amount["amount"]),
                                          int(amount["decimals"]), str(program)))
        return found

    async def mint_info(self, mint: Pubkey) -> tuple[int, str] | None:
        """(decimals, token program) of a mint, or ``None`` if it is not a mint."""
        resp = await self.call("getAccountInfo", self.client.get_account_info_json_parsed, mint)
        account = resp.value
        if account is None or not hasattr(account.data, "parsed"):
            return None
        parsed: Any = account.data.parsed
        if parsed.get("type") != "mint":
            return None
        return int(parsed["info"]["decimals"]), str(account.owner)

    async def signature_state(self, signature: Signature) -> SignatureState | None:
        resp = await self.call("getSignatureStatuses", self.client.get_signature_statuses, [signature])
        status = resp.value[0]
        if status is None:
            return None
        rank = int(status.confirmation_status) if status.confirmation_status is not None else 0
        err = _err_json(status.err)
        return SignatureState(status.slot, err, rank)

    async def transaction(self, signature: Signature) -> Any:
        """The confirmed transaction with meta (``EncodedConfirmedTransactionWithStatusMeta``) or None."""
        resp = await self.call("getTransaction", self.client.get_transaction, signature, "json",
                               Confirmed, 0)
        return resp.value

    # -- writes ----------------------------------------------------------------------

    async def simulate(self, tx: VersionedTransaction) -> SimulationReport:
        resp = await self.call("simulateTransaction", self.client.simulate_transaction, tx, True)
        value = resp.value
        return SimulationReport(_err_json(value.err), list(value.logs or []), value.units_consumed)

    async def send(self, tx: VersionedTransaction, *, skip_preflight: bool = True) -> Signature:
        opts = TxOpts(skip_preflight=skip_preflight, skip_confirmation=True, max_retries=0)
        return (await self.call("sendTransaction", self.client.send_raw_transaction, bytes(tx), opts,
                                idempotent=False)).value


def _never(exc: BaseException) -> bool:
    return False


def _err_json(err: Any) -> Any:
    if err is None:
        return None
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


def translate_rpc_error(what: str, exc: RPCException) -> ProviderError:
    detail = exc.args[0] if exc.args else exc
    message = getattr(detail, "message", None) or str(detail)
    name = type(detail).__name__
    if "NodeUnhealthy" in name or "InternalError" in name:
        return ServiceUnavailable(f"{what}: node error: {message}", service=SERVICE)
    if "429" in message or "Too many requests" in message:
        return RateLimited(f"{what}: {message}", service=SERVICE, retry_after=1.0)
    return ProviderError(f"{what}: {message}", service=SERVICE)


def translate_http_error(what: str, exc: BaseException) -> ProviderError:
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        if status == 429:
            retry = exc.response.headers.get("retry-after", "1")
            try:
                retry_after = float(retry)
            except ValueError:
                retry_after = 1.0
            return RateLimited(f"{what}: RPC rate limit", service=SERVICE, retry_after=retry_after)
        if status in (401, 403):
            return AuthError(f"{what}: RPC refused the credentials (HTTP {status})", service=SERVICE, status=status)
        if status >= 500:
            return ServiceUnavailable(f"{what}: RPC answered HTTP {status}", service=SERVICE, status=status)
        return ProviderError(f"{what}: RPC answered HTTP {status}", service=SERVICE, status=status)
    if isinstance(exc, httpx2.TransportError):
        return ServiceUnavailable(f"{what}: cannot reach the RPC node: {exc.__class__.__name__}", service=SERVICE)
    return BadResponse(f"{what}: {exc.__class__.__name__}: {exc}", service=SERVICE)
