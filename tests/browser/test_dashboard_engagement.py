"""The dashboard's engagement card in headless Chromium: after four virtual days of posts the
agent page shows the rate by hour (a drawn chart), the totals and the best and worst posts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.browser

KEY = "dashboard-read-key-3c7e1a9d4f"
PERSONA = {
    "id": "ada", "name": "Ada", "llm_provider": "fake",
    "personality": {"traits": ["curious"], "interests": ["validators", "solana", "open source"]},
    "behavior": {"post_frequency": {"min_hours_between_posts": 2, "max_hours_between_posts": 4,
                                    "peak_posting_hours": [9, 10, 11]}, "mention_poll_minutes": 240},
}


async def test_engagement_card(tmp_path: Path, settings, serve, dashboard) -> None:
    clock = VirtualClock()
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(PERSONA)], clock=clock, seed=3,
                                            sandbox=Sandbox(SandboxConfig(seed=3, crowd_rate=0), clock=clock)))
    await engine.start()
    try:
        await engine.run_until(clock.now() + 4 * 24 * 3600.0)
        async with serve(engine, KEY, "read") as server, dashboard(server.url, KEY, height=1400) as (page, problems):
            await page.goto(f"{server.url}/#/agents/ada")
            await page.wait_for_selector("#engagement-best tbody tr")
            await expect(page.locator("#engagement-best tbody tr")).to_have_count(5)
            await expect(page.locator("#engagement-worst tbody tr")).to_have_count(5)
            stats = (await page.inner_text("#engagement-stats")).lower()
            assert "engagement rate" in stats and "%" in stats and "9, 10, 11" in stats
            assert (await page.locator("#engagement-best tbody tr").first.locator("td").nth(1).inner_text()).strip()
            # The chart was drawn: some pixels of the bar colour are on the canvas.
            drawn = await page.evaluate("""() => {
                const c = document.querySelector('#engagement-chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let bars = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] === 79 && d[i + 1] === 107 && d[i + 2] === 237) bars++;
                return bars;
            }""")
            assert drawn > 500
            await page.locator("#engagement-card").screenshot(path=str(tmp_path / "engagement.png"))
    finally:
        await engine.stop()
    assert problems == []
    assert (tmp_path / "engagement.png").stat().st_size > 5_000
