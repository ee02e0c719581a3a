"""The dashboard of an api node shows the nodes and which node runs each agent (headless Chromium).

Two engines on one SQLite file in this event loop: a worker (runs the example agents, by lease)
and an api node (runs none, serves the dashboard). The agent cards name the worker; the System
view lists both nodes with their roles, marks the one answering, and shows the worker as stopped
once it stops. No console error along the way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

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
KEY = "nodes-dashboard-admin-key-3c9e1a7f"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def test_dashboard_shows_nodes_and_owners(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'nodes.db'}", embedder="hashing",  # type: ignore[call-arg]
                        _env_file=None)
    configs = load_agents_dir(AGENTS)
    worker = Engine(settings, EngineOptions(agents=configs, sandbox=Sandbox(SandboxConfig()), seed=5,
                                            owner="worker-one", role="worker"))
    api_node = Engine(settings, EngineOptions(agents=configs, sandbox=Sandbox(SandboxConfig()), seed=6,
                                              owner="api-one", role="api"))
    await worker.start()
    runner = asyncio.create_task(worker.run())
    await api_node.start()
    server = BackgroundServer(create_app(api_node, keys=KeyRing.parse(f"{KEY}:admin"), feed_interval=0.2))
    await server.start()
    problems: list[str] = []
    worker_stopped = False
    try:
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
            await page.wait_for_selector(".agent-card[data-agent-id='nova']")
            for agent in ("coby", "ledger", "nova"):
                owner = page.locator(f".agent-card[data-agent-id='{agent}'] .agent-owner")
                await expect(owner).to_have_attribute("data-owner", "worker-one")
                await expect(owner).to_contain_text("worker-one")

            await page.click("a[data-nav='system']")
            rows = page.locator("#nodes-body tr")
            await expect(rows).to_have_count(2)
            worker_row = page.locator("#nodes-body tr[data-node-id='worker-one']")
            api_row = page.locator("#nodes-body tr[data-node-id='api-one']")
            await expect(worker_row).to_have_attribute("data-status", "live")
            await expect(worker_row.locator("td").nth(1)).to_have_text("worker")
            await expect(worker_row.locator("td").nth(3)).to_have_text("3")
            await expect(api_row.locator("td").nth(1)).to_have_text("api")
            await expect(api_row).to_contain_text("(this node)")
            await expect(page.locator("#nodes-summary")).to_have_text("2 live · this node: api")

            await worker.stop()  # the worker leaves cleanly: shown as stopped, its agents unowned
            worker_stopped = True
            await expect(worker_row).to_have_attribute("data-status", "stopped", timeout=10_000)
            await expect(page.locator("#nodes-summary")).to_have_text("1 live · this node: api")
            await page.click("a[data-nav='overview']")
            await expect(page.locator(".agent-card[data-agent-id='nova'] .agent-owner")).to_have_attribute(
                "data-owner", "")
            await browser.close()
    finally:
        await server.stop()
        await api_node.stop()
        if not worker_stopped:
            await worker.stop()
        runner.cancel()
    assert not problems, problems
