"""The agent page's "state at" picker (history.js) in headless Chromium: the state then, a memory
found then, and the timeline of the hour around, with no console error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

KEY = "history-read-key-7c1e0b93d4"


async def test_state_at_picker_shows_the_state_then(tmp_path: Path, example_engine, api_client, dashboard) -> None:
    async with example_engine(KEY) as (engine, server), api_client(server.url, KEY) as api:
        added = await api.post("/memory/coby", json={"content": "the lighthouse logbook of every block",
                                                     "kind": "knowledge", "importance": 0.8})
        assert added.status_code == 201, added.text
        await asyncio.sleep(1.1)  # the picker has minutes: the moment picked is after the memory
        moment = datetime.fromtimestamp(engine.clock.now() + 60, UTC).strftime("%Y-%m-%dT%H:%M")
        async with dashboard(server.url, KEY, height=1200) as (page, problems):
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
    assert problems == []
    assert (tmp_path / "history.png").stat().st_size > 10_000
