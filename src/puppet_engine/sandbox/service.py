"""The contract every emulator mounted on the sandbox server implements, and what it may
read of the sandbox that holds it (:class:`SandboxHost`, :class:`SandboxConfig`)."""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from puppet_engine.clock import Clock

if TYPE_CHECKING:
    from fastapi import APIRouter


@dataclass
class SandboxConfig:
    """How the sandbox behaves; every field has a safe default for local use."""

    seed: int = 7
    openai_key: str = "sk-sandbox"
    crowd_rate: float = 0.0  # crowd mentions per minute across all agents (0 = none)
    x_rate_limit_profile: str = "payg"
    x_public_base_url: str = ""  # base URL OAuth signatures are checked against; "" = as reached
    snapshot_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SandboxHost(Protocol):
    """What an emulator reads of the sandbox it is mounted on (``puppet_engine.sandbox.Sandbox``)."""

    config: SandboxConfig
    clock: Clock
    rng: random.Random  # the sandbox's one seeded random source

    def service(self, name: str) -> Any:
        """Another emulator by name (the crowd mentions agents through ``x``)."""
        ...


class SandboxService(ABC):
    """One emulated external system: X, the OpenAI API, Solana RPC, Jupiter.

    ``name`` is what faults and the admin surface call it; ``prefix`` is where its
    API is mounted (``/x``, ``/openai``, ``/solana``, ``/jupiter``).
    """

    name: ClassVar[str]
    prefix: ClassVar[str]

    def __init__(self, sandbox: SandboxHost) -> None:
        self.sandbox = sandbox

    @abstractmethod
    def asgi_app(self) -> ASGIApp:
        """The emulator's API, mounted at ``prefix``."""

    def admin_router(self) -> APIRouter | None:
        """Extra admin routes, mounted under ``/sandbox/<name>``."""
        return None

    def fault_response(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        """The error this service would really send with ``status`` (override per protocol)."""
        content = body if body is not None else {"error": f"injected fault {status}"}
        return JSONResponse(content, status_code=status, headers=headers)

    def garbage_response(self) -> Response:
        """A truncated JSON body with a 200, as a broken proxy might send."""
        return Response(json.dumps({"data": {"id": "1", "text": "trunc"}})[:17], status_code=200,
                        media_type="application/json")

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (crowd, market ticks)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background work."""

    def snapshot(self) -> dict[str, Any]:
        """Serialisable state for the optional file snapshot."""
        return {}

    def restore(self, data: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Load what :meth:`snapshot` produced."""
