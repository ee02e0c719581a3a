"""The process's main coroutine runs on uvloop where it is installed, else on asyncio's loop;
the engine's code (SQLite inline, sockets, timers, threads) behaves the same on both."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import httpx2
import pytest

from puppet_engine.serving import BackgroundServer, run_main
from puppet_engine.storage import Database


async def _work(tmp: Path) -> tuple[str, int, int]:
    """A loop's worth of what the engine does: a database round trip, an HTTP call over loopback."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"pong"})

    db = Database(f"sqlite:///{tmp / 'loop.db'}")
    await db.migrate()
    await db.ping()
    await db.close()
    server = BackgroundServer(app)
    await server.start()
    try:
        async with httpx2.AsyncClient() as http:
            answer = await http.get(server.url)
    finally:
        await server.stop()
    await asyncio.sleep(0.01)
    return type(asyncio.get_running_loop()).__module__, answer.status_code, len(answer.content)


def test_asyncio_loop_when_asked(tmp_path: Path) -> None:
    module, status, size = run_main(_work(tmp_path), fast_loop=False)
    assert module.startswith("asyncio") and (status, size) == (200, 4)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_uvloop_by_default_where_installed(tmp_path: Path) -> None:
    module, status, size = run_main(_work(tmp_path))
    assert module.startswith("uvloop") and (status, size) == (200, 4)
