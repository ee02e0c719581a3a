"""Recordings: compressed JSON, sealed when a key is set; recorded per event by the recorder
(nothing outside an event), and a failing write never fails the event."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from puppet_engine.errors import ConfigError
from puppet_engine.events import Event, HandlerResult, records
from puppet_engine.events.recording import Recorder, capturing, note
from puppet_engine.llm import FakeProvider, RecordingProvider
from puppet_engine.llm.base import CompletionRequest
from puppet_engine.llm.messages import ChatMessage
from puppet_engine.llm.wrappers import CaptureProvider, request_digest
from puppet_engine.storage.repos import recordings
from puppet_engine.storage.repos.recordings import RecordCodec
from puppet_engine.storage.tables import llm_calls

PROMPT = {"request": {"messages": [["system", "You are Ada, with a secret plan to buy tea " * 20]]}}


def test_bodies_are_compressed_and_sealed_with_the_key() -> None:
    plain, sealed = RecordCodec(), RecordCodec("a long enough secret key 123")
    packed = plain.encode(PROMPT, agent_id="ada", kind="llm")
    assert len(packed) < len(str(PROMPT)) / 5 and plain.decode(packed, agent_id="ada", kind="llm") == PROMPT
    secret = sealed.encode(PROMPT, agent_id="ada", kind="llm")
    assert b"tea" not in secret and b"Ada" not in secret
    assert sealed.decode(secret, agent_id="ada", kind="llm") == PROMPT
    with pytest.raises(ConfigError, match="encrypted: set MEMORY_ENCRYPTION_KEY"):
        plain.decode(secret, agent_id="ada", kind="llm")
    with pytest.raises(ConfigError, match="does not open with this MEMORY_ENCRYPTION_KEY"):
        RecordCodec("another long enough secret key").decode(secret, agent_id="ada", kind="llm")
    with pytest.raises(ConfigError, match="does not open"):  # bound to its agent: not movable to another
        sealed.decode(secret, agent_id="bob", kind="llm")
    with pytest.raises(ConfigError, match="unknown format"):
        plain.decode(b"?garbage", agent_id="ada", kind="llm")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        RecordCodec("short")
    assert "secret" not in repr(sealed)


async def test_the_recorder_keeps_each_events_state_reads_and_decision(database, virtual_clock) -> None:
    async def facts(agent_id: str) -> dict:
        return {"state": {"post_seq": 4}, "user_id": "42", "username": "ada"}

    recorder = Recorder(database, virtual_clock, RecordCodec(), start_facts=facts)

    async def handler(event: Event) -> HandlerResult:
        assert capturing()
        note("read", {"what": "mentions", "posts": [{"id": "7", "text": "hi", "author_id": "9"}]})
        return HandlerResult(result={"received": 1}, state={"poll_seq": 5})

    note("read", {"what": "outside"})  # not in an event: nothing
    event = Event("mentions.poll", "ada", {"seq": 5}, id=3, key="poll:ada:5")
    hr = await recorder.wrap(handler)(event)
    assert hr is not None and not capturing()
    # The rows travel with the outcome and are committed in its transaction.
    async with database.transaction() as conn:
        await records.insert_event(conn, event, virtual_clock.now())
        await records.record_outcomes(conn, [(event, hr)], virtual_clock.now())
    rows = await recordings.load(database, RecordCodec(), "ada", 0, 2e9)
    assert [(r.kind, r.seq, r.event_id) for r in rows] == [("event", 0, 3), ("read", 1, 3)]
    body = rows[0].body
    assert body["start"]["state"] == {"post_seq": 4} and body["outcome"]["result"] == {"received": 1}
    assert body["event"]["key"] == "poll:ada:5" and body["peers"] == {}


async def test_a_failed_run_is_recorded_on_its_own(database, virtual_clock) -> None:
    async def facts(agent_id: str) -> dict:
        return {"state": {}}

    recorder = Recorder(database, virtual_clock, RecordCodec(), start_facts=facts)

    async def handler(event: Event) -> HandlerResult:
        note("llm", {"request": {"messages": []}, "error": {"type": "ServiceUnavailable", "message": "down"}})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await recorder.wrap(handler)(Event("post.due", "ada", id=9))
    rows = await recordings.load(database, RecordCodec(), "ada", 0, 2e9)
    assert [r.kind for r in rows] == ["event", "llm"]
    assert rows[0].body["error"] == {"type": "RuntimeError", "message": "boom"}


async def test_a_failing_recording_never_fails_the_event(database, virtual_clock) -> None:
    async def facts(agent_id: str) -> dict:
        return {"state": {"not json": {1, 2}}}  # a set: the body cannot be encoded

    recorder = Recorder(database, virtual_clock, RecordCodec(), start_facts=facts)

    async def handler(event: Event) -> HandlerResult:
        return HandlerResult(result={"ok": True})

    hr = await recorder.wrap(handler)(Event("post.due", "ada", id=1))
    assert hr is not None and hr.result == {"ok": True} and hr.recordings == []


async def test_an_events_llm_calls_ride_in_its_outcome_commit(database, virtual_clock) -> None:
    """The llm_calls rows of a recorded event are written by its outcome's transaction (no
    commit of their own); those of a failed run are written on their own; outside an event,
    every call is still written at once."""
    async def facts(agent_id: str) -> dict:
        return {"state": {}}

    async def calls() -> list[tuple[str, str]]:
        async with database.connect() as conn:
            rows = await conn.execute(sa.select(llm_calls.c.agent_id, llm_calls.c.outcome).order_by(llm_calls.c.id))
            return [tuple(r) for r in rows]

    recorder = Recorder(database, virtual_clock, RecordCodec(), start_facts=facts)
    provider = RecordingProvider(FakeProvider(), database, clock=virtual_clock)

    def asking(agent: str) -> CompletionRequest:
        return CompletionRequest([ChatMessage("user", "a post about tea")], agent_id=agent, purpose="post")

    async def handler(event: Event) -> HandlerResult:
        await provider.complete(asking(event.agent_id or ""))
        await provider.complete(asking(event.agent_id or ""))
        if event.payload.get("fail"):
            raise RuntimeError("boom")
        return HandlerResult(result={"ok": True})

    event = Event("post.due", "ada", id=4, key="post:ada:4")
    hr = await recorder.wrap(handler)(event)
    assert hr is not None and len(hr.llm_calls) == 2
    assert await calls() == []  # not written yet: they travel with the outcome
    async with database.transaction() as conn:
        await records.insert_event(conn, event, virtual_clock.now())
        await records.record_outcomes(conn, [(event, hr)], virtual_clock.now())
    assert await calls() == [("ada", "ok"), ("ada", "ok")]

    with pytest.raises(RuntimeError, match="boom"):  # a failed run: its calls are written all the same
        await recorder.wrap(handler)(Event("post.due", "bob", {"fail": True}, id=5))
    assert await calls() == [("ada", "ok")] * 2 + [("bob", "ok")] * 2

    await provider.complete(asking("cy"))  # outside an event: written at once, as before
    assert (await calls())[-1] == ("cy", "ok")


async def test_a_recorded_llm_call_carries_its_requests_digest(database, virtual_clock) -> None:
    async def facts(agent_id: str) -> dict:
        return {"state": {}}

    recorder = Recorder(database, virtual_clock, RecordCodec(), start_facts=facts)
    request = CompletionRequest(messages=[ChatMessage("system", "You are Ada."), ChatMessage("user", "Task: post")],
                                purpose="post", agent_id="ada", seed=3)

    async def handler(event: Event) -> HandlerResult:
        await CaptureProvider(FakeProvider()).complete(request)
        return HandlerResult(result={})

    event = Event("post.due", "ada", {"seq": 1}, id=4, key="post:ada:1")
    hr = await recorder.wrap(handler)(event)
    assert hr is not None
    async with database.transaction() as conn:
        await records.insert_event(conn, event, virtual_clock.now())
        await records.record_outcomes(conn, [(event, hr)], virtual_clock.now())
    [llm] = [r.body for r in await recordings.load(database, RecordCodec(), "ada", 0, 2e9) if r.kind == "llm"]
    assert llm["digest"] == request_digest(request) and llm["answer"]["text"]
