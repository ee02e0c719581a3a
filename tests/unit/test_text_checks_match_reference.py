"""The per-post text checks made cheaper give the answers of the plain versions they replaced:
the fake generator's verdict on a candidate (each check once), the near-duplicate test on cached
token sets, the emoji test's ASCII shortcut, the probed system-prompt leak check."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable

import pytest

from puppet_engine.agents.safety import _shares_run, fold, leaks
from puppet_engine.content import PromptContext, build_messages
from puppet_engine.llm import textgen
from puppet_engine.persona import block, parse_agent_config, rules
from puppet_engine.persona.block import PromptFacts, parse_messages
from puppet_engine.twitter.text import weighted_length

WORDS = ("tea", "maps", "rain", "validators", "slow", "smooth", "the", "small", "print", "again", "détail",
         "#tea", "@ann", "soil", "roots", "hustle", "politics", "vote", "for", "president", "well-known", "🌧️", "—")


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# --------------------------------------------------------------------------- the generator's verdict


def acceptable(text: str, facts: PromptFacts, *, check_length: bool = True, strict: bool = True) -> bool:
    """The generator's check as it was, asked up to three times per candidate."""
    limit = min(280, facts.max_length or 280)
    own = rules.leading_handles(text)[1] if facts.purpose == "reply" else text
    if check_length and weighted_length(own.split("\n\n")[0]) > limit:
        return False
    if check_length and facts.purpose != "thread" and weighted_length(own) > limit:
        return False
    if rules.avoided_terms_in(text, facts.avoid_terms) or rules.avoided_topics_in(text, facts.topics_to_avoid):
        return False
    if not facts.hashtags and rules.hashtags(text):
        return False
    if facts.avoid_hyphens and rules.HYPHENS.search(text):
        return False
    if not strict:
        return rules.near_duplicate_of(text, facts.recent_posts) is None
    return rules.near_duplicate_of(text, facts.recent_posts, jaccard=0.4, shingles=0.34) is None


def reference_verdict(text: str, facts: PromptFacts) -> str | None:
    if acceptable(text, facts):
        return "new"
    if acceptable(text, facts, strict=False):
        return "relaxed"
    if acceptable(text, facts, strict=False, check_length=False):
        return "too long"
    return None


@pytest.mark.parametrize("purpose", ["post", "reply", "thread", "quote"])
def test_the_generators_verdict_is_the_three_checks_it_replaced(purpose: str) -> None:
    rng = random.Random(purpose)
    seen: set[str | None] = set()
    for case in range(400):
        recent = [sentence(rng, rng.randint(0, 12)) for _ in range(rng.randint(0, 6))]
        facts = PromptFacts(purpose=purpose, max_length=rng.choice([0, 20, 60, 140, 280]),
                            hashtags=rng.random() < 0.5, avoid_hyphens=rng.random() < 0.5,
                            avoid_terms=["hustle"] if rng.random() < 0.5 else [],
                            topics_to_avoid=["Partisan politics"] if rng.random() < 0.3 else [],
                            recent_posts=recent)
        if recent and rng.random() < 0.4:  # near or exact repeats of a recent post
            words = rng.choice(recent).split()
            text = " ".join(words[: max(0, len(words) - rng.randint(0, 3))]) + rng.choice(["", " again"])
        else:
            text = sentence(rng, rng.randint(1, 60))
        if rng.random() < 0.3:
            text = f"{text}\n\n{sentence(rng, rng.randint(1, 40))}"
        if purpose == "reply":
            text = f"@ann {text}"
        verdict = textgen._verdict(text, facts)
        assert verdict == reference_verdict(text, facts), (case, text, facts)
        seen.add(verdict)
    assert seen == {"new", "relaxed", "too long", None}


def test_generated_posts_are_those_of_the_three_checks() -> None:
    config = parse_agent_config({"id": "tess", "personality": {"interests": ["tea", "maps", "rain"]},
                                 "behavior": {"content_preferences": {"max_post_length": 90}}})
    recent: list[str] = []
    for seed in range(60):
        facts = parse_messages(build_messages(config, PromptContext(purpose="post", seed=seed,
                                                                    recent_posts=recent[:10])))
        text = textgen.generate(facts, seed)
        relaxed, too_long, expected = [], [], None
        for attempt in range(textgen.ATTEMPTS):
            candidate_rng = random.Random(f"{seed}:{_base(facts)}:{attempt}")
            candidate = textgen._addressed(textgen._styled(textgen._compose(facts, candidate_rng), facts,
                                                           candidate_rng), facts)
            verdict = reference_verdict(candidate, facts)
            if verdict == "new":
                expected = candidate
                break
            (relaxed if verdict == "relaxed" else too_long if verdict == "too long" else []).append(candidate)
        else:
            expected = relaxed[0] if relaxed else min(too_long, key=len) if too_long else candidate
        assert text == expected
        recent.insert(0, text)


def _base(facts: PromptFacts) -> int:
    return zlib.crc32(f"{facts.system_text}\x00{facts.user_text}".encode())


def slots(facts: PromptFacts, rng: random.Random, topic: str | None = None) -> dict[str, str]:
    """The slots as they were filled, the persona's words cased and checked afresh each time."""
    allowed = textgen._allowed
    interests = [textgen._case(i) for i in facts.interests if allowed(i, facts)] or list(textgen.FALLBACK_TOPICS)
    terms = [textgen._case(t) for t in facts.key_terms if allowed(t, facts)] or list(textgen.FALLBACK_TERMS)
    if (facts.max_length or 280) < 100:
        interests = sorted(interests, key=len)[: max(2, len(interests) // 2)]
    chosen = textgen._case(topic) if topic and allowed(topic, facts) else rng.choice(interests)
    others = [i for i in interests if i != chosen] or list(textgen.FALLBACK_TOPICS)
    values = [textgen._case(v).rstrip(".") for v in facts.values if allowed(v, facts)] or ["slow is smooth"]
    traits = [textgen._case(t) for t in facts.traits] or ["curious"]
    word, word2 = rng.sample(textgen.SHORT_WORDS, 2)
    return {"topic": chosen, "thing": rng.choice(others), "term": rng.choice(terms), "value": rng.choice(values),
            "trait": rng.choice(traits), "time": rng.choice(textgen.TIMES), "n": str(rng.randint(2, 9)),
            "user": facts.replying_to or "friend", "word": word, "word2": word2}


def test_slots_from_the_cached_persona_words_are_those_filled_afresh() -> None:
    rng = random.Random(11)
    phrases = ["Tea", "DeFi rails", "NFTs", "partisan politics", "hustle culture", "Maps.", "rain", "AI", "vote for me"]
    for case in range(500):
        facts = PromptFacts(interests=rng.sample(phrases, rng.randint(0, 5)),
                            key_terms=rng.sample(phrases, rng.randint(0, 3)),
                            values=rng.sample(phrases, rng.randint(0, 3)), traits=rng.sample(phrases, rng.randint(0, 2)),
                            avoid_terms=rng.sample(["hustle", "ai", "nfts"], rng.randint(0, 2)),
                            topics_to_avoid=rng.sample(["Partisan politics", "rain"], rng.randint(0, 2)),
                            max_length=rng.choice([0, 40, 99, 100, 280]), replying_to=rng.choice(["", "ann"]))
        topic = rng.choice([None, "Tea", "hustle", "politics today"])
        seed = rng.random()
        assert textgen._slots(facts, random.Random(seed), topic) == slots(facts, random.Random(seed), topic), case


def parse_in_one_pass(messages: list[dict[str, str]]) -> PromptFacts:
    """The messages read as they were: system prompt and user message as one text, nothing cached."""
    facts = PromptFacts()
    systems = [m["content"] for m in messages if m["role"] in ("system", "developer")]
    users = [m["content"] for m in messages if m["role"] not in ("system", "developer")]
    facts.system_text, facts.user_text = "\n".join(systems), "\n".join(users[-1:])
    block._read_lines(facts, "", "\n".join([*systems, *users[-1:]]))
    return facts


def test_messages_read_with_the_cached_system_prompt_are_read_as_in_one_pass() -> None:
    config = parse_agent_config({"id": "tess", "personality": {"interests": ["tea", "maps"]},
                                 "style_guide": {"vocabulary": {"avoid_terms": ["hustle"]}}})
    system = build_messages(config, PromptContext())[0].content
    rng = random.Random(5)
    lines = [block.RECENT_HEADER, block.MEMORY_HEADER, block.THREAD_HEADER, block.HEARD_HEADER, "- a post",
             '@ann: "hi there"', '- @bob: "hello"', "Topic: tea", "Task: reply", "Interests: rain; soil", "",
             "Replying to: @ann", "plain words", "Trade: token=SOL; action=buy", "\r", "Never use these words: x"]
    for case in range(400):
        tail = "\n".join(rng.choice(lines) for _ in range(rng.randint(0, 6)))  # may leave a section open
        systems = [{"role": "system", "content": system + rng.choice(["", "\n", "\r", "\n\n"]) + tail}]
        if rng.random() < 0.3:
            systems.append({"role": "developer", "content": rng.choice(lines)})
        user = "\n".join(rng.choice(lines) for _ in range(rng.randint(0, 10)))
        messages = [*systems[: rng.randint(0, len(systems))], {"role": "user", "content": "old"},
                    {"role": "user", "content": rng.choice(["", "\n", "\r\n"]) + user}]
        for _ in range(2):  # the second read comes from the cache: the first one's changes are not in it
            facts = parse_messages(messages)
            assert facts == parse_in_one_pass(messages), case
            facts.interests.append("changed")
            facts.recent_posts.append("changed")
            facts.trade["changed"] = "yes"


# --------------------------------------------------------------------------- near duplicates, emojis


def near_duplicate_of(text: str, recent: Iterable[str], jaccard: float = rules.DUPLICATE_JACCARD,
                      shingles: float = rules.DUPLICATE_SHINGLES) -> str | None:
    """The near-duplicate test as it was, on token sets made afresh."""
    ta = rules.tokens(text)
    for other in recent:
        if not other:
            continue
        tb = rules.tokens(other)
        if ta and tb:
            sa, sb = set(ta), set(tb)
            if len(sa & sb) / len(sa | sb) >= jaccard:
                return other
            ha, hb = rules._shingles(ta), rules._shingles(tb)
            small, big = (ha, hb) if len(ha) <= len(hb) else (hb, ha)
            if min(len(ta), len(tb)) >= 4 and small and len(small & big) / len(small) >= shingles:
                return other
        elif " ".join(text.lower().split()) == " ".join(other.lower().split()):
            return other
    return None


def test_near_duplicates_are_those_of_the_plain_test() -> None:
    rng = random.Random(7)
    found = 0
    for _ in range(2000):
        recent = [sentence(rng, rng.randint(0, 10)) for _ in range(rng.randint(0, 5))] + ["", "!!", "?"]
        base = rng.choice(recent)
        text = rng.choice([sentence(rng, rng.randint(0, 10)), base, base + " " + sentence(rng, 2), "?!"])
        for thresholds in ((rules.DUPLICATE_JACCARD, rules.DUPLICATE_SHINGLES), (0.4, 0.34)):
            expected = near_duplicate_of(text, recent, *thresholds)
            assert rules.near_duplicate_of(text, recent, *thresholds) == expected
            found += expected is not None
    assert found > 100


def test_the_emoji_test_skips_only_ascii_text() -> None:
    assert not any(rules._is_emoji_char(chr(c)) for c in range(128))
    for text in ("plain words", "tea 🍵", "rain ☔ again", "café", "snow ❄", "arrow →", "⌚ watch", ""):
        assert rules.has_emoji(text) == any(rules._is_emoji_char(ch) for ch in text), text


# --------------------------------------------------------------------------- leaks of the system prompt


def shares_run(folded: str, folded_prompt: str, size: int) -> bool:
    """The check as it was: every run of ``size`` characters of the prompt, as a set."""
    if len(folded_prompt) <= size:
        runs = frozenset({folded_prompt})
    else:
        runs = frozenset(folded_prompt[i:i + size] for i in range(len(folded_prompt) - size + 1))
    return any(folded[i:i + size] in runs for i in range(len(folded) - size + 1))


def test_probed_prompt_runs_are_those_of_every_run() -> None:
    rng = random.Random(3)
    letters = "abcde"  # few letters: runs shared by chance, of every length
    hits = 0
    for _ in range(3000):
        prompt = "".join(rng.choice(letters) for _ in range(rng.randint(1, 300)))
        text = "".join(rng.choice(letters) for _ in range(rng.randint(0, 120)))
        if rng.random() < 0.5 and len(prompt) > 2:  # plant a piece of the prompt anywhere in the text
            start = rng.randrange(len(prompt))
            piece = prompt[start:start + rng.randint(1, 60)]
            at = rng.randint(0, len(text))
            text = text[:at] + piece + text[at:]
        size = min(rng.choice([1, 2, 3, 7, 24, 40]), len(prompt))
        expected = shares_run(text, prompt, size)
        assert _shares_run(text, prompt, size) == expected, (text, prompt, size)
        hits += expected
    assert hits > 300


def test_an_echo_of_the_prompt_is_found_at_every_offset() -> None:
    config = parse_agent_config({"id": "tess", "description": "a gardener who writes about soil and patience",
                                 "personality": {"interests": ["tea", "maps"]}})
    prompt = build_messages(config, PromptContext())[0].content
    echoes = 0
    for start in range(0, len(prompt) - 60, 7):
        echo = f"so {prompt[start:start + 60]} ok"
        expected = shares_run(fold(echo), fold(prompt), 40)
        assert _shares_run(fold(echo), fold(prompt), 40) == expected
        if expected:
            assert leaks(echo, config) == "reply would reveal the system prompt"
            echoes += 1
    assert echoes > 10
