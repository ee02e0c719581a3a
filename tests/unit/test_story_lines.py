"""Story lines for every kind of side effect, on the console and in JSON."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from puppet_engine.events import Action, ActionOutcome
from puppet_engine.observability.engine_hooks import tell
from puppet_engine.observability.logging import (
    configure_logging,
    get_logger,
    reset_logging,
    set_level,
)


def action(kind: str, payload: dict, agent_id: str = "ledger") -> Action:
    return Action(id=1, key=f"{kind}:{agent_id}:1", agent_id=agent_id, kind=kind, payload=payload, status="done",
                  external_id=None, attempts=1, not_before=0.0, error=None, event_id=None, result=None,
                  created_at=0.0, updated_at=0.0)


@pytest.fixture
def stream():
    out = io.StringIO()
    previous = logging.getLogger().level
    yield out
    reset_logging()
    set_level(logging.DEBUG)
    logging.getLogger().setLevel(previous)


def test_console_lines_for_each_kind(stream) -> None:
    configure_logging("INFO", "console", [], stream=stream)
    trade = {"summary": "swapped: 0.01 SOL → 1234.5 BONK", "status": "confirmed", "signature": "5sig"}
    tell(action("trade", {"input": "SOL", "output": "BONK", "amount": 0.01}), ActionOutcome("5sig", trade))
    tell(action("thread", {"parts": ["one", "two", "three"]}, "coby"), ActionOutcome("11"))
    tell(action("quote", {"text": "well said", "quote": "9"}, "nova"), ActionOutcome("12"))
    tell(action("like", {"tweet_id": "9"}, "nova"), ActionOutcome(None))
    get_logger("puppet_engine.agents").info("post_skipped", agent_id="coby", reason="too long: 57 > 20")
    get_logger("puppet_engine.outbox").warning("action_failed", agent_id="coby", kind="post", action_key="k",
                                               error="x: POST /2/tweets: 403 duplicate content")
    lines = [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in stream.getvalue().splitlines()]
    assert lines == [
        "ledger    traded     swapped: 0.01 SOL → 1234.5 BONK",
        'coby      posted     "one" (+2 more in the thread)',
        'nova      quoted     "well said"',
        "nova      liked      tweet 9",
        "coby      skipped    too long: 57 > 20",
        "coby      post failed  x: POST /2/tweets: 403 duplicate content",
    ]


def test_json_story_lines_carry_the_whole_action(stream) -> None:
    configure_logging("INFO", "json", [], stream=stream)
    trade = {"summary": "swapped: 0.01 SOL → 1234.5 BONK", "status": "confirmed", "signature": "5sig"}
    tell(action("trade", {"input": "SOL", "output": "BONK", "amount": 0.01, "reasoning": "momentum"}),
         ActionOutcome("5sig", trade))
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "traded" and line["logger"] == "puppet_engine.story" and line["level"] == "info"
    assert line["trade"] == trade and line["reasoning"] == "momentum" and line["external_id"] == "5sig"
    assert line["agent_id"] == "ledger" and line["action_key"] == "trade:ledger:1" and line["kind"] == "trade"


def test_the_engine_says_in_words_what_it_does_with_memory_and_mentions(stream) -> None:
    configure_logging("INFO", "console", [], stream=stream)
    get_logger("puppet_engine.wiring").info("embedder_loading", embedder="local:all-MiniLM-L6-v2")
    get_logger("puppet_engine.mention_stream").info("stream_role_taken", owner="node-1")
    get_logger("puppet_engine.tweet_stream").info("stream_rules_synced", added=3, deleted=0, rules=3)
    get_logger("puppet_engine.mention_stream").info("stream_up")
    get_logger("puppet_engine.mention_stream").info("mention_polls_brought_forward", polls=3, stream_up=True)
    get_logger("puppet_engine.wiring").info("embedder_ready", embedder="local:all-MiniLM-L6-v2", seconds=4.31)
    get_logger("puppet_engine.mention_stream").info("stream_down")
    lines = [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in stream.getvalue().splitlines()]
    assert lines == [
        "-         memory     loading the embedding model local:all-MiniLM-L6-v2: agents run meanwhile, "
        "their memory writes wait for it",
        "-         mentions   this process reads the real-time mention stream",
        "-         mentions   stream rules in place: 3 (3 added, 0 removed)",
        "-         mentions   real-time stream connected: mentions arrive as they are posted",
        "-         memory     embedding model local:all-MiniLM-L6-v2 ready after 4.31 s",
        "-         mentions   real-time stream down: mentions are polled until it is back",
    ]
