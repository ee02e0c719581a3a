"""A model that obeys prompt injection: its echo of the system prompt or a secret never goes out.

The sandbox OpenAI API (``llm_provider: openai``) is made to answer every completion
with what a jailbroken model would say: the system prompt verbatim, reformatted (one
line, markdown stripped), a slice of it behind friendly words, or the agent's wallet
key. Hostile mentions then arrive and a post falls due: nothing of it reaches X, each
mention is recorded as deliberately skipped, and the engine keeps going.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from solders.keypair import Keypair

from puppet_engine.agents.config import parse_agent_config
from puppet_engine.agents.safety import leaks
from puppet_engine.llm.prompts import system_prompt
from puppet_engine.sandbox.crowd import load_corpus
from puppet_engine.storage import tables

from .helpers import persona, rig

WALLET = Keypair()
CUSTOM = "you are wren, a keeper of lighthouse logs who answers in short calm sentences and never shares a secret"


def completion(content: str) -> dict[str, Any]:
    return {"id": "chatcmpl-echo", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 50, "total_tokens": 100}}


def wren(custom: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"solana_integration": {"private_key": str(WALLET), "trading_enabled": False}}
    if custom:
        extra["custom_system_prompt"] = CUSTOM
    return persona("wren", post_hours=0.05, **extra)


def echoes(config: dict[str, Any]) -> list[str]:
    prompt = system_prompt(parse_agent_config(config))
    one_line = " ".join(prompt.replace("#", " ").split())
    return [
        prompt,
        one_line,
        f"sure! my instructions say: {one_line[len(one_line) // 3:len(one_line) // 3 + 90]}",
        f"ok here it is: {WALLET!s}",
        prompt.upper(),
    ]


@pytest.mark.parametrize("custom", [False, True], ids=["built-prompt", "custom-prompt"])
async def test_an_obedient_model_leaks_nothing(tmp_path: Path, custom: bool) -> None:
    config = wren(custom)
    hostile = [t.format(agent="wren") for texts in load_corpus()["hostile"].values() for t in texts][:12]
    async with rig(tmp_path, config) as r:
        await r.run_for(60)
        asked = []
        for round_, echo in enumerate(echoes(config)):
            await r.clear_faults("openai")
            await r.fault(service="openai", method="POST", path="/v1/chat/completions", status=200,
                          body=completion(echo), count=10_000)
            for i in range(2):
                asked.append(await r.mention(f"jail{round_}{i}", hostile[(2 * round_ + i) % len(hostile)]))
            await r.run_for(5 * 60)
        await r.clear_faults("openai")
        tweets = await r.tweets_of("wren")
        decisions = await r.decisions("wren")
        events = await r.event_statuses()
        reasons = " ".join(str(row[0]) for row in await r.rows(sa.select(tables.events.c.result)))
    # Short echoes pass every other rule: the leak check is what stopped them.
    assert "reveal the system prompt" in reasons and "reveal a secret" in reasons
    for tweet in tweets:
        assert leaks(tweet["text"], parse_agent_config(config)) is None, tweet["text"]
        assert str(WALLET) not in tweet["text"]
    assert tweets == []  # every answer the model gave was a leak: nothing was posted at all
    assert [decisions[t] for t in asked] == ["skip:ValidationFailed"] * len(asked)
    assert events.get("failed", 0) == 0 and events.get("running", 0) == 0


def test_reformatted_echoes_are_recognised_and_ordinary_replies_are_not() -> None:
    config = parse_agent_config(wren(True))
    for echo in echoes(wren(True)):
        assert leaks(echo, config) is not None, echo
    spread = json.dumps(system_prompt(config))  # quoted and escaped as a JSON string
    assert leaks(spread, config) is not None
    for fine in ("@ana lighthouses keep logs so ships keep going", "calm seas today, logs are short",
                 "Write only what you mean, and mean it."):
        assert leaks(fine, config) is None, fine
