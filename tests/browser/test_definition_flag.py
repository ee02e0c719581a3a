"""The dashboard flags an agent whose file edit was refused, and the flag goes once the file is fixed.

Real headless Chromium on a real engine started from a directory of agent files (watched), with
an in-process sandbox; the API on a loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("headless Chromium is not installed at /usr/bin/chromium (make browser-deps installs it)",
                allow_module_level=True)

from playwright.async_api import async_playwright, expect  # noqa: E402

from puppet_engine.api import KeyRing, create_app  # noqa: E402
from puppet_engine.engine import Engine, EngineOptions  # noqa: E402
from puppet_engine.sandbox import Sandbox, SandboxConfig  # noqa: E402
from puppet_engine.serving import BackgroundServer  # noqa: E402
from puppet_engine.settings import Settings  # noqa: E402

pytestmark = pytest.mark.browser

AGENTS = Path(__file__).resolve().parents[2] / "agents"
KEY = "dashboard-admin-key-7c1e9d3a5b"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _save(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


async def test_a_refused_file_edit_is_flagged_on_the_agent_until_fixed(tmp_path: Path) -> None:
    directory = tmp_path / "agents"
    shutil.copytree(AGENTS, directory)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'dash.db'}", embedder="hashing",  # type: ignore[call-arg]
                        _env_file=None)
    engine = Engine(settings, EngineOptions(agents_dir=directory, sandbox=Sandbox(SandboxConfig()), seed=5))
    await engine.start()
    runner = asyncio.create_task(engine.run())
    server = BackgroundServer(create_app(engine, keys=KeyRing.parse(f"{KEY}:admin"), feed_interval=0.2))
    await server.start()
    problems: list[str] = []
    original = (directory / "nova.json").read_text()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            expect.set_options(timeout=20_000)
            await page.goto(f"{server.url}/")
            await page.fill("#login-key", KEY)
            await page.click("#login-form button[type=submit]")
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
            await browser.close()
    finally:
        await server.stop()
        await engine.stop()
        await asyncio.wait_for(runner, timeout=30)
    assert problems == []
