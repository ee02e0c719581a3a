"""``POST /agents/{id}/replay`` runs a replay as a background job; ``GET /replays/{id}`` shows its
progress and then the side-by-side report. Control scope; nothing it does reaches X or the chain."""

from __future__ import annotations

from pathlib import Path

from api_helpers import CONTROL, READ, assert_error, eventually, example_data, harness

from puppet_engine.storage.repos import outbox


async def test_a_replay_job_reports_the_same_decisions_then_a_what_if(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        agent_id = next(iter(example_data()))
        r = await h.post(f"/agents/{agent_id}/post", key=CONTROL, json={"topic": "tea"})
        assert r.status_code == 202, r.text
        event_id = r.json()["event_id"]

        async def posted() -> bool:  # the event done, and its post sent (the send follows the event's commit)
            page = (await h.get("/events", params={"type": "post.manual"})).json()
            settled = not {"pending", "sending"} & set(await outbox.counts_by_status(h.engine.db))
            return settled and any(e["id"] == event_id and e["status"] == "done" for e in page["items"])

        await eventually(posted)
        now = h.engine.clock.now()
        sent_before = await outbox.counts_by_status(h.engine.db)

        r = await h.post(f"/agents/{agent_id}/replay", key=CONTROL, json={"from": 0, "to": now + 60})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] in ("running", "done") and job["plan"]["llm"] == "exact"

        async def finished() -> dict | None:
            body = (await h.get(f"/replays/{job['id']}", key=READ)).json()
            return body if body["state"] != "running" else None

        done = await eventually(finished)
        assert done["state"] == "done" and done["progress"] == 1.0, done
        report = done["report"]
        assert report["events"] >= 1 and report["differences"] == []
        manual = [e for e in report["side_by_side"] if e["type"] == "post.manual"]
        assert manual and manual[0]["then"] == manual[0]["now"]

        changed = {**example_data()[agent_id], "style_guide": {"topics_to_avoid": ["tea"]}}
        r = await h.post(f"/agents/{agent_id}/replay", key=CONTROL,
                         json={"from": 0, "to": now + 60, "agent": changed, "llm": "sandbox"})
        assert r.status_code == 202, r.text
        job = r.json()
        done = await eventually(finished)
        assert done["state"] == "done" and done["report"]["what_if"], done
        manual = [e for e in done["report"]["side_by_side"] if e["type"] == "post.manual"]
        assert manual and manual[0]["then"]["actions"]
        assert await outbox.counts_by_status(h.engine.db) == sent_before  # the replays queued nothing


async def test_replay_requests_are_checked(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        agent_id = next(iter(example_data()))
        body = {"from": 0, "to": 10}
        assert_error(await h.post(f"/agents/{agent_id}/replay", key=READ, json=body), 403)
        assert_error(await h.post("/agents/zed/replay", key=CONTROL, json=body), 404)
        assert_error(await h.post(f"/agents/{agent_id}/replay", key=CONTROL, json={**body, "llm": "live"}), 400)
        error = assert_error(await h.post(f"/agents/{agent_id}/replay", key=CONTROL,
                                          json={"from": "soon", "to": 10}), 400)
        assert "from: 'soon' is not a time" in error["message"]
        error = assert_error(await h.post(f"/agents/{agent_id}/replay", key=CONTROL,
                                          json={"from": 1, "to": 2}), 400)
        assert "no recorded events" in error["message"]
        assert_error(await h.get("/replays/nope", key=READ), 404)
