"""Fault injection shared by every emulator: the next N matching calls fail on purpose.

A fault matches a service (``x``, ``openai``, ``solana``, ``jupiter``), an optional
HTTP method and an optional path (exact, or a prefix ending in ``*``, relative to
the service's mount point, e.g. ``/2/tweets``). It can answer with a status code
(and the service's own error body for that status), add latency, hang (a timeout
as the client sees it), or send garbage (truncated JSON). On an open streaming connection
(X's filtered stream) it can ``drop`` it or ``stall`` it (see ``sandbox/x/stream.py``).

One admin call is faulted too, because the engine's start depends on it: X's account
issuance, ``POST /sandbox/x/accounts`` (service ``x``, that path, or no path: X down as a
whole issues no keys either). Each use refuses one account, asked alone or in a batch.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

FaultKind = Literal["status", "latency", "timeout", "garbage", "drop", "stall"]
# Kinds that act on a streaming connection already open (the X filtered stream), not on a request.
STREAM_KINDS = ("drop", "stall")


class FaultSpec(BaseModel):
    """Body of ``POST /sandbox/faults``."""

    service: Literal["x", "openai", "solana", "jupiter"]
    path: str | None = Field(None, description="exact path under the service, or a prefix ending in *; "
                                               "/sandbox/x/accounts: X's account issuance")
    method: str | None = Field(None, description="GET, POST …; any when absent")
    status: int | None = Field(None, ge=100, le=599, description="answer with this status")
    kind: FaultKind | None = None
    count: int = Field(1, ge=1, description="how many matching calls fail")
    latency_ms: int = Field(0, ge=0, le=600_000)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


@dataclass
class Fault:
    id: int
    spec: FaultSpec
    remaining: int
    hits: int = 0

    @property
    def kind(self) -> FaultKind:
        if self.spec.kind:
            return self.spec.kind
        return "status" if self.spec.status else "latency"

    def matches(self, service: str, method: str, path: str) -> bool:
        s = self.spec
        if s.service != service or self.remaining <= 0:
            return False
        if s.method and s.method.upper() != method.upper():
            return False
        if s.path:
            if s.path.endswith("*"):
                return path.startswith(s.path[:-1])
            return path.rstrip("/") == s.path.rstrip("/")
        return True


@dataclass
class FaultInjector:
    """The registry of armed faults; consulted by the sandbox middleware."""

    faults: list[Fault] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(id=next(self._ids), spec=spec, remaining=spec.count)
        self.faults.append(fault)
        return fault

    def take(self, service: str, method: str, path: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        """The first armed fault matching this call (of one of ``kinds``; default: a request's kinds),
        consuming one of its uses."""
        for fault in self.faults:
            if fault.matches(service, method, path) and (fault.kind in kinds if kinds else
                                                         fault.kind not in STREAM_KINDS):
                fault.remaining -= 1
                fault.hits += 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def clear(self, service: str | None = None) -> int:
        before = len(self.faults)
        self.faults = [f for f in self.faults if service and f.spec.service != service]
        return before - len(self.faults)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": f.id, "remaining": f.remaining, "hits": f.hits, **f.spec.model_dump(exclude_none=True)}
            for f in self.faults
        ]


async def delay(fault: Fault) -> None:
    """What a fault does to an admin call before it answers: its latency, or a hang for ``timeout``."""
    if fault.spec.latency_ms:
        await asyncio.sleep(fault.spec.latency_ms / 1000)
    if fault.kind == "timeout":
        await hang()


async def hang(seconds: float = 3600.0) -> None:
    """Hold a request open as a dead upstream would (clients see their own timeout)."""
    await asyncio.sleep(seconds)
