"""The sandbox server: every emulator under one port, plus the admin surface.

``/x`` X API v2, ``/openai`` OpenAI-compatible LLM API, ``/solana`` Solana JSON-RPC on
LiteSVM, ``/jupiter`` Jupiter swap API; ``/sandbox`` for tests and operators
(faults, accounts, market control, what was posted).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puppet_engine.clock import Clock, WallClock
from puppet_engine.sandbox.faults import FaultInjector, FaultSpec, hang
from puppet_engine.sandbox.service import SandboxConfig, SandboxService

# Each emulator, by module path and class; mounted in this order.
SERVICE_CLASSES: list[str] = [
    "puppet_engine.sandbox.x.XService",
    "puppet_engine.sandbox.llm.OpenAIService",
    "puppet_engine.sandbox.chain.SolanaRpcService",
    "puppet_engine.sandbox.chain.JupiterService",
    "puppet_engine.sandbox.crowd.CrowdService",
]


class Sandbox:
    """Holds the emulators, their shared clock, random source and fault registry."""

    def __init__(self, config: SandboxConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = clock or WallClock()
        self.rng = random.Random(self.config.seed)
        self.faults = FaultInjector()
        self.services: dict[str, SandboxService] = {}
        self._started = False
        for dotted in SERVICE_CLASSES:
            module_name, _, class_name = dotted.rpartition(".")
            cls = getattr(importlib.import_module(module_name), class_name)
            service = cls(self)
            self.services[service.name] = service
        self.app = self._build_app()

    def service(self, name: str) -> Any:
        return self.services[name]

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI):
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title="Puppet Engine sandbox", lifespan=lifespan, docs_url="/sandbox/docs",
                      openapi_url="/sandbox/openapi.json")
        app.include_router(self._admin_router(), prefix="/sandbox")
        for service in self.services.values():
            router = service.admin_router()
            if router is not None:
                app.include_router(router, prefix=f"/sandbox/{service.name}")
            gate = _FaultGate(service, self.faults)
            # The bare prefix too (a JSON-RPC endpoint is POST /solana): a Mount alone would redirect it.
            app.router.routes.append(Route(service.prefix, gate))
            app.mount(service.prefix, gate)
        return app

    def _admin_router(self) -> APIRouter:
        router = APIRouter(tags=["sandbox"])

        @router.get("/health")
        async def health() -> dict[str, Any]:
            return {"status": "ok", "services": sorted(self.services), "time": self.clock.now()}

        @router.get("/faults")
        async def list_faults() -> dict[str, Any]:
            return {"faults": self.faults.describe()}

        @router.post("/faults", status_code=201)
        async def add_fault(spec: FaultSpec) -> dict[str, Any]:
            fault = self.faults.add(spec)
            return {"id": fault.id, "remaining": fault.remaining}

        @router.delete("/faults")
        async def clear_faults(service: str | None = None) -> dict[str, Any]:
            return {"cleared": self.faults.clear(service)}

        return router

    async def start(self) -> None:
        """Start background work (idempotent: an engine restart may call it again)."""
        if self._started:
            return
        self._started = True
        if self.config.snapshot_path and self.config.snapshot_path.exists():
            data = json.loads(self.config.snapshot_path.read_text())
            for name, service in self.services.items():
                if name in data:
                    service.restore(data[name])
        for service in self.services.values():
            await service.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for service in self.services.values():
            await service.stop()
        if self.config.snapshot_path:
            data = {name: s.snapshot() for name, s in self.services.items()}
            tmp = self.config.snapshot_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.config.snapshot_path)


class _FaultGate:
    """ASGI wrapper in front of one emulator: applies armed faults, else passes through."""

    def __init__(self, service: SandboxService, faults: FaultInjector) -> None:
        self.service = service
        self.inner: ASGIApp = service.asgi_app()
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path = scope["path"][len(scope.get("root_path", "")):] or scope["path"]
        fault = self.faults.take(self.service.name, scope["method"], path)
        if fault is None:
            await self.inner(scope, receive, send)
            return
        spec = fault.spec
        if spec.latency_ms:
            # A slow server has the whole request: a client that gives up meanwhile does not undo it.
            receive = await _buffered(receive)
            await asyncio.sleep(spec.latency_ms / 1000)
        kind = fault.kind
        if kind == "latency":
            await self.inner(scope, receive, send)
            return
        if kind == "timeout":
            await hang()
            return
        if kind == "garbage":
            response = self.service.garbage_response()
        else:
            response = self.service.fault_response(spec.status or 500, spec.body, spec.headers or None)
        await response(scope, receive, send)


async def _buffered(receive: Receive) -> Receive:
    """Read the request body now; the returned ``receive`` replays it."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


def create_sandbox(config: SandboxConfig | None = None, clock: Clock | None = None) -> Sandbox:
    return Sandbox(config, clock)
