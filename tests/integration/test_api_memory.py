"""``/memory/{agent_id}``: list with filters and pages, add, search by meaning, delete, clear."""

from __future__ import annotations

from pathlib import Path

from api_helpers import CONTROL, READ, assert_error, harness


async def test_add_list_search_delete_clear(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        if api.engine.manager.agents["coby"].memory is not None:  # the engine seeds initial_memory
            seeded = (await api.get("/memory/coby", params={"kind": "core"})).json()
            assert seeded["total"] >= 4
            assert any("diary" in m["content"] for m in seeded["items"])

        added = await api.post("/memory/coby", key=CONTROL, json={
            "content": "The lighthouse keeper collects green sea glass every Sunday", "kind": "knowledge",
            "importance": 0.9, "metadata": {"where": "harbour"}})
        assert added.status_code == 201, added.text
        memory = added.json()
        assert memory["kind"] == "knowledge" and memory["metadata"]["where"] == "harbour"
        assert memory["metadata"]["source"] == "api"

        hits = (await api.post("/memory/coby/search", key=READ,
                               json={"query": "lighthouse keeper sea glass", "limit": 3})).json()
        assert hits[0]["memory"]["id"] == memory["id"]
        assert hits[0]["score"] >= hits[-1]["score"]
        only_core = (await api.post("/memory/coby/search", json={"query": "lighthouse", "kinds": ["core"]})).json()
        assert all(h["memory"]["kind"] == "core" for h in only_core)

        knowledge = (await api.get("/memory/coby", params={"kind": "knowledge"})).json()
        assert [m["id"] for m in knowledge["items"]] == [memory["id"]] and knowledge["total"] == 1
        later = (await api.get("/memory/coby", params={"since": memory["created_at"] + 1})).json()
        assert later["total"] == 0 and later["items"] == []
        earlier = (await api.get("/memory/coby", params={"until": memory["created_at"]})).json()
        assert memory["id"] not in [m["id"] for m in earlier["items"]]
        for content in ("The harbour fog rolled in at noon", "Nova sent a meme about validators",
                        "Ledger counted forty-two blocks before breakfast"):
            assert (await api.post("/memory/coby", json={"content": content, "kind": "event"})).status_code == 201
        everything = (await api.get("/memory/coby")).json()
        assert everything["total"] >= 4
        first = (await api.get("/memory/coby", params={"limit": 2, "offset": 0})).json()
        second = (await api.get("/memory/coby", params={"limit": 2, "offset": 2})).json()
        assert first["total"] == everything["total"] and len(first["items"]) == 2
        assert not {m["id"] for m in first["items"]} & {m["id"] for m in second["items"]}

        assert (await api.delete(f"/memory/coby/{memory['id']}", key=CONTROL)).status_code == 204
        assert_error(await api.delete(f"/memory/coby/{memory['id']}"), 404, "not_found")
        assert_error(await api.delete("/memory/coby/x", key=READ), 403)

        error = assert_error(await api.delete("/memory/coby"), 400, "confirmation_required")
        assert "confirm" in error["message"]
        assert (await api.get("/memory/coby")).json()["total"] == everything["total"] - 1
        cleared = (await api.delete("/memory/coby", params={"confirm": "true"})).json()
        assert cleared["deleted"] == everything["total"] - 1
        assert (await api.get("/memory/coby")).json()["total"] == 0
        await api.post("/memory/nova", json={"content": "something to forget"})
        by_body = await api.delete("/memory/nova", json={"confirm": True})
        assert by_body.json()["deleted"] >= 1


async def test_memory_errors(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert_error(await api.get("/memory/zed"), 404)
        assert_error(await api.post("/memory/zed/search", json={"query": "x"}), 404)
        error = assert_error(await api.post("/memory/coby", json={"content": "x", "kind": "dream"}), 422)
        assert error["details"][0]["field"] == "body.kind"
        error = assert_error(await api.post("/memory/coby", json={"content": "x", "importance": 2}), 422)
        assert error["details"][0]["field"] == "body.importance"
        assert_error(await api.post("/memory/coby/search", json={"query": ""}), 422)
        assert_error(await api.get("/memory/coby", params={"kind": "dream"}), 422)
