"""Run an ASGI app on a loopback port inside the current event loop (uvicorn); run the
process's main coroutine on the fastest event loop installed (:func:`run_main`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def run_main(main: Coroutine[Any, Any, T], *, fast_loop: bool = True) -> T:
    """``asyncio.run(main)``, on uvloop when it is installed (a default dependency, not on
    Windows): the engine's own CPU per event is lower on it. Without it, or with
    ``fast_loop=False``, on asyncio's own loop; the code is the same on both."""
    if fast_loop:
        try:
            import uvloop  # optional: absent on Windows
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: How long an idle kept-alive connection stays open. Longer than its clients keep theirs
#: (httpx2: 5 s; load balancers: 60 s), so the client, not the server, closes it: a server
#: closing first races the client's next request on it (a reset, a 502 at the balancer).
KEEP_ALIVE_SECONDS = 75


class BackgroundServer:
    """An uvicorn server as an asyncio task: ``await start()``, ``await stop()``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 *, forwarded_allow_ips: str = "") -> None:
        self.host = host
        self.port = port or free_port(host)
        # X-Forwarded-For/-Proto are believed only from the listed proxies (FORWARDED_ALLOW_IPS);
        # uvicorn's own default trusts loopback, where any local process could forge a client address.
        trusted = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level=log_level, lifespan="on",
            access_log=False, loop="asyncio", proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            log_config=None,  # no handlers of its own: its lines go through ours (format, redaction)
        )
        self.server = uvicorn.Server(config)
        # The process owns SIGINT/SIGTERM (graceful engine shutdown): uvicorn must not take them.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name=f"uvicorn:{self.port}")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start (port in use …)
                raise RuntimeError(f"server on {self.url} exited before starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except TimeoutError:
            self.server.force_exit = True
            self._task.cancel()
        self._task = None
