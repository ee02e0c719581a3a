"""Health checks: components register an async check, ``check_all`` aggregates them.

A check returns a :class:`ComponentHealth`, or simply a status (``"ok"``,
``"degraded"``, ``"down"``), a ``(status, detail)`` pair, or ``None`` for ok.
An exception or a timeout counts as ``down`` with the reason as detail (redacted).

The overall status is ``down`` when any *critical* component is down, ``degraded``
when anything else is not ok (a degraded component, or a non-critical one down),
and ``ok`` otherwise. The API serves it on ``/health``; load balancers should treat
only ``down`` as unhealthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from puppet_engine.observability.logging import redact

Status = Literal["ok", "degraded", "down"]
_STATUSES = ("ok", "degraded", "down")

CheckResult = Any  # ComponentHealth | Status | tuple[Status, str] | None
CheckFn = Callable[[], Awaitable[CheckResult]]


@dataclass(frozen=True)
class ComponentHealth:
    """State of one dependency or subsystem at check time."""

    name: str
    status: Status
    detail: str = ""
    latency_ms: float | None = None
    critical: bool = True


@dataclass(frozen=True)
class HealthReport:
    """All components and the overall status."""

    status: Status
    components: list[ComponentHealth] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"status": ..., "components": {name: {...}}}``."""
        return {
            "status": self.status,
            "components": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.components},
        }


@dataclass
class _Registered:
    check: CheckFn
    critical: bool
    timeout: float


def overall_status(components: list[ComponentHealth]) -> Status:
    """``down`` if a critical component is down; ``degraded`` if anything else is not ok."""
    if any(c.status == "down" and c.critical for c in components):
        return "down"
    if any(c.status != "ok" for c in components):
        return "degraded"
    return "ok"


def _coerce(name: str, result: CheckResult, critical: bool) -> ComponentHealth:
    if result is None:
        return ComponentHealth(name, "ok", critical=critical)
    if isinstance(result, ComponentHealth):
        return replace(result, name=name, critical=critical)
    if isinstance(result, str) and result in _STATUSES:
        return ComponentHealth(name, result, critical=critical)  # type: ignore[arg-type]
    if isinstance(result, tuple) and len(result) == 2 and result[0] in _STATUSES:
        return ComponentHealth(name, result[0], str(result[1]), critical=critical)
    return ComponentHealth(name, "down", f"check returned {type(result).__name__}, expected a status",
                           critical=critical)


class HealthRegistry:
    """Named health checks, run concurrently, each under its own timeout."""

    def __init__(self, *, timer: Callable[[], float] = time.perf_counter) -> None:
        self._checks: dict[str, _Registered] = {}
        self._timer = timer

    def register(self, name: str, check: CheckFn, *, critical: bool = True, timeout: float = 5.0) -> None:
        """Add (or replace) the check called ``name``; a non-critical one can only degrade."""
        self._checks[name] = _Registered(check, critical, timeout)

    def unregister(self, name: str) -> None:
        """Forget a check (no error if unknown)."""
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def check(self, name: str) -> ComponentHealth:
        """Run one check; never raises."""
        entry = self._checks[name]
        start = self._timer()
        try:
            result = await asyncio.wait_for(entry.check(), timeout=entry.timeout)
            health = _coerce(name, result, entry.critical)
        except TimeoutError:
            health = ComponentHealth(name, "down", f"check timed out after {entry.timeout:g}s", critical=entry.critical)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            detail = redact(f"{type(exc).__name__}: {exc}")
            health = ComponentHealth(name, "down", detail, critical=entry.critical)
        elapsed = (self._timer() - start) * 1000.0
        if health.latency_ms is None:
            health = replace(health, latency_ms=round(elapsed, 3))
        return health

    async def check_all(self) -> HealthReport:
        """Run every check concurrently and aggregate."""
        names = list(self._checks)
        components = list(await asyncio.gather(*(self.check(n) for n in names)))
        return HealthReport(overall_status(components), components)
