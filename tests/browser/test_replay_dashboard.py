"""The agent page's Replay card in headless Chromium: an exact replay of what the agent did shows
no difference; a what-if with a changed agent file shows then and now side by side."""

from __future__ import annotations

import asyncio
import json
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
KEY = "replay-dashboard-admin-key-3c9e1b7a"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def test_replay_card_shows_then_and_now(tmp_path: Path) -> None:
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
            accepted = await api.post("/agents/nova/post", json={"topic": "retro games"})
            assert accepted.status_code == 202, accepted.text
            for _ in range(200):
                page_ = (await api.get("/events", params={"type": "post.manual"})).json()
                if any(e["status"] == "done" for e in page_["items"]):
                    break
                await asyncio.sleep(0.1)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                page = await browser.new_page(viewport={"width": 1440, "height": 1000})
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.set_default_timeout(20_000)
                expect.set_options(timeout=20_000)
                await page.goto(f"{server.url}/")
                await page.fill("#login-key", KEY)
                await page.click("#login-form button[type=submit]")
                await page.goto(f"{server.url}/#/agents/nova")
                await page.wait_for_selector("#replay-card")

                await page.click("#replay-card button[type=submit]")
                await expect(page.locator("#replay-summary")).to_contain_text("0 decision(s) differ")
                await expect(page.locator(".replay-table tbody tr").first).to_contain_text("post.manual")

                changed = json.loads((AGENTS / "nova.json").read_text())
                changed["personality"]["interests"] = ["sourdough"]
                await page.fill("#replay-card textarea", json.dumps(changed))
                await page.select_option("#replay-card select", "sandbox")
                await page.click("#replay-card button[type=submit]")
                await expect(page.locator("#replay-summary")).to_contain_text("LLM sandbox")
                row = page.locator(".replay-table tbody tr", has_text="post.manual").first
                cells = row.locator("td")
                assert (await cells.nth(2).inner_text()).startswith("post: ")
                assert (await cells.nth(3).inner_text()).startswith("post: ")
                await page.screenshot(path=str(tmp_path / "replay.png"), full_page=True)
                await browser.close()
    finally:
        await server.stop()
        await engine.stop()
        await asyncio.wait_for(runner, timeout=30)
    assert problems == []
    assert (tmp_path / "replay.png").stat().st_size > 10_000
