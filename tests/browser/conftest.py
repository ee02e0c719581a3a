"""The harness of the dashboard tests: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, against an engine whose API is served on a loopback port in the test's event loop.

The helpers come as factory fixtures (pytest fixtures that return an async context manager), so
a test can first start its engine, then open the dashboard on the server's address:

    async with example_engine(KEY) as (engine, server), dashboard(server.url, KEY) as (page, problems):
        ...
    assert problems == []

Every test here is skipped when Chromium is not installed (``make browser-deps`` installs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from playwright.async_api import Page, async_playwright, expect

from puppet_engine.api import KeyRing, create_app
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import load_agents_dir
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLE_AGENTS = Path(__file__).resolve().parents[2] / "agents"
TIMEOUT_MS = 20_000  # for page actions and expect(): long enough for a loaded CI machine

OpenDashboard = Callable[..., AbstractAsyncContextManager[tuple[Page, list[str]]]]
Serve = Callable[[Engine, str, str], AbstractAsyncContextManager[BackgroundServer]]
ExampleEngine = Callable[..., AbstractAsyncContextManager[tuple[Engine, BackgroundServer]]]
ApiClient = Callable[[str, str], httpx2.AsyncClient]


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    # A fixture rather than a skip at import: a conftest that skips while loading breaks
    # `pytest tests/browser` (pytest loads it before collecting) instead of skipping.
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed at /usr/bin/chromium (make browser-deps installs it)")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh SQLite file under ``tmp_path``, the hashing embedder, no .env file."""
    return Settings(database_url=f"sqlite:///{tmp_path / 'dash.db'}", embedder="hashing",  # type: ignore[call-arg]
                    _env_file=None)


@asynccontextmanager
async def _serve(engine: Engine, key: str, role: str) -> AsyncIterator[BackgroundServer]:
    server = BackgroundServer(create_app(engine, keys=KeyRing.parse(f"{key}:{role}"), feed_interval=0.2))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def serve() -> Serve:
    """``serve(engine, key, role)``: the API of ``engine`` on a loopback port while the block runs,
    with one API key of that role and a fast live feed (0.2 s)."""
    return _serve


@pytest.fixture
def example_engine(settings: Settings) -> ExampleEngine:
    """``example_engine(key, agents_dir=None)``: an engine with the example agents (or the agent
    files of ``agents_dir``, watched) and an in-process sandbox, running in this event loop on the
    wall clock, and its API served with ``key`` as an admin key; yields ``(engine, server)``.
    On the way out the server stops, then the engine, and its run loop must end within 30 s."""

    @asynccontextmanager
    async def start(key: str, agents_dir: Path | None = None) -> AsyncIterator[tuple[Engine, BackgroundServer]]:
        if agents_dir is None:
            options = EngineOptions(agents=load_agents_dir(EXAMPLE_AGENTS), sandbox=Sandbox(SandboxConfig()), seed=5)
        else:
            options = EngineOptions(agents_dir=agents_dir, sandbox=Sandbox(SandboxConfig()), seed=5)
        engine = Engine(settings, options)
        await engine.start()
        runner = asyncio.create_task(engine.run())
        try:
            async with _serve(engine, key, "admin") as server:
                yield engine, server
        finally:
            await engine.stop()
            await asyncio.wait_for(runner, timeout=30)

    return start


@pytest.fixture
def api_client() -> ApiClient:
    """``api_client(server_url, key)``: an HTTP client of the API that sends ``key`` as a bearer token."""

    def client(server_url: str, key: str) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=server_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    return client


@asynccontextmanager
async def _dashboard(server_url: str, key: str, *, height: int = 1000) -> AsyncIterator[tuple[Page, list[str]]]:
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": height})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            await page.goto(f"{server_url}/")
            await page.fill("#login-key", key)
            await page.click("#login-form button[type=submit]")
            yield page, problems
        finally:
            await browser.close()


@pytest.fixture
def dashboard() -> OpenDashboard:
    """``dashboard(server_url, key, height=1000)``: a 1440-pixel-wide page of headless Chromium on
    the dashboard, the login form sent with ``key`` (the test waits for what it expects next);
    yields ``(page, problems)``, ``problems`` collecting every console error or warning and
    uncaught page error, for the test to assert empty once the block is over."""
    return _dashboard
