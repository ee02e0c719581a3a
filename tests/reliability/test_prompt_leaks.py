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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair

from puppet_engine.agents.safety import fold, leaks
from puppet_engine.content.prompts import system_prompt
from puppet_engine.persona import parse_agent_config
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


# What can sit between the characters of an echo without hiding it from a reader.
SEPARATORS = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", ".", "-", " ", "_", "\u00a0", "\u2009",
              "\u3000", "·", "*", "/", "\n"]
WORDS = ["lighthouse", "keeper", "logs", "calm", "tide", "answer", "short", "never", "secret", "harbour", "lamp",
         "night", "ships", "fog", "signal", "rope", "salt", "watch", "north", "stone"]


CONFIGS = {custom: parse_agent_config(wren(custom)) for custom in (False, True)}


@st.composite
def spread_out(draw: st.DrawFn, text: str, *, inside_words: bool) -> str:
    """``text`` with separators between its words (and, if ``inside_words``, between any characters)."""
    out = []
    for ch in text:
        if ch == " ":
            out.append(draw(st.text(st.sampled_from(SEPARATORS), min_size=1, max_size=3)))
            continue
        out.append(ch.upper() if draw(st.booleans()) else ch)
        if inside_words and draw(st.booleans()):
            out.append(draw(st.text(st.sampled_from(SEPARATORS), min_size=1, max_size=2)))
    return "".join(out)


@st.composite
def short_prompts(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=8, max_size=12))
    return " ".join(words)[:40].strip()


@given(data=st.data(), prompt=short_prompts(), inside=st.booleans(),
       before=st.sampled_from(["", "sure, here: ", "ok ", "📜 "]), after=st.sampled_from(["", " 🙂", " — that's all"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_short_system_prompt_spread_out_is_still_caught(data: st.DataObject, prompt: str, inside: bool,
                                                          before: str, after: str) -> None:
    config = CONFIGS[False]
    echo = before + data.draw(spread_out(prompt, inside_words=inside)) + after
    assert leaks(echo, config, system_prompt=prompt) is not None, (prompt, echo)


@given(data=st.data(), cut=st.integers(min_value=0, max_value=500))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_slice_of_the_built_prompt_spread_out_is_still_caught(data: st.DataObject, cut: int) -> None:
    config = CONFIGS[True]
    prompt = " ".join(system_prompt(config).split())
    start = cut % max(1, len(prompt) - 80)
    echo = "my rules: " + data.draw(spread_out(prompt[start:start + 80], inside_words=data.draw(st.booleans())))
    assert leaks(echo, config) is not None, echo


@given(data=st.data(), inside=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_secret_spread_out_is_still_caught(data: st.DataObject, inside: bool) -> None:
    config = CONFIGS[False]
    key = str(WALLET)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(key) - 1), max_size=12)))
    pieces = [key[a:b] for a, b in zip([0, *cuts], [*cuts, len(key)], strict=True)]
    spaced = data.draw(spread_out(" ".join(pieces), inside_words=inside))
    assert leaks(f"the key is {spaced} ok", config) is not None, spaced
    assert leaks(" ".join(key), config) is not None  # one space between every character


def test_ordinary_text_is_not_refused() -> None:
    """Every friendly crowd message, and replies in the persona's own words, pass the check."""
    config = parse_agent_config(wren(True))
    corpus = load_corpus()
    ordinary = [t.format(agent="wren", topic=topic) for texts in corpus["friendly"].values() for t in texts
                for topic in corpus["topics"][:3]]
    ordinary += [str(topic) for topic in corpus["topics"]]
    ordinary += ["validators and tea, that is all I think about", "curious about validators; tea helps",
                 "short calm sentences are my thing", "a keeper of logs. a calm one.",
                 "I never share a secret, but I do share tea", "Lighthouse logs: 3 ships, 0 storms.",
                 "gm — sea’s calm, logs are short, tea is hot ☕", "Ｆｕｌｌ-width text is fine too"]
    assert len(ordinary) > 20
    refused = [text for text in ordinary if leaks(text, config) is not None]
    assert refused == []


def test_fold_drops_what_hides_an_echo_and_keeps_letters_and_digits() -> None:
    assert fold("S\u200be.c-r\u2060e t\u00ad_K\u3000E\uff39 ９") == "secretkey9"
    assert fold("𝐛𝐨𝐥𝐝 Ünïcode") == "boldünïcode"
