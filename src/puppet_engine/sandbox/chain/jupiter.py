"""``/jupiter``: a Jupiter-compatible quote, swap and price API over the sandbox pools.

Routes (each also under ``/v6`` for the legacy quote API): ``GET /swap/v1/quote``,
``POST /swap/v1/swap``, ``GET /price/v3``, ``GET /price/v2``. Field names, decimal-
string amounts, error bodies (``{"error", "errorCode"}``), ``x-ratelimit-*`` and
``x-api-gateway-request-id`` headers follow Jupiter. Requests are counted per API
key (or keyless) in a 60-second sliding window; the budget is
``SandboxConfig.extra["jupiter_requests_per_minute"]`` (default 600).
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from solders.pubkey import Pubkey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from puppet_engine.sandbox.chain.admin import admin_router
from puppet_engine.sandbox.chain.encoding import error_json
from puppet_engine.sandbox.chain.swaps import DEFAULT_CU_PRICE, QuoteError, SwapRequest, best_route
from puppet_engine.sandbox.chain.world import SolanaWorld
from puppet_engine.sandbox.service import SandboxService

WINDOW = 60.0
_U64_MAX = 2**64 - 1
_PRIORITY_MICRO = {"medium": 10_000, "high": 50_000, "veryHigh": 200_000}


class JupiterService(SandboxService):
    """The Jupiter swap API emulator."""

    name = "jupiter"
    prefix = "/jupiter"

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.world = SolanaWorld.of(sandbox)
        self.limit = int(sandbox.config.extra.get("jupiter_requests_per_minute", 600))
        self._windows: dict[str, deque[float]] = defaultdict(deque)

    def asgi_app(self) -> ASGIApp:
        routes = []
        for base in ("/swap/v1", "/v6"):
            routes += [Route(f"{base}/quote", self._limited(self.quote), methods=["GET"]),
                       Route(f"{base}/swap", self._limited(self.swap), methods=["POST"])]
        routes += [Route("/price/v3", self._limited(self.price_v3), methods=["GET"]),
                   Route("/price/v2", self._limited(self.price_v2), methods=["GET"])]
        return Router(routes=routes)

    def admin_router(self) -> APIRouter:
        return admin_router(self.world)

    # -- gateway ---------------------------------------------------------------------

    def _limited(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            key = request.headers.get("x-api-key") or "keyless"
            now = self.sandbox.clock.now()
            window = self._windows[key]
            while window and window[0] <= now - WINDOW:
                window.popleft()
            window.append(now)
            headers = {"x-api-gateway-request-id": uuid.uuid4().hex,
                       "x-ratelimit-current": str(len(window)),
                       "x-ratelimit-remaining": str(self.limit - len(window)),
                       "x-ratelimit-reset": str(math.ceil(window[0] + WINDOW))}
            if len(window) > self.limit:
                return JSONResponse({"code": 429, "message": "[API Gateway] Too many requests"}, status_code=429,
                                    headers=headers)
            self.world.tick()
            try:
                response = await handler(request)
            except QuoteError as exc:
                return JSONResponse(exc.body(), status_code=exc.status,
                                    headers={"x-api-gateway-request-id": headers["x-api-gateway-request-id"]})
            response.headers.update(headers)
            return response
        return endpoint

    def fault_response(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        merged = {"x-api-gateway-request-id": uuid.uuid4().hex, **(headers or {})}
        if body is not None:
            return JSONResponse(body, status_code=status, headers=merged)
        if status == 429:
            reset = int(self.sandbox.clock.now() + 2)
            merged = {"x-ratelimit-remaining": "-1", "x-ratelimit-current": str(self.limit + 1),
                      "x-ratelimit-reset": str(reset), **merged}
            return JSONResponse({"code": 429, "message": "[API Gateway] Too many requests"}, status_code=429,
                                headers=merged)
        if status == 401:
            return JSONResponse({"code": 401, "message": "Invalid API key"}, status_code=401, headers=merged)
        if status == 403:
            return JSONResponse({"code": 403, "message": "API key does not have access to this endpoint"},
                                status_code=403, headers=merged)
        return JSONResponse({"error": "Internal Server Error" if status == 500 else f"upstream error {status}"},
                            status_code=status, headers=merged)

    # -- quote -----------------------------------------------------------------------

    def _mint(self, params: Any, name: str) -> str:
        value = params.get(name)
        if value is None:
            raise QuoteError(f"Failed to deserialize query string: missing field `{name}`")
        try:
            Pubkey.from_string(value)
        except ValueError:
            raise QuoteError(f"Invalid {name}") from None
        return str(value)

    def _tradable(self, mint: str) -> None:
        token = self.world.market.tokens.get(mint)
        if token is None or not token.listed:
            raise QuoteError(f"The token {mint} is not tradable", "TOKEN_NOT_TRADABLE")

    async def quote(self, request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        input_mint, output_mint = self._mint(q, "inputMint"), self._mint(q, "outputMint")
        amount = _u64(q, "amount", None)
        slippage = _u64(q, "slippageBps", 50)
        mode = q.get("swapMode", "ExactIn")
        if mode not in ("ExactIn", "ExactOut"):
            raise QuoteError(f"Query parameter swapMode cannot be parsed: unknown variant `{mode}`, "
                             "expected `ExactIn` or `ExactOut`")
        if input_mint == output_mint:
            raise QuoteError("Input and output mints are not allowed to be equal", "CIRCULAR_ARBITRAGE_IS_DISABLED")
        self._tradable(input_mint)
        self._tradable(output_mint)
        if amount == 0:
            raise QuoteError("Could not find any route", "COULD_NOT_FIND_ANY_ROUTE")
        exact_out = mode == "ExactOut"
        route = best_route(self.world.market, input_mint, output_mint, amount, exact_out=exact_out,
                           only_direct=q.get("onlyDirectRoutes", "false").lower() == "true")
        if exact_out:
            threshold = math.ceil(route.in_amount * (10_000 + slippage) / 10_000)
        else:
            threshold = route.out_amount * (10_000 - slippage) // 10_000
        body = {
            "inputMint": input_mint, "inAmount": str(route.in_amount), "outputMint": output_mint,
            "outAmount": str(route.out_amount), "otherAmountThreshold": str(threshold), "swapMode": mode,
            "slippageBps": slippage, "platformFee": None, "priceImpactPct": _decimal(route.price_impact),
            "routePlan": [{"swapInfo": {"ammKey": str(h.pool.key), "label": h.pool.label,
                                        "inputMint": h.input_mint, "outputMint": h.output_mint,
                                        "inAmount": str(h.in_amount), "outAmount": str(h.out_amount),
                                        "feeAmount": str(h.fee_amount), "feeMint": h.input_mint},
                           "percent": 100, "bps": 10_000} for h in route.hops],
            "contextSlot": self.world.ledger.slot, "timeTaken": round(time.perf_counter() - started, 6),
            "swapUsdValue": _decimal(route.in_amount / 10 ** self._decimals(input_mint)
                                     * (self.world.market.price_usd(input_mint) or 0.0)),
        }
        return JSONResponse(body)

    def _decimals(self, mint: str) -> int:
        return self.world.market.tokens[mint].info.decimals

    # -- swap ------------------------------------------------------------------------

    async def swap(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise QuoteError(f"Failed to parse the request body as JSON: {exc}") from None
        if not isinstance(body, dict):
            raise QuoteError("Failed to deserialize the JSON body into the target type: invalid type", status=422)
        for field in ("quoteResponse", "userPublicKey"):
            if field not in body:
                raise QuoteError(f"Failed to deserialize the JSON body into the target type: missing field "
                                 f"`{field}` at line 1 column {len(raw)}", status=422)
        try:
            user = Pubkey.from_string(body["userPublicKey"])
        except (ValueError, TypeError):
            raise QuoteError("Invalid userPublicKey") from None
        req = self._swap_request(body, user)
        built = self.world.swaps.build(req)
        simulation_error = None
        if body.get("dynamicComputeUnitLimit"):
            sim = self.world.ledger.simulate(built.transaction, sig_verify=False)
            if sim.err is not None:
                simulation_error = {"errorCode": "TRANSACTION_ERROR", "error": json.dumps(error_json(sim.err))}
        cu_price = req.cu_price
        fee_lamports = cu_price * req.cu_limit // 1_000_000
        return JSONResponse({
            "swapTransaction": base64.b64encode(bytes(built.transaction)).decode(),
            "lastValidBlockHeight": built.last_valid_block_height,
            "prioritizationFeeLamports": fee_lamports, "computeUnitLimit": req.cu_limit,
            "prioritizationType": {"computeBudget": {"microLamports": cu_price,
                                                     "estimatedMicroLamports": DEFAULT_CU_PRICE}},
            "simulationSlot": self.world.ledger.slot, "dynamicSlippageReport": None,
            "simulationError": simulation_error, "addressesByLookupTableAddress": None,
        })

    def _swap_request(self, body: dict[str, Any], user: Pubkey) -> SwapRequest:
        quote = body["quoteResponse"]
        try:
            input_mint, output_mint = str(quote["inputMint"]), str(quote["outputMint"])
            in_amount, out_amount = int(quote["inAmount"]), int(quote["outAmount"])
            threshold = int(quote["otherAmountThreshold"])
            exact_out = quote.get("swapMode", "ExactIn") == "ExactOut"
            keys = [step["swapInfo"]["ammKey"] for step in quote["routePlan"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise QuoteError(f"Failed to deserialize the JSON body into the target type: quoteResponse: {exc}",
                             status=422) from None
        self._tradable(input_mint)
        self._tradable(output_mint)
        pools = [self.world.market.pool_by_key(k) for k in keys]
        if not pools or any(p is None for p in pools):
            raise QuoteError("Failed to get swap and account metas: unknown market in routePlan",
                             "FAILED_TO_GET_SWAP_AND_ACCOUNT_METAS")
        cu_limit = 1_400_000
        cu_price = DEFAULT_CU_PRICE
        fee = body.get("prioritizationFeeLamports")
        micro = body.get("computeUnitPriceMicroLamports")
        if fee is not None and micro is not None:
            raise QuoteError("computeUnitPriceMicroLamports and prioritizationFeeLamports cannot be used together",
                             "INVALID_COMPUTE_UNIT_PRICE_AND_PRIORITIZATION_FEE")
        if isinstance(micro, int):
            cu_price = micro
        elif isinstance(fee, int):
            cu_price = fee * 1_000_000 // cu_limit
        elif isinstance(fee, dict) and "priorityLevelWithMaxLamports" in fee:
            level = fee["priorityLevelWithMaxLamports"]
            cu_price = _PRIORITY_MICRO.get(level.get("priorityLevel", "medium"), DEFAULT_CU_PRICE)
            cap = int(level.get("maxLamports", _U64_MAX)) * 1_000_000 // cu_limit
            cu_price = min(cu_price, cap)
        destination = body.get("destinationTokenAccount")
        return SwapRequest(
            user=user, input_mint=input_mint, output_mint=output_mint, in_amount=in_amount, out_amount=out_amount,
            threshold=threshold, exact_out=exact_out, pools=pools,  # type: ignore[arg-type]
            wrap_unwrap_sol=body.get("wrapAndUnwrapSol", True) is not False,
            destination=Pubkey.from_string(destination) if destination else None,
            cu_limit=cu_limit, cu_price=cu_price,
        )

    # -- prices ----------------------------------------------------------------------

    def _ids(self, request: Request) -> list[str]:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i.strip()]
        if not ids:
            raise QuoteError("Query parameter ids is required")
        if len(ids) > 50:
            raise QuoteError("Too many ids: at most 50 are allowed")
        return [i.strip() for i in ids]

    async def price_v3(self, request: Request) -> Response:
        market, out = self.world.market, {}
        for mint in self._ids(request):
            token = market.tokens.get(mint)
            price = market.price_usd(mint) if token and token.listed else None
            if token is None or price is None:
                continue  # no reliable price: omitted, as Jupiter does
            out[mint] = {"usdPrice": price, "blockId": self.world.ledger.slot, "decimals": token.info.decimals,
                         "priceChange24h": market.change_24h(mint), "liquidity": market.liquidity_usd(mint),
                         "createdAt": datetime.fromtimestamp(token.created_at, UTC).isoformat(timespec="milliseconds")
                         .replace("+00:00", "Z")}
        return JSONResponse(out)

    async def price_v2(self, request: Request) -> Response:
        market, data = self.world.market, {}
        for mint in self._ids(request):
            token = market.tokens.get(mint)
            price = market.price_usd(mint) if token and token.listed else None
            data[mint] = None if price is None else {"id": mint, "type": "derivedPrice", "price": _decimal(price)}
        return JSONResponse({"data": data, "timeTaken": 0.001})


def _u64(params: Any, name: str, default: int | None) -> int:
    text = params.get(name)
    if text is None:
        if default is None:
            raise QuoteError(f"Failed to deserialize query string: missing field `{name}`")
        return default
    if text == "":
        kind = "Empty"
    elif not text.isdigit():
        kind = "InvalidDigit"
    elif int(text) > _U64_MAX:
        kind = "PosOverflow"
    else:
        return int(text)
    raise QuoteError(f"Query parameter {name} cannot be parsed: ParseIntError {{ kind: {kind} }}")


def _decimal(value: float) -> str:
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"

