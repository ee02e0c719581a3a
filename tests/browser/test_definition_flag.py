"""The dashboard flags an agent whose file edit was refused, and the flag goes once the file is fixed.

Real headless Chromium on a real engine started from a directory of agent files (watched), with
an in-process sandbox; the API on a loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

AGENTS = Path(__file__).resolve().parents[2] / "agents"
KEY = "dashboard-admin-key-7c1e9d3a5b"


def _save(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


async def test_a_refused_file_edit_is_flagged_on_the_agent_until_fixed(tmp_path: Path, example_engine,
                                                                        dashboard) -> None:
    directory = tmp_path / "agents"
    shutil.copytree(AGENTS, directory)
    original = (directory / "nova.json").read_text()
    async with (example_engine(KEY, agents_dir=directory) as (_engine, server),
                dashboard(server.url, KEY) as (page, problems)):
        await page.wait_for_selector(".agent-card[data-agent-id='nova']")
        assert await page.locator(".definition-error").count() == 0

        broken = json.loads(original)
        broken["behavior"]["post_frequency"]["min_hours_between_posts"] = "often"
        _save(directory / "nova.json", json.dumps(broken))
        flag = page.locator(".agent-card[data-agent-id='nova'] .definition-error")
        await expect(flag).to_contain_text("behavior.post_frequency.min_hours_between_posts")
        await expect(flag).to_contain_text("nova.json")
        await expect(page.locator(".agent-card[data-agent-id='nova'] .badge")).to_have_text("running")
        assert await page.locator(".definition-error").count() == 1
        await page.screenshot(path=str(tmp_path / "flag.png"), full_page=True)

        await page.goto(f"{server.url}/#/agents/nova")
        await expect(page.locator(".definition-error")).to_contain_text("previous version keeps running")

        _save(directory / "nova.json", original)  # back to the version in force: the flag goes
        await page.goto(f"{server.url}/#/agents")
        await page.wait_for_selector(".agent-card[data-agent-id='nova']")
        await expect(page.locator(".definition-error")).to_have_count(0)
    assert problems == []
