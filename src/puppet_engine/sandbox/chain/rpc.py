"""``/solana``: a Solana JSON-RPC endpoint over the sandbox's LiteSVM chain.

The JSON-RPC 2.0 envelope as validators serve it: single and batch requests,
errors with HTTP 200 (``-32700`` parse error, ``-32600`` invalid request,
``-32601`` method not found, ``-32602`` invalid params, ``-32002`` preflight
failure …). Method handlers live in :mod:`.rpc_methods`. Injected faults come
back the way hosted RPC providers fail: 429 with a JSON-RPC error body and
``Retry-After``, 5xx as short plain-text pages.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from puppet_engine.sandbox.chain.admin import admin_router
from puppet_engine.sandbox.chain.encoding import RpcError
from puppet_engine.sandbox.chain.persistence import restore_world, snapshot_world
from puppet_engine.sandbox.chain.rpc_methods import METHODS
from puppet_engine.sandbox.chain.world import SolanaWorld
from puppet_engine.sandbox.service import SandboxService

log = structlog.get_logger("puppet_engine.sandbox.solana")

MAX_BATCH = 100
_STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                504: "Gateway Timeout"}


class SolanaRpcService(SandboxService):
    """The Solana JSON-RPC emulator (LiteSVM-backed)."""

    name = "solana"
    prefix = "/solana"

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.world = SolanaWorld.of(sandbox)

    def asgi_app(self) -> ASGIApp:
        return self._serve

    def admin_router(self) -> APIRouter:
        return admin_router(self.world)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.method == "OPTIONS":
            response: Response = Response(status_code=200, headers={"Allow": "POST, OPTIONS"})
        elif request.method != "POST":
            response = PlainTextResponse("Used HTTP Method is not allowed. POST or OPTIONS is required",
                                         status_code=405)
        else:
            response = self.handle(await request.body())
        await response(scope, receive, send)

    def handle(self, body: bytes) -> Response:
        """One HTTP request: a JSON-RPC call or a batch of them."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _json(_error(None, RpcError(-32700, "Parse error")))
        self.world.tick()
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return _json(_error(None, RpcError(-32600, "Invalid request")))
            return _json([self.call(item) for item in payload])
        return _json(self.call(payload))

    def call(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, RpcError(-32600, "Invalid request"))
        req_id = request.get("id")
        if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
            return _error(req_id, RpcError(-32600, "Invalid request"))
        handler = METHODS.get(request["method"])
        if handler is None:
            return _error(req_id, RpcError(-32601, "Method not found"))
        params = request.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error(req_id, RpcError(-32602, "Invalid params: expected an array"))
        try:
            result = handler(self.world.ledger, params)
        except RpcError as exc:
            return _error(req_id, exc)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            return _error(req_id, RpcError(-32602, f"Invalid params: {exc}"))
        except Exception:
            log.exception("solana_rpc_internal_error", method=request["method"])
            return _error(req_id, RpcError(-32603, "Internal error"))
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    def fault_response(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        if body is not None:
            return JSONResponse(body, status_code=status, headers=headers)
        if status == 429:
            message = "Too many requests for a specific RPC call, contact your app developer or support@rpcpool.com."
            merged = {"Retry-After": "1", **(headers or {})}
            return JSONResponse({"jsonrpc": "2.0", "error": {"code": 429, "message": message}, "id": None},
                                status_code=429, headers=merged)
        if status in (401, 403):
            return JSONResponse({"jsonrpc": "2.0", "error": {"code": -32401 if status == 401 else -32403,
                                                             "message": "Unauthorized" if status == 401
                                                             else "Forbidden"}, "id": None},
                                status_code=status, headers=headers)
        return PlainTextResponse(_STATUS_TEXT.get(status, f"HTTP {status}"), status_code=status, headers=headers)

    def snapshot(self) -> dict[str, Any]:
        return snapshot_world(self.world)

    def restore(self, data: dict[str, Any]) -> None:
        restore_world(self.world, data)

    def garbage_response(self) -> Response:
        return Response('{"jsonrpc":"2.0","result":{"context":{"sl', status_code=200, media_type="application/json")


def _error(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.body(), "id": req_id}


def _json(content: Any) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")
