"""The agent page's Replay card in headless Chromium: an exact replay of what the agent did shows
no difference; a what-if with a changed agent file shows then and now side by side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

AGENTS = Path(__file__).resolve().parents[2] / "agents"
KEY = "replay-dashboard-admin-key-3c9e1b7a"


async def test_replay_card_shows_then_and_now(tmp_path: Path, example_engine, api_client, dashboard) -> None:
    async with example_engine(KEY) as (_engine, server), api_client(server.url, KEY) as api:
        accepted = await api.post("/agents/nova/post", json={"topic": "retro games"})
        assert accepted.status_code == 202, accepted.text
        for _ in range(200):
            page_ = (await api.get("/events", params={"type": "post.manual"})).json()
            if any(e["status"] == "done" for e in page_["items"]):
                break
            await asyncio.sleep(0.1)
        async with dashboard(server.url, KEY) as (page, problems):
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
    assert problems == []
    assert (tmp_path / "replay.png").stat().st_size > 10_000
