"""Jupiter's swap API (Metis v1, legacy v6) and price API v3, over an injected httpx2 client.

``JupiterAPI(base_url, api_key=…, http=…)``: ``quote`` → :class:`Quote` (the raw
quote object is kept and sent back to ``/swap`` unchanged), ``swap`` →
:class:`SwapTransaction` (an unsigned v0 transaction and its
``lastValidBlockHeight``), ``prices`` → :class:`TokenPrice` by mint.

Errors are translated here: no route / token not tradable / same mints →
``TradeRejected`` (rules ``no_route``, ``token_not_tradable``, ``same_token``: the trade
cannot happen as asked); 429 → ``RateLimited`` (retry from ``x-ratelimit-reset``);
401/403 → ``AuthError``; 5xx and transport failures → ``ServiceUnavailable``;
unreadable bodies → ``BadResponse``; any other 4xx → ``ProviderError``. The API key
travels in ``x-api-key`` and never appears in messages or ``repr()``. An optional
:class:`~puppet_engine.resilience.CircuitBreaker` and
:class:`~puppet_engine.resilience.RetryPolicy` apply to every request (by default none
and a single try); every request is safe to repeat (a swap request only builds a transaction).

Prices are cached when a :func:`price_cache` is given (one per process, shared by every
agent's client): :data:`PRICE_TTL_SECONDS`. Quotes and swaps never are: what a swap
executes is always asked for at that moment.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from pydantic import SecretStr
from solders.transaction import VersionedTransaction

from puppet_engine.caching import Counter, ReadCache
from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
    TradeRejected,
)
from puppet_engine.observability.upstream import upstream
from puppet_engine.resilience import NO_RETRY, CircuitBreaker, RetryPolicy, transient

DEFAULT_BASE_URL = "https://api.jup.ag/swap/v1"
# Jupiter's price API follows the last swaps and moves every few seconds; agents sample it
# for market analysis (trends over hours) and to size a trade that its quote then prices.
# Agents deciding within the same half minute share one price; a minute would be stale.
PRICE_TTL_SECONDS = 30.0
MAX_PRICES = 4096  # mints
PriceCache = ReadCache[tuple[str, str], "TokenPrice"]
SERVICE = "jupiter"
_REJECTIONS = {"COULD_NOT_FIND_ANY_ROUTE": "no_route", "NO_ROUTES_FOUND": "no_route",
               "TOKEN_NOT_TRADABLE": "token_not_tradable", "CIRCULAR_ARBITRAGE_IS_DISABLED": "same_token",
               "ROUTE_PLAN_DOES_NOT_CONSUME_ALL_THE_AMOUNT": "no_route", "MARKET_NOT_FOUND": "no_route"}


@dataclass(frozen=True)
class Quote:
    """A Jupiter quote; amounts in raw base units. ``raw`` is what ``/swap`` gets back."""

    input_mint: str
    output_mint: str
    in_amount: int
    out_amount: int
    other_amount_threshold: int
    swap_mode: str
    slippage_bps: int
    price_impact_pct: float  # a fraction: 0.01 is 1 %
    route: tuple[str, ...]  # AMM labels, in order
    context_slot: int | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def price_impact_percent(self) -> float:
        return self.price_impact_pct * 100.0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Quote:
        try:
            return cls(
                input_mint=body["inputMint"], output_mint=body["outputMint"], in_amount=int(body["inAmount"]),
                out_amount=int(body["outAmount"]), other_amount_threshold=int(body["otherAmountThreshold"]),
                swap_mode=body.get("swapMode", "ExactIn"), slippage_bps=int(body.get("slippageBps", 0)),
                price_impact_pct=float(body.get("priceImpactPct") or 0.0),
                route=tuple(str(step.get("swapInfo", {}).get("label", "?")) for step in body.get("routePlan", [])),
                context_slot=body.get("contextSlot"), raw=body,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"quote: unexpected body: {exc}", service=SERVICE) from exc


@dataclass(frozen=True)
class SwapTransaction:
    transaction: VersionedTransaction  # unsigned; the user is the only required signer
    last_valid_block_height: int
    prioritization_fee_lamports: int = 0
    compute_unit_limit: int | None = None
    simulation_error: Any = None


@dataclass(frozen=True)
class TokenPrice:
    mint: str
    usd_price: float
    price_change_24h: float | None = None  # percent
    liquidity: float | None = None
    decimals: int | None = None


class JupiterAPI:
    """Client of one Jupiter deployment (production, lite-api, legacy v6, or the sandbox)."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str | SecretStr | None = None,
                 http: httpx2.AsyncClient | None = None, price_url: str | None = None, timeout: float = 15.0,
                 clock: Clock | None = None, breaker: CircuitBreaker | None = None,
                 retry: RetryPolicy | None = None, prices_cache: PriceCache | None = None) -> None:
        self.prices_cache = prices_cache  # (price URL, mint) → price, shared by the process's clients
        self.base_url = base_url.rstrip("/")
        self.price_url = (price_url or price_url_for(self.base_url)).rstrip("/")
        self._api_key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._owns_http = http is None
        self.http = http or httpx2.AsyncClient(timeout=timeout)
        self.timeout = timeout
        self.clock = clock or WallClock()
        self.breaker, self.retry = breaker, retry or RetryPolicy(NO_RETRY)

    def __repr__(self) -> str:
        return f"JupiterAPI({self.base_url!r}, api_key={'set' if self._api_key else 'none'})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def quote(self, input_mint: str, output_mint: str, amount: int, *, slippage_bps: int = 50,
                    swap_mode: str = "ExactIn", only_direct_routes: bool = False) -> Quote:
        params = {"inputMint": input_mint, "outputMint": output_mint, "amount": str(int(amount)),
                  "slippageBps": str(int(slippage_bps)), "swapMode": swap_mode,
                  "onlyDirectRoutes": "true" if only_direct_routes else "false"}
        body = await self._request("GET", f"{self.base_url}/quote", "quote", params=params)
        return Quote.from_json(body)

    async def swap(self, quote: Quote, user_public_key: str, *, wrap_and_unwrap_sol: bool = True,
                   dynamic_compute_unit_limit: bool = True,
                   prioritization_fee_lamports: int | dict[str, Any] | str | None = "auto") -> SwapTransaction:
        payload: dict[str, Any] = {"quoteResponse": quote.raw, "userPublicKey": user_public_key,
                                   "wrapAndUnwrapSol": wrap_and_unwrap_sol,
                                   "dynamicComputeUnitLimit": dynamic_compute_unit_limit}
        if prioritization_fee_lamports is not None:
            payload["prioritizationFeeLamports"] = prioritization_fee_lamports
        body = await self._request("POST", f"{self.base_url}/swap", "swap", json=payload)
        try:
            tx = VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"]))
            return SwapTransaction(tx, int(body["lastValidBlockHeight"]),
                                   int(body.get("prioritizationFeeLamports") or 0), body.get("computeUnitLimit"),
                                   body.get("simulationError"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"swap: unexpected body: {exc}", service=SERVICE) from exc

    async def prices(self, mints: list[str]) -> dict[str, TokenPrice]:
        """USD prices by mint (v3); mints without a reliable price are simply absent."""
        out: dict[str, TokenPrice] = {}
        unique = list(dict.fromkeys(mints))
        if self.prices_cache is not None:
            cached = {mint: self.prices_cache.get((self.price_url, mint)) for mint in unique}
            out.update({mint: price for mint, price in cached.items() if price is not None})
            unique = [mint for mint in unique if mint not in out]
        for start in range(0, len(unique), 50):
            chunk = unique[start:start + 50]
            body = await self._request("GET", self.price_url, "price", params={"ids": ",".join(chunk)})
            if not isinstance(body, dict):
                raise BadResponse("price: expected an object keyed by mint", service=SERVICE)
            for mint, entry in body.items():
                if not isinstance(entry, dict) or entry.get("usdPrice") is None:
                    continue
                out[mint] = TokenPrice(mint, float(entry["usdPrice"]), _opt_float(entry.get("priceChange24h")),
                                       _opt_float(entry.get("liquidity")), entry.get("decimals"))
                if self.prices_cache is not None:
                    self.prices_cache.put((self.price_url, mint), out[mint])
        return out

    async def _request(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        return await self.retry.call(lambda: self._once(method, url, what, **kwargs), clock=self.clock,
                                     breaker=self.breaker, where=what, retry_on=transient, unwell=transient)

    async def _once(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        try:
            with upstream("jupiter") as call:
                resp = await self.http.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
                call.status = resp.status_code
        except httpx2.TimeoutException as exc:
            raise ServiceUnavailable(f"{what}: timed out after {self.timeout:.0f}s", service=SERVICE) from exc
        except httpx2.TransportError as exc:
            raise ServiceUnavailable(f"{what}: cannot reach {self.base_url}: {exc.__class__.__name__}",
                                     service=SERVICE) from exc
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as exc:
                raise BadResponse(f"{what}: body is not JSON", service=SERVICE, status=200) from exc
        raise self._error(what, resp)

    def _error(self, what: str, resp: httpx2.Response) -> Exception:
        status = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("error") or body.get("message") or resp.text[:200] or f"HTTP {status}")
        if status == 429:
            return RateLimited(f"{what}: {message}", service=SERVICE, retry_after=self._retry_after(resp))
        if status in (401, 403):
            return AuthError(f"{what}: {message}", service=SERVICE, status=status)
        if status >= 500:
            return ServiceUnavailable(f"{what}: HTTP {status}: {message}", service=SERVICE, status=status)
        code = body.get("errorCode")
        if code in _REJECTIONS:
            return TradeRejected(_REJECTIONS[code], f"Jupiter: {message}")
        return ProviderError(f"{what}: HTTP {status}: {message}", service=SERVICE, status=status)

    def _retry_after(self, resp: httpx2.Response) -> float:
        reset = resp.headers.get("x-ratelimit-reset")
        if reset:
            try:
                return max(1.0, float(reset) - self.clock.now())
            except ValueError:
                pass
        try:
            return max(1.0, float(resp.headers.get("retry-after", "")))
        except ValueError:
            return 2.0


def price_url_for(base_url: str) -> str:
    """Where the price API lives next to a swap base URL (``…/swap/v1`` → ``…/price/v3``)."""
    for suffix in ("/swap/v1", "/v6"):
        if base_url.endswith(suffix):
            root = base_url[: -len(suffix)]
            if "quote-api.jup.ag" in root:
                return "https://lite-api.jup.ag/price/v3"
            return f"{root}/price/v3"
    return f"{base_url}/price/v3"


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def price_cache(timer: Callable[[], float], counter: Counter | None = None, *, enabled: bool = True) -> PriceCache:
    """The process's cache of Jupiter prices (see :data:`PRICE_TTL_SECONDS`)."""
    return ReadCache("jupiter_price", maxsize=MAX_PRICES, ttl=PRICE_TTL_SECONDS, timer=timer, counter=counter,
                     enabled=enabled)
