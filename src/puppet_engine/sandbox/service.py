"""The contract every emulator mounted on the sandbox server implements."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from fastapi import APIRouter

    from puppet_engine.sandbox.app import Sandbox


class SandboxService(ABC):
    """One emulated external system: X, the OpenAI API, Solana RPC, Jupiter.

    ``name`` is what faults and the admin surface call it; ``prefix`` is where its
    API is mounted (``/x``, ``/openai``, ``/solana``, ``/jupiter``).
    """

    name: ClassVar[str]
    prefix: ClassVar[str]

    def __init__(self, sandbox: Sandbox) -> None:
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
