"""Output validation: cleaning, style guide, topics, handles, length/threads, near-duplicates, regeneration."""

from __future__ import annotations

import pytest

from puppet_engine.content import PromptContext, generate_validated, validate_post
from puppet_engine.content.validation import clean
from puppet_engine.errors import ValidationFailed
from puppet_engine.llm import FakeProvider
from puppet_engine.llm.base import Completion, CompletionRequest, LLMProvider
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.twitter.text import weighted_length


def agent(thread: int = 1, max_len: int | None = None, **formatting: object) -> AgentConfig:
    return parse_agent_config({
        "id": "tess", "name": "Tess",
        "personality": {"interests": ["Compost", "Rain"]},
        "style_guide": {
            "formatting": {"uses_hashtags": False, "uses_emojis": False, **formatting},
            "vocabulary": {"key_terms": ["soil"], "avoid_terms": ["hustle", "100x"]},
            "topics_to_avoid": ["Partisan politics", "Price predictions"],
        },
        "behavior": {"content_preferences": {"max_thread_length": thread, "max_post_length": max_len}},
    })


@pytest.mark.parametrize(("raw", "expected"), [
    ('"Soil is slow and so am I."', "Soil is slow and so am I."),
    ("Tweet: Soil is slow.", "Soil is slow."),
    ("Assistant: “Rain again, roots happy.”", "Rain again, roots happy."),
    ("As an AI language model, I don't have a garden. But compost is patient.", "But compost is patient."),
    ("Here's my tweet: rain on the compost", "rain on the compost"),
    ("Tess: rain today", "rain today"),
    ("  @TESS：rain today", "rain today"),
    ("tess : Tess: rain today", "rain today"),
    ("Tess rain today: no label", "Tess rain today: no label"),
    ("Tess and rain today", "Tess and rain today"),
])
def test_model_wrapping_and_boilerplate_are_removed(raw: str, expected: str) -> None:
    assert clean(raw, agent()) == expected
    assert validate_post(raw, agent(), []).text == expected


def test_hyphens_are_rewritten_when_the_persona_avoids_them() -> None:
    text = validate_post("soil — slow and steady, well-known truth https://x.com/a-b", agent(avoid_hyphens=True)).text
    assert text == "soil, slow and steady, well known truth https://x.com/a-b"


@pytest.mark.parametrize(("text", "reason"), [
    ("compost season #gardening", "hashtags"),
    ("compost season 🌱", "emojis"),
    ("time to hustle in the garden", "avoided terms: hustle"),
    ("compost will 100x this year", "avoided terms: 100x"),
    ("who are you voting for in the election, democrats?", "topics to avoid: Partisan politics"),
    ("soil price target: this token will hit $5", "topics to avoid: Price predictions"),
    ("@randomperson look at my compost", "@randomperson"),
    ("my friend is user 1234567890123456789", "user id"),
    ("   \"\"  ", "empty"),
])
def test_off_style_text_is_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_post(text, agent(), [])
    assert any(reason in r for r in info.value.reasons), info.value.reasons


def test_style_the_persona_uses_is_accepted() -> None:
    assert validate_post("compost season #gardening 🌱", agent(uses_hashtags=True, uses_emojis=True)).parts


def test_the_account_being_replied_to_may_be_named() -> None:
    result = validate_post("@maria compost needs patience", agent(), [], kind="reply", replying_to="maria")
    assert result.parts == ("@maria compost needs patience",)


def test_text_over_x_limit_is_rejected_without_threads_and_split_with_them() -> None:
    long_text = " ".join(f"Sentence {i} about compost and the soil that keeps it warm." for i in range(9))
    assert weighted_length(long_text) > 280
    with pytest.raises(ValidationFailed, match="X's limit is 280"):
        validate_post(long_text, agent(thread=1), [])
    parts = validate_post(long_text, agent(thread=3), []).parts
    assert 2 <= len(parts) <= 3 and all(weighted_length(p) <= 280 for p in parts)
    with pytest.raises(ValidationFailed, match="max_thread_length is 2"):
        validate_post(long_text + " " + long_text, agent(thread=2), [])


def test_text_over_the_authors_maximum_is_fitted_not_refused() -> None:
    reply = validate_post("@maria " + "compost " * 20, agent(max_len=100), [], kind="reply", replying_to="maria")
    assert reply.text.startswith("@maria compost") and reply.text.endswith("…")
    assert weighted_length(reply.text.removeprefix("@maria ")) <= 100  # the handle does not count
    assert reply.cut_from == 159
    post = validate_post("Rain came early today. The compost is warm and the soil is alive again.", agent(max_len=40))
    assert post.parts == ("Rain came early today.",)  # cut after the last whole sentence that fits


def test_near_duplicates_of_recent_posts_are_rejected() -> None:
    recent = ["Rain again today, the compost is finally warm and the soil smells alive."]
    with pytest.raises(ValidationFailed, match="near-duplicate"):
        validate_post("rain again today! the compost is finally warm, and the soil smells alive", agent(), recent)
    with pytest.raises(ValidationFailed, match="near-duplicate"):
        validate_post("Rain again today, the compost is finally warm and the soil smells alive. Nice.",
                      agent(), recent)
    assert validate_post("Heirloom seeds arrived; planting them after the frost.", agent(), recent).parts


class Scripted(LLMProvider):
    """Answers with the given texts in order (the last one repeats)."""

    name = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts, self.seeds = list(texts), []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.seeds.append(request.seed)
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return Completion(text=text, model="scripted", provider=self.name)


async def test_regeneration_retries_with_new_seeds_until_a_text_passes() -> None:
    provider = Scripted("compost #gardening", "x " * 300, "Rain on the compost, slow and good.")
    result = await generate_validated(provider, agent(), PromptContext(seed=10), [], attempts=3)
    assert result.text == "Rain on the compost, slow and good."
    assert len(set(provider.seeds)) == 3


async def test_regeneration_gives_up_after_the_bounded_attempts_saying_why() -> None:
    provider = Scripted("compost #gardening")
    with pytest.raises(ValidationFailed) as info:
        await generate_validated(provider, agent(), PromptContext(seed=1), [], attempts=2)
    assert len(provider.seeds) == 2
    assert [r.split(":")[0] for r in info.value.reasons] == ["attempt 1", "attempt 2"]


async def test_the_fake_provider_passes_validation_many_times_in_a_row() -> None:
    persona, provider, recent = agent(), FakeProvider(), []
    for seed in range(15):
        result = await generate_validated(provider, persona, PromptContext(recent_posts=recent[:10], seed=seed),
                                          recent[:10])
        recent.insert(0, result.text)
    assert len(set(recent)) == 15
