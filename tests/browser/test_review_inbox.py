"""The review inbox in real headless Chromium: the count in the header, context beside each
item, approve / edit / reject from the keyboard, bulk approve for an agent, no console error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.browser

KEY = "review-control-key-3d9a7e21c4"
HOUR = 3600.0
EDITED = "Rain on the window, tea in hand, maps on the table."


def persona(agent_id: str) -> dict[str, Any]:
    return {"id": agent_id, "llm_provider": "fake", "personality": {"interests": ["tea", "maps"]},
            "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 1.5},
                         "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0,
                                                  "quote_tweet_probability": 0.0},
                         "mention_poll_minutes": 1},
            "review": {"kinds": ["posts", "replies"]}}


async def test_review_inbox_flow(tmp_path: Path, settings, serve, api_client, dashboard) -> None:
    clock = VirtualClock()
    engine = Engine(settings, EngineOptions(agents=[parse_agent_config(persona("ivy")), parse_agent_config(persona("jo"))],
                                            clock=clock, seed=8, sandbox=Sandbox(SandboxConfig(), clock=clock)))
    await engine.start()
    try:
        sandbox_x = f"{engine.wiring.sandbox_url}/sandbox/x"
        await engine.wiring.http.post(f"{sandbox_x}/accounts", json={"username": "alice"})
        await engine.wiring.http.post(f"{sandbox_x}/tweets", json={"username": "alice", "text": "@ivy which tea for maps?"})
        await engine.run_until(clock.now() + 2 * HOUR)
        async with serve(engine, KEY, "control") as server, api_client(server.url, KEY) as api:
            waiting = (await api.get("/review", params={"limit": 100})).json()
            total = waiting["total"]
            assert total >= 4 and any(i["kind"] == "replies" for i in waiting["items"])
            async with dashboard(server.url, KEY) as (page, problems):
                await expect(page.locator("#review-count")).to_have_text(str(total))  # the count in the header

                await page.click("a[data-nav='review']")
                items = page.locator(".review-item")
                await expect(items).to_have_count(total)
                reply = page.locator(".review-item", has_text="mention from @alice")
                await expect(reply).to_have_count(1)  # the mention beside the reply
                assert "which tea for maps?" in await reply.locator(".review-context").inner_text()
                await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

                first_id = int(await items.nth(0).get_attribute("data-id") or 0)
                await page.keyboard.press("a")  # approve the selected (first) item
                await expect(items).to_have_count(total - 1)
                await expect(page.locator("#review-count")).to_have_text(str(total - 1))
                assert (await api.get(f"/review/{first_id}")).json()["state"] == "approved"

                second_id = int(await items.nth(0).get_attribute("data-id") or 0)
                await page.keyboard.press("e")
                editor = items.nth(0).locator("textarea.review-edit")
                await expect(editor).to_be_focused()
                await editor.fill(EDITED)
                await editor.press("Control+Enter")
                await expect(items).to_have_count(total - 2)
                second = (await api.get(f"/review/{second_id}")).json()
                assert second["state"] == "approved" and second["text"] == EDITED
                assert second["decisions"][0]["edited"] is True

                third_id = int(await items.nth(0).get_attribute("data-id") or 0)
                await page.keyboard.press("j")
                await page.keyboard.press("k")  # back to the first
                await page.keyboard.press("r")
                reason = items.nth(0).locator("input.review-reason")
                await expect(reason).to_be_focused()
                await reason.fill("too salesy")
                await reason.press("Enter")
                await expect(items).to_have_count(total - 3)
                third = (await api.get(f"/review/{third_id}")).json()
                assert third["state"] == "rejected" and third["decisions"][0]["reason"] == "too salesy"

                await page.select_option("#review-agent", "jo")
                await page.click("#review-bulk")
                await expect(page.locator(".review-item[data-agent='jo']")).to_have_count(0)
                assert (await api.get("/review", params={"agent": "jo"})).json()["total"] == 0
                await page.select_option("#review-agent", "")
                left = (await api.get("/review")).json()["total"]
                await expect(items).to_have_count(left)
                await expect(page.locator("#review-count")).to_have_text(str(left))
            await engine.run_until(clock.now() + 60)  # what was approved goes out
            tweets = (await engine.wiring.http.get(f"{sandbox_x}/tweets", params={"username": second["agent_id"]})).json()
            assert EDITED in [t["text"] for t in tweets["data"]]
    finally:
        await engine.stop()
    assert problems == []
    assert (tmp_path / "review.png").stat().st_size > 10_000
