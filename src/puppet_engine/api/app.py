"""The FastAPI application: routes, authentication, one error format, the dashboard.

``create_app(engine)`` builds the app around a started (or starting) engine, which it
drives only through :class:`~puppet_engine.control.EngineControl`;
it shares the engine's event loop, so serve it with uvicorn in the same loop
(``puppet_engine.serving.BackgroundServer``), as ``puppet-engine run`` does.
The app never starts or stops the engine itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puppet_engine import __version__
from puppet_engine.api.auth import (
    KEY_FILE,
    AuthConfig,
    FailureLimiter,
    KeyRing,
    keyring_from_settings,
    require,
)
from puppet_engine.api.deps import ApiContext
from puppet_engine.api.errors import install_error_handlers
from puppet_engine.api.feed import FeedHub
from puppet_engine.api.routes import (
    agents,
    commands,
    engagement,
    events,
    feed,
    memory,
    nodes,
    replay,
    review,
    system,
    trading,
)
from puppet_engine.api.routes import history as history_routes
from puppet_engine.control import EngineControl
from puppet_engine.observability.health import HealthRegistry
from puppet_engine.observability.logging import update_secrets
from puppet_engine.observability.metrics import Metrics, get_metrics

DASHBOARD_DIR = Path(__file__).parent / "dashboard"

DESCRIPTION = """\
Watch and steer Puppet Engine's agents.

**Authentication**: every endpoint except `GET /health` and the dashboard page needs
`Authorization: Bearer <key>`; this document (`/openapi.json`) needs a `read` key.
Keys come from `PUPPET_API_KEYS` (`key:scope` pairs); scopes are `read` (GET endpoints),
`control` (agent actions, memory writes, news) and `admin` (configuration, system restart),
each implying the ones before it. Without `PUPPET_API_KEYS` a local admin key is generated
and kept in `.puppet_api_key`.

**Errors** always look like `{"error": {"code": "not_found", "message": "...", "details": ...}}`.
**Lists** are pages: `{"items": [...], "total": n, "limit": 50, "offset": 0}`.
"""

TAGS = [
    {"name": "agents", "description": "agents, their state and timeline; post, trade, start, stop, configure"},
    {"name": "memory", "description": "what each agent remembers, searchable by meaning"},
    {"name": "trading", "description": "balances, trade statistics and the trade audit trail"},
    {"name": "events", "description": "the event history and queue; news for the agents"},
    {"name": "feed", "description": "live activity as Server-Sent Events"},
    {"name": "review", "description": "posts, replies and trades held for a person's approval"},
    {"name": "history", "description": "an agent's state at any moment and its timeline"},
    {"name": "replay", "description": "exact and what-if replays of a recorded stretch, as background jobs"},
    {"name": "system", "description": "health, status, runtime settings, metrics"},
]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
]


class ObservedMiddleware:
    """Security headers on every response; request latency by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics: Metrics | None = get_metrics()
        # The histogram's child per (route template, status): finite, and looking it up again
        # (a lock and three dict lookups) was a visible part of a short request.
        self._latency: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in _SECURITY_HEADERS if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                child = self._latency.get((template, status))
                if child is None:
                    child = self._latency[(template, status)] = self.metrics.api_request_latency.labels(
                        route=template, status=str(status))
                child.observe(time.perf_counter() - started)


def create_app(engine: EngineControl, *, keys: KeyRing | None = None, cors_origins: list[str] | None = None,
               key_file: Path | str = KEY_FILE, announce: TextIO | None = None,
               feed_interval: float = 0.5, auth_failures_per_minute: int = 10) -> FastAPI:
    """The API and dashboard for ``engine``.

    ``keys`` default to ``PUPPET_API_KEYS`` (settings), or a generated local admin key
    kept in ``key_file``; ``cors_origins`` default to ``API_CORS_ORIGINS`` (comma-separated;
    empty = no cross-origin access).
    """
    settings = engine.settings
    if keys is None:
        secret = settings.puppet_api_keys.get_secret_value() if settings.puppet_api_keys else None
        keys = keyring_from_settings(secret, key_file=key_file, announce=announce)
    update_secrets(keys.secret_values())
    if cors_origins is None:
        cors_origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]

    hub = FeedHub(engine.db, interval=feed_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.stop()
        ctx.close()

    # No Swagger page (it loads from a CDN that the CSP rightly blocks); the OpenAPI document
    # needs a read key; no trailing-slash redirects (their Location would echo the Host header).
    app = FastAPI(title="Puppet Engine API", version=__version__, description=DESCRIPTION, openapi_tags=TAGS,
                  lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    ctx = ApiContext(engine=engine, health=HealthRegistry(), feed=hub)
    _register_checks(ctx)
    app.state.ctx = ctx
    app.state.auth = AuthConfig(keys, FailureLimiter(engine.db, max_failures=auth_failures_per_minute,
                                                     window_seconds=60.0))
    install_error_handlers(app)
    for module in (system, agents, commands, memory, trading, events, feed, nodes, review, engagement, replay):
        app.include_router(module.router)
    app.include_router(history_routes.router)
    # Ahead of every other route, so that the plain requests they take never reach FastAPI's.
    app.router.routes[:0] = [*agents.lean_routes(), *system.lean_routes()]
    _mount_openapi(app)
    _mount_dashboard(app)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(ObservedMiddleware)
    return app


def _register_checks(ctx: ApiContext) -> None:
    names = set(ctx.health.names)
    if "database" not in names:
        ctx.health.register("database", lambda: system.database_check(ctx), critical=True, timeout=5.0)
    if "event_queue" not in names:
        ctx.health.register("event_queue", lambda: system.queue_check(ctx), critical=False, timeout=5.0)
    if "embedder" not in names:
        ctx.health.register("embedder", lambda: system.embedder_check(ctx), critical=False, timeout=5.0)


def _mount_openapi(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("read"))])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


def _mount_dashboard(app: FastAPI) -> None:
    index = DASHBOARD_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")


def close_streams(app: FastAPI) -> None:
    """End the open ``/feed`` streams; call before stopping the server so shutdown does not wait on them."""
    app.state.ctx.feed.close()
