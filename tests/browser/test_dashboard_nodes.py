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
from playwright.async_api import expect

from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import load_agents_dir
from puppet_engine.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.browser

AGENTS = Path(__file__).resolve().parents[2] / "agents"
KEY = "nodes-dashboard-admin-key-3c9e1a7f"


async def test_dashboard_shows_nodes_and_owners(settings, serve, dashboard) -> None:
    configs = load_agents_dir(AGENTS)
    worker = Engine(settings, EngineOptions(agents=configs, sandbox=Sandbox(SandboxConfig()), seed=5,
                                            owner="worker-one", role="worker"))
    api_node = Engine(settings, EngineOptions(agents=configs, sandbox=Sandbox(SandboxConfig()), seed=6,
                                              owner="api-one", role="api"))
    await worker.start()
    runner = asyncio.create_task(worker.run())
    await api_node.start()
    worker_stopped = False
    try:
        async with serve(api_node, KEY, "admin") as server, dashboard(server.url, KEY) as (page, problems):
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
    finally:
        await api_node.stop()
        if not worker_stopped:
            await worker.stop()
        runner.cancel()
    assert not problems, problems
