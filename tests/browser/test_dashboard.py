"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

The engine runs with the example agents and an in-process sandbox; the API is served on
a loopback port by ``BackgroundServer`` in the same event loop. The page must load the
agents, show a post in the live feed when one is requested through the API, answer a
memory search, render the trading chart, and log no console error along the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

pytestmark = pytest.mark.browser

KEY = "dashboard-admin-key-5e2c8a1f9b"
POST_TEXT = "Tea kettle whistling like a validator at dawn."


async def _count(page: Page, selector: str) -> int:
    return await page.locator(selector).count()


async def test_dashboard_end_to_end(tmp_path: Path, example_engine, api_client, dashboard) -> None:
    async with example_engine(KEY) as (_engine, server), api_client(server.url, KEY) as api:
        added = await api.post("/memory/coby", json={"content": "I keep a lighthouse logbook of every block",
                                                     "kind": "knowledge", "importance": 0.8})
        assert added.status_code == 201, added.text
        async with dashboard(server.url, KEY) as (page, problems):
            await page.wait_for_selector(".agent-card[data-agent-id='nova']")
            assert await _count(page, ".agent-card") == 3
            await expect(page.locator(".agent-card[data-agent-id='nova'] .badge")).to_have_text("running")
            assert "Coby" in await page.inner_text("#agents")
            await expect(page.locator("#feed-state")).to_have_text("feed: live")

            nova_posts = ".feed-item[data-type='post'][data-agent='nova']"
            before = await _count(page, nova_posts)
            accepted = await api.post("/agents/nova/post", json={"text": POST_TEXT})
            assert accepted.status_code == 202, accepted.text
            await expect(page.locator(nova_posts).filter(has_text=POST_TEXT)).to_have_count(1)
            assert await _count(page, nova_posts) == before + 1
            assert POST_TEXT in await page.locator(nova_posts).first.inner_text()  # newest on top
            await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

            await page.click(".agent-card[data-agent-id='coby'] a.agent-name")
            await page.wait_for_selector("#memory-query")
            await page.fill("#memory-query", "lighthouse logbook")
            await page.press("#memory-query", "Enter")
            await page.wait_for_selector(".memory-hit")
            assert "lighthouse logbook" in await page.locator(".memory-hit").first.inner_text()
            await page.screenshot(path=str(tmp_path / "agent.png"), full_page=True)

            await page.goto(f"{server.url}/#/agents/ledger")
            await page.wait_for_selector("#portfolio-chart")
            await expect(page.locator(".stat-label", has_text="SOL")).to_have_count(1)  # balance loaded
            await page.screenshot(path=str(tmp_path / "trading.png"), full_page=True)
            await page.goto(f"{server.url}/#/events")
            await page.wait_for_selector("#events-table tbody tr")
            await page.screenshot(path=str(tmp_path / "events.png"), full_page=True)
            await page.goto(f"{server.url}/#/system")
            await page.wait_for_selector("#health-panel tbody tr")
            await page.screenshot(path=str(tmp_path / "system.png"), full_page=True)

            # the key survives a reload (localStorage) and the feed reconnects
            await page.reload()
            await page.wait_for_selector("#health-panel tbody tr")
    assert problems == []
    for name in ("overview.png", "agent.png", "trading.png", "events.png", "system.png"):
        assert (tmp_path / name).stat().st_size > 10_000
