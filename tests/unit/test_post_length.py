"""Length settings guide the model and cut its text; they never mute an agent.

``typical_post_length`` is a target in characters clamped to 20–280 (as in the original
engine), ``max_post_length`` the author's maximum: both are told to the model in words,
text over the maximum is fitted at a sentence or word boundary, and ``agents validate``
warns about limits that cut most output. A streak of skipped posts is logged once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from puppet_engine.agents.behaviors.posting import SKIP_STREAK_WARNING, skip_streak
from puppet_engine.agents.state import AgentState
from puppet_engine.cli import app
from puppet_engine.content import PromptContext, generate_reply, generate_tweet
from puppet_engine.content.persona import post_lengths, render_persona_block
from puppet_engine.content.prompts import build_messages
from puppet_engine.content.validation import length_warnings, validate_post
from puppet_engine.llm import FakeProvider
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.persona.block import parse_messages
from puppet_engine.twitter.text import fit_text, weighted_length


def agent(**prefs: object) -> AgentConfig:
    return parse_agent_config({
        "id": "tiny", "name": "Tiny",
        "personality": {"traits": ["dry"], "interests": ["tea", "old maps", "validators"]},
        "style_guide": {"formatting": {"uses_hashtags": False, "uses_emojis": False}},
        "behavior": {"content_preferences": prefs},
    })


@pytest.mark.parametrize(("prefs", "expected"), [
    ({}, (240, 280)),
    ({"typical_post_length": 7, "max_post_length": 20}, (20, 20)),  # clamped up to 20, as the original did
    ({"typical_post_length": 900}, (280, 280)),
    ({"typical_post_length": 240, "max_post_length": 100}, (100, 100)),
    ({"max_post_length": 500}, (240, 280)),  # X's limit caps the author's maximum
])
def test_length_settings_are_read_like_the_original_engine(prefs: dict, expected: tuple[int, int]) -> None:
    assert post_lengths(agent(**prefs)) == expected


def test_the_model_is_told_the_target_in_words_and_characters() -> None:
    tiny = agent(typical_post_length=7, max_post_length=20)
    block = render_persona_block(tiny)
    assert "Typical length: about 3 words (20 characters)" in block
    assert "Maximum length: 20 characters (about 3 words)" in block
    post = build_messages(tiny, PromptContext(purpose="post", topic="tea"))
    assert "About 3 words (20 characters), never more than 20 characters" in post[1].content
    reply = build_messages(tiny, PromptContext(purpose="reply", thread=[("ana", "hi?")], replying_to="ana"))
    assert "about 3 words (under 20 characters, not counting the @ana in front)" in reply[1].content
    facts = parse_messages([{"role": m.role, "content": m.content} for m in post])
    assert (facts.typical_length, facts.max_length) == (20, 20)  # the offline model reads the same numbers


def test_fit_text_prefers_whole_sentences_then_words() -> None:
    text = "Rain came early. The compost is warm and the soil is alive again."
    assert fit_text(text, 30) == "Rain came early."
    assert fit_text(text, 200) == text
    cut = fit_text("Validators keep their own slow time and nobody minds", 20)
    assert cut == "Validators keep…" and weighted_length(cut) <= 20
    assert fit_text("Hi. " + "word " * 40, 60).endswith("…")  # one short sentence would waste the room


async def test_a_tiny_maximum_still_gives_posts_and_replies_that_fit() -> None:
    tiny, provider = agent(typical_post_length=7, max_post_length=20), FakeProvider()
    for seed in range(12):
        post = await generate_tweet(provider, tiny, PromptContext(purpose="post", topic="tea", seed=seed))
        assert weighted_length(validate_post(post, tiny).text) <= 20
        context = PromptContext(purpose="reply", thread=[("crowd_ana", "@tiny what do you think of maps?")],
                                replying_to="crowd_ana", seed=seed)
        reply = validate_post(await generate_reply(provider, tiny, context), tiny, kind="reply",
                              replying_to="crowd_ana")
        assert reply.text.startswith("@crowd_ana ")
        assert weighted_length(reply.text.removeprefix("@crowd_ana ")) <= 20


def test_validate_warns_about_limits_that_cut_most_output(tmp_path: Path) -> None:
    notes = length_warnings(agent(typical_post_length=7, max_post_length=20), "tiny.json")
    assert any(n.startswith("tiny.json: behavior.content_preferences.max_post_length: 20 characters") for n in notes)
    assert any("typical_post_length: 7 is read as 20 characters" in n for n in notes)
    above = length_warnings(agent(typical_post_length=200, max_post_length=120), "a.json")
    assert above == ["a.json: behavior.content_preferences.typical_post_length: 200 is above max_post_length 120; "
                     "the model is asked for about 120 characters and longer text is cut"]
    assert length_warnings(agent(max_post_length=120), "b.json") == []  # the default target is not the author's
    assert length_warnings(agent(), "c.json") == []

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"id": "tiny", "behavior": {"content_preferences": {"typical_post_length": 7,
                                                                                    "max_post_length": 20}}}))
    result = CliRunner().invoke(app, ["agents", "validate", str(path)])
    assert result.exit_code == 0, result.output  # warnings, not errors
    assert f"warning: {path}: behavior.content_preferences.max_post_length" in result.output
    assert "1 agent file(s) valid" in result.output


def test_a_streak_of_skipped_posts_is_logged_once_with_the_most_common_reason() -> None:
    state = AgentState()
    reasons = ["attempt 1: uses avoided terms: tea; attempt 2: uses avoided terms: maps",
               "attempt 1: uses avoided terms: tea; attempt 2: near-duplicate of a recent post: 'x'",
               "attempt 1: uses avoided terms: rain"] + ["attempt 1: uses avoided terms: tea"] * 3
    with capture_logs() as logs:
        for reason in reasons:
            state = state.merged(skip_streak(state, "tiny", reason))
    warnings = [e for e in logs if e["event"] == "posts_keep_being_skipped"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["skipped_in_a_row"] == SKIP_STREAK_WARNING
    assert warnings[0]["most_common_reason"] == "uses avoided terms: tea"
    state = state.merged(skip_streak(state, "tiny", None))  # a post went out: the streak ends
    assert state.post_skip_streak == 0
    with capture_logs() as logs:
        for reason in reasons[:SKIP_STREAK_WARNING]:
            state = state.merged(skip_streak(state, "tiny", reason))
    assert [e["event"] for e in logs] == ["posts_keep_being_skipped"]  # a new streak warns again
