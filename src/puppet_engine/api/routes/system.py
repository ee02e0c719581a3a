"""Health, status, runtime settings, restart of every agent, Prometheus metrics."""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from puppet_engine import __version__
from puppet_engine.api.auth import ApiKey, require
from puppet_engine.api.deps import ApiContext, Ctx
from puppet_engine.api.lean import LeanRoute
from puppet_engine.api.schemas import (
    HealthDetails,
    HealthOut,
    RestartResult,
    SettingsUpdate,
    StatusOut,
    responses,
)
from puppet_engine.observability.metrics import get_metrics
from puppet_engine.storage.repos import events as event_rows
from puppet_engine.storage.repos import outbox

router = APIRouter(tags=["system"])
# Names of settings that hold credentials. Whole words of the name, so a count such as
# ``llm_daily_token_budget`` is shown while ``twitter_access_token`` is masked.
_SECRET_NAME = re.compile(r"(?i)(^|_)(keys?|secrets?|token|password)$")
OVERDUE_SECONDS = 300.0
_admin = require("admin")  # one callable: FastAPI runs it once per request however often it is named


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut, "description": "down"}},
            summary="Liveness for load balancers (no authentication): ok, degraded or down")
async def health(ctx: Ctx) -> JSONResponse:
    # Served by health_lean in front of it (see lean_routes) unless the request has a query.
    return await _health(ctx)


async def health_lean(request: Request) -> JSONResponse:
    """:func:`health` for the requests without a query its :class:`~puppet_engine.api.lean.LeanRoute` takes."""
    return await _health(request.app.state.ctx)


def lean_routes() -> list[LeanRoute]:
    """The routes to put in front of this router's: load balancers poll ``/health`` often."""
    return [LeanRoute.beside_endpoint(router, health, health_lean)]


async def _health(ctx: ApiContext) -> JSONResponse:
    report = await ctx.health_report()
    body = {"status": report.status, "role": ctx.engine.role, "node": ctx.engine.owner}
    return JSONResponse(body, status_code=503 if report.status == "down" else 200)


@router.get("/health/details", response_model=HealthDetails, dependencies=[Depends(require("read"))],
            responses={**responses(), 503: {"model": HealthDetails, "description": "a critical component is down"}},
            summary="Every component's health with details and latency")
async def health_details(ctx: Ctx) -> JSONResponse:
    report = await ctx.health_report()
    return JSONResponse(report.to_dict(), status_code=503 if report.status == "down" else 200)


async def database_check(ctx: ApiContext) -> tuple[str, str]:
    await ctx.db.ping()
    return "ok", ctx.db.dialect


async def queue_check(ctx: ApiContext) -> tuple[str, str]:
    """Degraded when events of running agents wait well past their due time (the engine is behind)."""
    engine = ctx.engine
    running = list(engine.manager.running)
    if not running:
        return "ok", "no agent running"
    cutoff = engine.clock.now() - OVERDUE_SECONDS
    overdue = await event_rows.overdue_count(ctx.db, running, cutoff)
    load = engine.load()
    detail = f"{load.in_flight} in flight, {load.processed} processed"
    if overdue:
        return "degraded", f"{overdue} events overdue by more than {OVERDUE_SECONDS:.0f}s; {detail}"
    return "ok", detail


async def embedder_check(ctx: ApiContext) -> tuple[str, str]:
    """The memory embedder: ``loading`` while its model loads (memory writes wait), then ``ready``."""
    memory = ctx.engine.memory
    if memory is None:
        return "ok", "no memory store yet"
    embedder = memory.embedder
    if embedder.load_error:
        return "degraded", f"{embedder.name} failed to load: {embedder.load_error}"
    if not embedder.ready:
        return "ok", f"{embedder.name} loading; memory writes and searches wait for it"
    return "ok", f"{embedder.name} ready"


@router.get("/status", response_model=StatusOut, dependencies=[Depends(require("read"))], responses=responses(),
            summary="What the engine is doing: agents, queue, outbox")
async def status(ctx: Ctx) -> StatusOut:
    engine = ctx.engine
    event_counts = await event_rows.counts_by_status(ctx.db)
    action_counts = await outbox.counts_by_status(ctx.db)
    load = engine.load()
    return StatusOut(
        version=__version__, owner=engine.owner, role=engine.role, uptime_seconds=round(time.time() - ctx.started_at, 3),
        now=engine.clock.now(), database=ctx.db.dialect, sandbox=bool(engine.uses_sandbox),
        agents={"total": len(engine.manager.agents), "running": len(engine.manager.running)},
        engine={"concurrency": load.concurrency, "in_flight": load.in_flight,
                "processed": load.processed, "max_attempts": load.max_attempts},
        events=event_counts, actions=action_counts,
    )


def public_settings(settings: Any, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings as JSON with every secret replaced by ``"***"`` (or null when unset).

    ``runtime``: the live runtime settings, shown instead of the values read at start.
    """
    out: dict[str, Any] = {}
    for name, value in settings:
        if isinstance(value, SecretStr) or (value is not None and _SECRET_NAME.search(name)):
            out[name] = "***" if value else None
        elif name.endswith("_url") and isinstance(value, str):
            out[name] = _hide_url_secrets(value)
        else:
            out[name] = value
    out.update(runtime or {})
    return out


def _hide_url_secrets(value: str) -> str:
    """A URL without its password or query values (RPC providers put API keys in the query)."""
    if "://" not in value:
        return value
    try:
        url = make_url(value)
    except Exception:
        return "***"
    if url.query:
        url = url.set(query={name: "***" for name in url.query})
    return url.render_as_string(hide_password=True)


_SETTINGS_EXAMPLE = {"database_url": "sqlite:///puppet_engine.db", "log_level": "INFO", "engine_concurrency": 16,
                     "mention_poll_seconds": 60.0, "openai_api_key": "***", "twitter_api_key": None}


@router.get("/config", dependencies=[Depends(require("admin"))], response_model=dict[str, Any],
            responses={**responses(), 200: {"content": {"application/json": {"example": _SETTINGS_EXAMPLE}}}},
            summary="Engine settings, secrets redacted",
            response_description="every setting by name; secrets read '***'")
async def get_config(ctx: Ctx) -> dict[str, Any]:
    return public_settings(ctx.engine.settings, ctx.engine.runtime_values())


@router.put("/config", dependencies=[Depends(_admin)], response_model=dict[str, Any],
            responses={**responses(422), 200: {"content": {"application/json": {"example": _SETTINGS_EXAMPLE}}}},
            summary="Change runtime settings: persisted, applied here at once and by every process within seconds")
async def put_config(body: SettingsUpdate, ctx: Ctx,
                     key: Annotated[ApiKey, Depends(_admin)]) -> dict[str, Any]:
    """``trading_mode`` acts before the next trade, ``llm_daily_token_budget`` at the next LLM call,
    ``engine_concurrency`` at the next claim, ``event_max_attempts`` for events scheduled from now,
    ``mention_poll_seconds`` from each agent's next poll, ``log_level`` at once. Other settings are
    refused (422 naming the field): they are read once at start (set the variable and restart)."""
    engine = ctx.engine
    changes = body.model_dump(exclude_none=True)
    changed = await engine.apply_settings(changes, updated_by=key.label)
    logging.getLogger("puppet_engine.api").info("runtime settings changed: %s", ", ".join(sorted(changed)) or "none")
    return public_settings(engine.settings, engine.runtime_values())


@router.post("/system/restart", response_model=RestartResult, dependencies=[Depends(require("admin"))],
             responses=responses(), summary="Restart every running agent with fresh clients, on every node")
async def restart_all(ctx: Ctx, key: Annotated[ApiKey, Depends(require("admin"))],
                      response: Response) -> RestartResult:
    """``restarted``: the agents this node restarted at once (none on an api node); every worker
    restarts the agents it owns within seconds. The command's id is in the ``Command-Id`` header:
    ``GET /commands/{id}`` is ``applied`` once every live worker has, with each node's part in
    ``nodes``. The body keeps its earlier shape."""
    command = await ctx.engine.submit_command("restart_all", None, {}, key.label)
    response.headers["Command-Id"] = str(command["id"])
    return RestartResult(restarted=command.get("restarted", []))


@router.get("/metrics", dependencies=[Depends(require("read"))], response_class=Response,
            responses={**responses(), 200: {"content": {"text/plain": {"example": "puppet_posts_total{agent=\"coby\"} 3.0\n"}},
                                            "description": "Prometheus text exposition"}},
            summary="Prometheus metrics")
async def metrics(ctx: Ctx) -> Response:
    m = get_metrics()
    manager = ctx.engine.manager
    m.agents.labels(state="running").set(len(manager.running))
    m.agents.labels(state="stopped").set(len(manager.agents) - len(manager.running))
    body, content_type = m.render()
    return Response(body, media_type=content_type)
