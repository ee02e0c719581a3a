"""X rate limits: per-endpoint windows per user and per app, from a selectable profile.

Profiles follow PROTOCOLS §1.5: ``payg`` (pay-per-usage, the default), and the legacy
``free``, ``basic`` and ``pro`` tiers. User-context calls count against the endpoint's
per-user windows, app-only (bearer) calls against its per-app windows; ``POST /2/tweets``
also counts against the 24-hour user and app caps reported in the ``x-user-limit-24hour-*``
and ``x-app-limit-24hour-*`` headers. Windows are fixed, start with their first call and
read the sandbox clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

M15, H24 = 15 * 60.0, 24 * 3600.0

Window = tuple[int, float]  # (calls, seconds)


@dataclass(frozen=True)
class EndpointLimits:
    user: tuple[Window, ...] = ()
    app: tuple[Window, ...] = ()
    user_daily: int | None = None  # POST /2/tweets only
    app_daily: int | None = None


def _e(user: Any = (), app: Any = (), user_daily: int | None = None, app_daily: int | None = None) -> EndpointLimits:
    def windows(spec: Any) -> tuple[Window, ...]:
        if isinstance(spec, int):
            return ((spec, M15),)
        return tuple(spec)
    return EndpointLimits(windows(user), windows(app), user_daily, app_daily)


# Lookups are not in the tier tables; X documents 900/15m per user and 450 (tweets) or 300 (users) per app.
_LOOKUPS = {
    "GET /2/tweets/:id": _e(900, 450), "GET /2/tweets": _e(900, 450),
    "GET /2/users/:id": _e(900, 300), "GET /2/users/by/username/:username": _e(900, 300),
}

PROFILES: dict[str, dict[str, EndpointLimits]] = {
    "payg": {
        "POST /2/tweets": _e(100, user_daily=10_000, app_daily=10_000),
        "DELETE /2/tweets/:id": _e(50),
        "GET /2/users/me": _e(75),
        "GET /2/users/:id/mentions": _e(300, 450),
        "GET /2/users/:id/tweets": _e(900, 10_000),
        "GET /2/tweets/search/recent": _e(300, 450),
        "likes": _e(((50, M15), (1000, H24))),
        "retweets": _e(50),
        **_LOOKUPS,
    },
    "free": {
        "POST /2/tweets": _e(((17, H24),), user_daily=17, app_daily=17),
        "DELETE /2/tweets/:id": _e(((17, H24),)),
        "GET /2/users/me": _e(((25, H24),)),
        "GET /2/users/:id/mentions": _e(1, 1),
        "GET /2/users/:id/tweets": _e(1, 1),
        "GET /2/tweets/search/recent": _e(1, 1),
        "likes": _e(1),
        "retweets": _e(1),
        **{k: _e(1, 1) for k in _LOOKUPS},
    },
    "basic": {
        "POST /2/tweets": _e(((100, H24),), user_daily=100, app_daily=1667),
        "DELETE /2/tweets/:id": _e(5),
        "GET /2/users/me": _e(((250, H24),)),
        "GET /2/users/:id/mentions": _e(10, 15),
        "GET /2/users/:id/tweets": _e(5, 10),
        "GET /2/tweets/search/recent": _e(60, 60),
        "likes": _e(((200, H24),)),
        "retweets": _e(5),
        **{k: _e(15, 15) for k in _LOOKUPS},
    },
    "pro": {
        "POST /2/tweets": _e(100, user_daily=10_000, app_daily=10_000),
        "DELETE /2/tweets/:id": _e(50),
        "GET /2/users/me": _e(75),
        "GET /2/users/:id/mentions": _e(300, 450),
        "GET /2/users/:id/tweets": _e(900, 1500),
        "GET /2/tweets/search/recent": _e(300, 450),
        "likes": _e(((1000, H24),)),
        "retweets": _e(50),
        **_LOOKUPS,
    },
}


@dataclass
class _Window:
    limit: int
    seconds: float
    reset: float
    used: int = 0


@dataclass
class Decision:
    """Whether a call may proceed, and the headers X sends with its answer."""

    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)


class RateLimits:
    """Counts calls per (endpoint, user or app, window) against the active profile."""

    def __init__(self, profile: str = "payg") -> None:
        self.profile = "payg"
        self.overrides: dict[str, EndpointLimits] = {}
        self.windows: dict[tuple[str, str, str, float], _Window] = {}
        self.set_profile(profile)

    def set_profile(self, profile: str, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        """Switch profile (clearing every window); ``overrides`` maps endpoint → {"user", "app", "window"}."""
        if profile not in PROFILES:
            raise ValueError(f"unknown X rate-limit profile {profile!r}; expected one of {sorted(PROFILES)}")
        self.profile = profile
        self.windows.clear()
        self.overrides = {}
        for endpoint, spec in (overrides or {}).items():
            seconds = float(spec.get("window", M15))
            base = PROFILES[profile].get(endpoint, EndpointLimits())
            self.overrides[endpoint] = EndpointLimits(
                user=((int(spec["user"]), seconds),) if spec.get("user") is not None else base.user,
                app=((int(spec["app"]), seconds),) if spec.get("app") is not None else base.app,
                user_daily=spec.get("user_daily", base.user_daily), app_daily=spec.get("app_daily", base.app_daily),
            )

    def limits_for(self, endpoint: str) -> EndpointLimits:
        return self.overrides.get(endpoint) or PROFILES[self.profile].get(endpoint, EndpointLimits())

    def describe(self) -> dict[str, Any]:
        table = {**PROFILES[self.profile], **self.overrides}
        return {"profile": self.profile, "limits": {
            k: {"user": [list(w) for w in v.user], "app": [list(w) for w in v.app],
                "user_daily": v.user_daily, "app_daily": v.app_daily} for k, v in table.items()}}

    def _window(self, endpoint: str, key: str, limit: int, seconds: float, now: float) -> _Window:
        slot = (endpoint, key, str(limit), seconds)
        window = self.windows.get(slot)
        if window is None or now >= window.reset:
            window = _Window(limit, seconds, reset=now + seconds)
            self.windows[slot] = window
        return window

    def check(self, endpoint: str, *, user_id: str | None, app_id: str, now: float) -> Decision:
        """Count one call; ``allowed`` is False (nothing counted) when any window is spent."""
        spec = self.limits_for(endpoint)
        scoped = ([("user:" + user_id, w) for w in spec.user] if user_id else [("app:" + app_id, w) for w in spec.app])
        daily: list[tuple[str, str, int]] = []
        if spec.user_daily is not None and user_id:
            daily.append(("x-user-limit-24hour", "user:" + user_id, spec.user_daily))
        if spec.app_daily is not None:
            daily.append(("x-app-limit-24hour", "app:" + app_id, spec.app_daily))
        windows = [self._window(endpoint, key, n, s, now) for key, (n, s) in scoped]
        daily_windows = [(prefix, self._window(endpoint + "#daily", key, n, H24, now)) for prefix, key, n in daily]
        every = windows + [w for _, w in daily_windows]
        allowed = all(w.used < w.limit for w in every)
        if allowed:
            for w in every:
                w.used += 1
        headers: dict[str, str] = {}
        if windows:
            primary = min(windows, key=lambda w: (w.seconds, w.limit))
            headers.update(_headers("x-rate-limit", primary))
        for prefix, w in daily_windows:
            headers.update(_headers(prefix, w))
        return Decision(allowed, headers)


def _headers(prefix: str, window: _Window) -> dict[str, str]:
    return {f"{prefix}-limit": str(window.limit), f"{prefix}-remaining": str(max(0, window.limit - window.used)),
            f"{prefix}-reset": str(math.ceil(window.reset))}
