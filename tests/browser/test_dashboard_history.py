"""The agent page's "state at" picker (history.js) in headless Chromium: the state then, a memory
found then, and the timeline of the hour around, with no console error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("headless Chromium is not installed at /usr/bin/chromium (make browser-deps installs it)",
                allow_module_level=True)

from playwright.async_api import async_playwright, expect  # noqa: E402

from puppet_engine.api import KeyRing, create_app  # noqa: E402
from puppet_engine.engine import Engine, EngineOptions  # noqa: E402
from puppet_engine.persona import load_agents_dir  # noqa: E402
from puppet_engine.sandbox import Sandbox, SandboxConfig  # noqa: E402
from puppet_engine.serving import BackgroundServer  # noqa: E402
from puppet_engine.settings import Settings  # noqa: E402

pytestmark = pytest.mark.browser

AGENTS = Path(__file__).resolve().parents[2] / "agents"
KEY = "history-read-key-7c1e0b93d4"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def test_state_at_picker_shows_the_state_then(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'dash.db'}", embedder="hashing",  # type: ignore[call-arg]
                        _env_file=None)
    engine = Engine(settings, EngineOptions(agents=load_agents_dir(AGENTS), sandbox=Sandbox(SandboxConfig()), seed=5))
    await engine.start()
    runner = asyncio.create_task(engine.run())
    server = BackgroundServer(create_app(engine, keys=KeyRing.parse(f"{KEY}:admin"), feed_interval=0.2))
    await server.start()
    problems: list[str] = []
    try:
        async with httpx2.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                                      timeout=30) as api:
            added = await api.post("/memory/coby", json={"content": "the lighthouse logbook of every block",
                                                         "kind": "knowledge", "importance": 0.8})
            assert added.status_code == 201, added.text
            await asyncio.sleep(1.1)  # the picker has minutes: the moment picked is after the memory
            moment = datetime.fromtimestamp(engine.clock.now() + 60, UTC).strftime("%Y-%m-%dT%H:%M")
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                page = await browser.new_page(viewport={"width": 1440, "height": 1200})
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.set_default_timeout(20_000)
                expect.set_options(timeout=20_000)
                await page.goto(f"{server.url}/")
                await page.fill("#login-key", KEY)
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector(".agent-card[data-agent-id='coby']")
                await page.goto(f"{server.url}/#/agents/coby")
                await page.wait_for_selector("#history-at")
                await page.fill("#history-at", moment)
                await page.fill("#history-query", "lighthouse logbook")
                await page.click("#history-card button[type=submit]")
                await expect(page.locator("#history-state")).to_contain_text(f"coby at {moment}:00Z")
                await expect(page.locator("#history-state")).to_contain_text("started by engine start")
                await expect(page.locator("#history-state")).to_contain_text("version 1 (file")
                await expect(page.locator("#history-found .history-hit").first).to_contain_text("lighthouse logbook")
                await page.click("#history-card summary")
                await expect(page.locator("#history-timeline")).to_contain_text("started by engine start")
                await page.screenshot(path=str(tmp_path / "history.png"), full_page=True)

                early = "2020-01-01T00:00"
                await page.fill("#history-at", early)
                await page.click("#history-card button[type=submit]")
                await expect(page.locator("#history-state")).to_contain_text("Nothing recorded for coby")
                await browser.close()
    finally:
        await server.stop()
        await engine.stop()
        await asyncio.wait_for(runner, timeout=30)
    assert problems == []
    assert (tmp_path / "history.png").stat().st_size > 10_000
