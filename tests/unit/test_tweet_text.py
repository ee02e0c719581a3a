"""Tweet text rules: twitter-text conformance (weighted length, validity) and the helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from puppet_engine.twitter.text import (
    V2,
    V3,
    count_cashtags,
    extract_cashtags,
    extract_mentions,
    extract_urls,
    fit_tweet,
    is_valid_tweet,
    parse_tweet,
    split_thread,
    weighted_length,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "twitter-text"
CASES = yaml.safe_load((DATA / "validate.yml").read_text("utf-8"))["tests"]


def _ids(cases: list[dict]) -> list[str]:
    return [c["description"][:60] for c in cases]


V3_CASES = CASES["WeightedTweetsWithDiscountedEmojiCounterTest"] + CASES["UnicodeDirectionalMarkerCounterTest"]


@pytest.mark.parametrize("case", V3_CASES, ids=_ids(V3_CASES))
def test_v3_conformance(case: dict) -> None:
    result = parse_tweet(case["text"], V3)
    expected = case["expected"]
    assert (result.weighted_length, result.valid, result.permillage) == (
        expected["weightedLength"], expected["valid"], expected["permillage"]
    )


@pytest.mark.parametrize("case", CASES["WeightedTweetsCounterTest"], ids=_ids(CASES["WeightedTweetsCounterTest"]))
def test_v2_conformance(case: dict) -> None:
    """The previous config (emoji counted per code point) shares the same walker."""
    result = parse_tweet(case["text"], V2)
    assert (result.weighted_length, result.valid) == (case["expected"]["weightedLength"], case["expected"]["valid"])


def test_basic_weights() -> None:
    assert weighted_length("hello") == 5
    assert weighted_length("日本") == 4
    assert weighted_length("👨‍👩‍👧‍👦") == 2
    assert weighted_length("see https://example.com/a/very/long/path?with=query") == 4 + 23
    assert weighted_length("é") == weighted_length("e\u0301") == 1
    assert not is_valid_tweet("")
    assert not is_valid_tweet("   ")
    assert is_valid_tweet("x" * 280)
    assert not is_valid_tweet("x" * 281)


def test_urls_follow_twitter_text_rules() -> None:
    assert extract_urls("go to www.example.com/path and http://test.co now") == [
        "www.example.com/path", "http://test.co",
    ]
    assert extract_urls("mail me@example.com") == []
    assert extract_urls("example.co") == []  # short ccTLD domain without scheme or path
    assert extract_urls("example.nope") == []
    assert extract_urls("(see https://en.wikipedia.org/wiki/Foo_(bar))") == ["https://en.wikipedia.org/wiki/Foo_(bar)"]


def test_cashtags_and_mentions() -> None:
    assert extract_cashtags("buying $SOL and $bonk, not $100 or a$B") == ["SOL", "bonk"]
    assert count_cashtags("$SOL $JUP") == 2
    assert count_cashtags("no tickers") == 0
    assert extract_mentions("hi @alice and @bob_2, not me@mail.com") == ["alice", "bob_2"]


def test_fit_tweet_keeps_fitting_text_and_cuts_at_a_word() -> None:
    assert fit_tweet("  short  ") == "short"
    long = " ".join(["word"] * 100)
    fitted = fit_tweet(long)
    assert fitted.endswith("word…")
    assert weighted_length(fitted) <= 280
    assert weighted_length(fitted) > 270


def test_fit_tweet_never_cuts_urls_or_emoji() -> None:
    text = "x" * 250 + " https://example.com/" + "a" * 50 + " tail"
    fitted = fit_tweet(text)
    assert weighted_length(fitted) <= 280
    assert "https://example.com/" + "a" * 50 in fitted
    emoji = "👨‍👩‍👧‍👦" * 200
    fitted = fit_tweet(emoji)
    assert weighted_length(fitted) <= 280
    assert fitted.removesuffix("…") == "👨‍👩‍👧‍👦" * (len(fitted.removesuffix("…")) // len("👨‍👩‍👧‍👦"))


def test_fit_tweet_custom_limit_and_cjk() -> None:
    fitted = fit_tweet("故人西辞黄鹤楼" * 40, max_weight=50)
    assert weighted_length(fitted) <= 50


def test_split_thread_keeps_sentences_and_fits() -> None:
    sentences = [f"Sentence number {i} says something about markets and memory." for i in range(20)]
    parts = split_thread(" ".join(sentences), max_parts=10)
    assert 2 <= len(parts) <= 10
    assert all(weighted_length(part) <= 280 for part in parts)
    assert " ".join(parts) == " ".join(sentences)
    assert all(part.endswith(".") for part in parts)


def test_split_thread_long_words_numbering_and_cap() -> None:
    parts = split_thread("a" * 700, max_parts=5)
    assert "".join(parts) == "a" * 700
    assert all(weighted_length(part) <= 280 for part in parts)
    numbered = split_thread(" ".join(["word"] * 200), max_parts=3, numbered=True)
    assert len(numbered) == 3
    assert numbered[0].endswith(" 1/3") and numbered[2].endswith("… 3/3")
    assert all(weighted_length(part) <= 280 for part in numbered)
    assert split_thread("") == []
    assert split_thread("one short post") == ["one short post"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc é日👍🏽‍ https://x.co/a @b #c\n\t.,\u200d\ufe0f", max_size=120))
def test_weighing_in_runs_matches_weighing_unit_by_unit(text: str) -> None:
    from puppet_engine.twitter.text import V2, V3, _total_weight, _units, normalize

    for config in (V3, V2):
        assert _total_weight(normalize(text), config) == sum(u.weight for u in _units(normalize(text), config))
