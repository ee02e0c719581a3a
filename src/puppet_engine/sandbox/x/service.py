"""The X API v2 emulator as a sandbox service: ``/x/2/...`` and ``/sandbox/x/...``.

Options come from ``SandboxConfig``: ``x_rate_limit_profile`` (payg, free, basic, pro),
``x_public_base_url`` (the base URL OAuth signatures are checked against), and in
``extra``: ``x_duplicate_window`` (seconds, default 86400), ``x_reply_policy``
(``summoned`` or ``open``), ``x_oauth_skew`` (seconds, default 300) and
``x_delete_missing`` (``not-found``: 404, or ``ok``: ``{"deleted": false}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response
from starlette.types import ASGIApp

from puppet_engine.sandbox.service import SandboxHost, SandboxService
from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x.admin import build_admin_router
from puppet_engine.sandbox.x.auth import Authenticator
from puppet_engine.sandbox.x.limits import RateLimits
from puppet_engine.sandbox.x.routes import XApi
from puppet_engine.sandbox.x.state import XRules, XState
from puppet_engine.sandbox.x.stream import StreamHub


class XService(SandboxService):
    """Accounts, tweets, OAuth 1.0a, rate limits and X's error bodies, in memory."""

    name = "x"
    prefix = "/x"

    def __init__(self, sandbox: SandboxHost) -> None:
        super().__init__(sandbox)
        config = sandbox.config
        extra = config.extra
        rules = XRules(duplicate_window=float(extra.get("x_duplicate_window", 24 * 3600.0)),
                       reply_policy=str(extra.get("x_reply_policy", "summoned")),
                       delete_missing=str(extra.get("x_delete_missing", "not-found")))
        self.state = XState(sandbox.rng, rules)
        self.auth = Authenticator(self.state, public_base_url=config.x_public_base_url,
                                  skew=float(extra.get("x_oauth_skew", 300.0)))
        self.limits = RateLimits(config.x_rate_limit_profile)
        self.stats: dict[str, int] = {}  # API answers by status code (GET /sandbox/x/stats)
        self.consumer_stats: dict[str, int] = {}  # calls by the consumer key that signed them (valid or not)
        self.stream = StreamHub(self, getattr(sandbox, "faults", None))  # filtered stream and its rules
        self._app = XApi(self, self.stream).app()

    def asgi_app(self) -> ASGIApp:
        return self._app

    def admin_router(self) -> APIRouter | None:
        return build_admin_router(self)

    def fault_response(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        """X's own error body for an injected status; a 429 also carries the rate-limit headers."""
        extra = dict(headers or {})
        if status == 429:
            reset = int(self.sandbox.clock.now()) + 60
            extra = {"x-rate-limit-limit": "1", "x-rate-limit-remaining": "0",
                     "x-rate-limit-reset": str(reset), **extra}
        return px.json_response(body if body is not None else px.fault_body(status), status, extra)

    def garbage_response(self) -> Response:
        return Response('{"data":{"id":"1","te', status_code=200, media_type="application/json")

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state.snapshot(), "profile": self.limits.profile}

    def restore(self, data: dict[str, Any]) -> None:
        self.state.restore(data.get("state", {}))
        self.limits.set_profile(data.get("profile", self.limits.profile))
