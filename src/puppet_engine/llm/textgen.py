"""Offline text in an agent's voice, derived only from the chat messages.

Used by ``FakeProvider`` and by the sandbox's OpenAI-compatible API, so both write
the same way: the persona block of the system prompt (see
:mod:`puppet_engine.persona.block`) says who is speaking and how (traits pick a
register, interests and key terms fill it, the style guide shapes the surface), and
the user message says what to do (post, reply to a question, react to news …).

Output is deterministic for (messages, seed), varied across seeds, never a
near-duplicate of the recent posts listed in the prompt, and stays inside the
style rules that :mod:`puppet_engine.content.validation` enforces.
"""

from __future__ import annotations

import functools
import random
import re
import zlib
from collections.abc import Sequence
from typing import Any, Literal

from puppet_engine.llm.phrasebook import (
    CLOSERS,
    EMOJIS,
    FALLBACK_TERMS,
    FALLBACK_TOPICS,
    POSTS,
    REGISTER_WORDS,
    REPLIES,
    SHORT_POSTS,
    SHORT_REPLIES,
    SHORT_WORDS,
    TIMES,
    TRADE_CLOSERS,
    TRADE_DEALS,
    TRADE_OPENERS,
)
from puppet_engine.persona import rules
from puppet_engine.persona.block import TASK_PREFIX as TASK_MARK
from puppet_engine.persona.block import PromptFacts, parse_messages
from puppet_engine.twitter.text import weighted_length

ATTEMPTS = 24
SHORT_MAX = 50  # below this maximum length the persona gets the few-words phrase sets
_NEGATED = re.compile(r"\b(?:no|never|not|without)\s+\w+(?:\s+\w+)?")

_QUESTION_SUBJECT = re.compile(r"\b(?:about|on|of|regarding|with|think of|feel about)\s+(.+?)\s*[?.!]*$", re.I)
_INTENTS: list[tuple[str, re.Pattern[str]]] = [
    ("injection", re.compile(r"ignore (all|any|previous|prior|your)|system prompt|private key|seed phrase|"
                             r"reveal|your instructions|developer mode|jailbreak", re.I)),
    ("trade_request", re.compile(r"\b(buy|sell|pump|ape into|send me|airdrop|shill|dump)\b", re.I)),
    ("hostile", re.compile(r"\b(idiot|stupid|scam|trash|garbage|dumb|liar|fraud|shut up|clown|loser|pathetic|"
                           r"useless|hate you)\b", re.I)),
    ("greeting", re.compile(r"^\W*(gm|gn|hello|hi|hey|yo|good morning|good night|good evening)\b", re.I)),
    ("thanks", re.compile(r"\b(thanks|thank you|thx|appreciate)\b", re.I)),
]


def generate_from_messages(messages: Sequence[Any], seed: int = 0) -> str:
    """Text for these chat messages (dicts or ``ChatMessage``), deterministic for ``seed``."""
    return generate(parse_messages(messages), seed)


_ABOUT = re.compile(r"\b(?:about|interested in|loves?|into|on the topic of)\s+([^.;:!?\n]{3,80})", re.I)


def free_form_topics(text: str) -> list[str]:
    """Topics named in a prompt without a persona block ("... posts about tea and maps.")."""
    found: list[str] = []
    for match in _ABOUT.finditer(text):
        for piece in re.split(r",|\band\b|\bor\b", match.group(1)):
            words = [w for w in piece.split() if w.lower() not in rules._STOP][:4]
            if words:
                found.append(" ".join(words))
    return found[:6]


def generate(facts: PromptFacts, seed: int = 0) -> str:
    """The first of several seeded candidates that fits the style rules and is new."""
    if not facts.interests:
        facts.interests = free_form_topics(facts.system_text)
    if facts.purpose == "content" and TASK_MARK not in facts.user_text:
        if "?" in facts.user_text and not facts.thread:  # a plain question: answer it
            facts.purpose, facts.thread = "answer", [("user", facts.user_text)]
        elif not facts.topic and (asked := free_form_topics(facts.user_text)):
            facts.topic = asked[0]
    base = zlib.crc32(f"{facts.system_text}\x00{facts.user_text}".encode())
    relaxed: list[str] = []
    too_long: list[str] = []
    for attempt in range(ATTEMPTS):
        rng = random.Random(f"{seed}:{base}:{attempt}")
        text = _addressed(_styled(_compose(facts, rng), facts, rng), facts)
        verdict = _verdict(text, facts)
        if verdict == "new":
            return text
        if verdict == "relaxed":
            relaxed.append(text)
        elif verdict == "too long":
            too_long.append(text)
    # Nothing clearly new and fitting: one validation would still accept, else the shortest.
    if relaxed:
        return relaxed[0]
    return min(too_long, key=len) if too_long else text


def register_of(facts: PromptFacts) -> list[str]:
    """Registers (mystic, analytic, upbeat, plain) the persona's words point to, strongest first."""
    words = " ".join([*facts.traits, facts.speaking_style, facts.tone, facts.voice, facts.description]).lower()
    words = _NEGATED.sub(" ", words)  # "no exclamation marks" is not upbeat
    scores = {name: sum(words.count(w) for w in ws) for name, ws in REGISTER_WORDS.items()}
    ranked = [name for name, score in sorted(scores.items(), key=lambda kv: -kv[1]) if score > 0]
    return ranked or ["plain"]


# --------------------------------------------------------------------------- slots


def _case(phrase: str) -> str:
    """Lower-case a phrase, keeping words with inner capitals (DeFi, NFTs) and acronyms."""
    return " ".join(w if (any(c.isupper() for c in w[1:]) or (w.isupper() and len(w) > 1)) else w.lower()
                    for w in phrase.split())


def _allowed(phrase: str, facts: PromptFacts) -> bool:
    return _allowed_by(phrase, facts.avoid_terms, facts.topics_to_avoid)


def _allowed_by(phrase: str, avoid_terms: Sequence[str], topics_to_avoid: Sequence[str]) -> bool:
    return not rules.avoided_terms_in(phrase, avoid_terms) and not rules.avoided_topics_in(phrase, topics_to_avoid)


@functools.lru_cache(maxsize=1024)
def _persona_words(interests: tuple[str, ...], key_terms: tuple[str, ...], values: tuple[str, ...],
                   traits: tuple[str, ...], avoid_terms: tuple[str, ...], topics_to_avoid: tuple[str, ...],
                   max_length: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Interests, key terms, values and traits as slots use them: cased, none of them avoided.
    Cached: one post fills its slots several times, and an agent's persona rarely changes."""
    def kept(phrases: tuple[str, ...]) -> list[str]:
        return [_case(p) for p in phrases if _allowed_by(p, avoid_terms, topics_to_avoid)]

    kept_interests = kept(interests) or list(FALLBACK_TOPICS)
    if (max_length or 280) < 100:  # little room: the shorter interests
        kept_interests = sorted(kept_interests, key=len)[: max(2, len(kept_interests) // 2)]
    kept_values = [v.rstrip(".") for v in kept(values)] or ["slow is smooth"]
    return (tuple(kept_interests), tuple(kept(key_terms) or FALLBACK_TERMS), tuple(kept_values),
            tuple(_case(t) for t in traits) or ("curious",))


def _slots(facts: PromptFacts, rng: random.Random, topic: str | None = None) -> dict[str, str]:
    interests, terms, values, traits = _persona_words(
        tuple(facts.interests), tuple(facts.key_terms), tuple(facts.values), tuple(facts.traits),
        tuple(facts.avoid_terms), tuple(facts.topics_to_avoid), facts.max_length)
    chosen = _case(topic) if topic and _allowed(topic, facts) else rng.choice(interests)
    others = [i for i in interests if i != chosen] or list(FALLBACK_TOPICS)
    word, word2 = rng.sample(SHORT_WORDS, 2)
    return {"topic": chosen, "thing": rng.choice(others), "term": rng.choice(terms), "value": rng.choice(values),
            "trait": rng.choice(traits), "time": rng.choice(TIMES), "n": str(rng.randint(2, 9)),
            "user": facts.replying_to or "friend", "word": word, "word2": word2}


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format_map(slots)


# --------------------------------------------------------------------------- composing


def _compose(facts: PromptFacts, rng: random.Random) -> str:
    purpose = facts.purpose
    if purpose in ("reply", "answer"):
        return _reply(facts, rng)
    if purpose == "quote":
        return _quote(facts, rng)
    if purpose == "trade" and facts.trade:
        return _trade(facts, rng)
    if purpose == "news" and facts.news:
        return _news(facts, rng)
    if purpose == "thread":
        return _thread(facts, rng)
    return _post(facts, rng, facts.topic or None)


def _short(facts: PromptFacts) -> bool:
    return (facts.max_length or 280) < SHORT_MAX


def _sentences(facts: PromptFacts, rng: random.Random, topic: str | None, target: int) -> list[str]:
    if _short(facts):
        return [_fill(rng.choice(SHORT_POSTS), _slots(facts, rng, topic))]
    regs = register_of(facts)
    if "plain" not in regs:
        regs.append("plain")  # the plain register now and then keeps variety up
    reg = regs[0] if rng.random() < 0.75 or len(regs) == 1 else rng.choice(regs[1:])
    first = rng.choice(POSTS[reg])
    used = {first}
    out = [_fill(first, _slots(facts, rng, topic))]
    short = any(w in facts.sentence_length.lower() for w in ("short", "one", "brief", "few words"))
    limit = 2 if short else 3
    while len(" ".join(out)) < target * 0.7 and len(out) < limit:
        pool = [t for t in (CLOSERS[reg] if rng.random() < 0.5 else POSTS[reg]) if t not in used]
        if not pool:
            break
        template = rng.choice(pool)
        used.add(template)
        out.append(_fill(template, _slots(facts, rng, topic)))
    return out


def _target(facts: PromptFacts) -> int:
    limit = facts.max_length or 280
    return max(20, min(facts.typical_length or 140, limit))


def _post(facts: PromptFacts, rng: random.Random, topic: str | None) -> str:
    return " ".join(_sentences(facts, rng, topic, _target(facts)))


def _thread(facts: PromptFacts, rng: random.Random) -> str:
    parts = max(1, min(facts.max_thread_length or 1, 4))
    topic = facts.topic or None
    return "\n\n".join(_post(facts, rng, topic) for _ in range(rng.randint(min(2, parts), parts)))


def _subject(message: str) -> str:
    message = rules.HANDLE.sub("", rules.URL.sub("", message)).strip()
    question = next((s for s in re.split(r"(?<=[?])\s+", message) if "?" in s), message)
    m = _QUESTION_SUBJECT.search(question)
    if m:
        words = m.group(1).split()
    else:
        words = [w for w in re.findall(r"[^\W_][\w']*", question) if w.lower() not in rules._STOP]
    subject = " ".join(words[:6]).strip(" ?.!,")
    return _case(subject) or "that"


_SWAPS = {"you": "i", "your": "my", "yours": "mine", "you're": "i'm", "yourself": "myself", "are": "am",
          "i": "you", "my": "your", "me": "you", "am": "are"}


def restate(message: str) -> str:
    """The question in ``message`` from the other side: "do you like tea?" → "do i like tea"."""
    message = rules.HANDLE.sub("", rules.URL.sub("", message)).strip()
    question = next((s for s in re.split(r"(?<=[.!?])\s+", message) if "?" in s), message)
    words = question.rstrip("?!. ").split()
    has_you = any(w.lower() in ("you", "your", "you're") for w in words)
    out = []
    for w in words[:14]:
        low = w.lower()
        if low == "are" and not has_you:
            out.append(w)
        else:
            out.append(_SWAPS.get(low, w))
    return _case(" ".join(out)) or "that"


def intent_of(message: str) -> str:
    """What a mention is doing: injection, trade_request, hostile, greeting, thanks, question or remark."""
    for name, pattern in _INTENTS:
        if pattern.search(message):
            return name
    if "?" in message:
        lowered = message.lower().lstrip("@ ")
        first = re.sub(r"^(@\w+\s+)+", "", lowered).split()[:1]
        if first and first[0] in ("why",):
            return "why"
        if first and first[0] in ("how",):
            return "how"
        if first and first[0] in ("do", "does", "did", "are", "is", "will", "can", "should", "would", "have",
                                   "was", "were", "could", "has"):
            return "yes_no"
        return "question"
    return "remark"


def _reply(facts: PromptFacts, rng: random.Random) -> str:
    message = facts.last_message
    intent = intent_of(message)
    slots = _slots(facts, rng, facts.topic or None)
    slots["subject"] = _subject(message)
    slots["question"] = restate(message)
    keywords = [w for w in rules.tokens(message) if len(w) > 3]
    slots["keyword"] = rng.choice(keywords) if keywords else slots["subject"]
    if _short(facts):
        return _fill(rng.choice(SHORT_REPLIES[intent]), slots)
    body = _fill(rng.choice(REPLIES[intent]), slots)
    if intent in ("question", "yes_no", "why", "how", "remark") and rng.random() < 0.5:
        reg = register_of(facts)[0]
        body = f"{body} {_fill(rng.choice(CLOSERS[reg]), slots)}"
    if facts.memories and intent in ("question", "remark") and rng.random() < 0.3:
        memory = rules.HANDLE.sub("", rng.choice(facts.memories)).strip().rstrip(".")
        if memory and len(memory) < 90:
            body = f"{body} reminds me: {_case(memory)}."
    return body


def _quote(facts: PromptFacts, rng: random.Random) -> str:
    slots = _slots(facts, rng, facts.topic or None)
    keywords = [w for w in rules.tokens(facts.last_message) if len(w) > 3]
    slots["keyword"] = rng.choice(keywords) if keywords else slots["topic"]
    slots["subject"] = _subject(facts.last_message)
    return _fill(rng.choice(_phrases(facts, "quote")), slots)


def _phrases(facts: PromptFacts, kind: str) -> tuple[str, ...]:
    return SHORT_REPLIES[kind] if _short(facts) and kind in SHORT_REPLIES else REPLIES[kind]


_FAILED = ("failed", "rejected", "error", "expired")


def _trade(facts: PromptFacts, rng: random.Random) -> str:
    """What was traded, as the ``Trade:`` line says: action, token, amount (with symbol), price."""
    t = {k.lower(): v for k, v in facts.trade.items()}
    action = (t.get("action") or t.get("side") or "swapped").lower()
    action = {"buy": "bought", "sell": "sold", "swap": "swapped"}.get(action, action)
    token = t.get("token") or t.get("output_symbol") or t.get("symbol") or t.get("output") or "a token"
    amount, price = t.get("amount", ""), t.get("price", "")
    failed = t.get("status", "").lower() in _FAILED
    slots = {**_slots(facts, rng), "token": token, "action": action, "amount": amount or token, "price": price}
    kind = "trade_failed" if failed else "trade" if amount and price else "trade_plain"
    if _short(facts) and kind == "trade_plain":
        kind = "trade"  # the short set says "{action} {amount}", which is the token when no amount is known
    if kind != "trade" or _short(facts):
        return _fill(rng.choice(_phrases(facts, kind)), slots)
    deal = rng.choice(TRADE_DEALS.get(action) or (f"{action} {{amount}} for {{price}}",))
    return _fill(f"{rng.choice(TRADE_OPENERS)}{deal}. {rng.choice(TRADE_CLOSERS)}", slots)


def _news(facts: PromptFacts, rng: random.Random) -> str:
    slots = _slots(facts, rng, facts.topic or None)
    words = [w for w in re.findall(r"[^\W_][\w']*", facts.news) if w.lower() not in rules._STOP]
    slots["subject"] = _case(" ".join(words[:4])) or slots["topic"]
    return _fill(rng.choice(_phrases(facts, "news")), slots)


# --------------------------------------------------------------------------- surface style


def _emoji_chance(frequency: str) -> float:
    f = frequency.lower()
    if any(w in f for w in ("rare", "occasional", "sparing", "at most one", "minimal", "seldom")):
        return 0.35
    if any(w in f for w in ("frequent", "often", "heavy", "lots", "every", "many")):
        return 0.9
    return 0.6


def _hashtag(facts: PromptFacts, rng: random.Random) -> str:
    source = rng.choice([*facts.key_terms, *facts.interests] or ["thoughts"])
    words = re.findall(r"[A-Za-z0-9]+", source)
    return "#" + "".join(w[:1].upper() + w[1:] for w in words[:3])


def _capitalise(text: str, facts: PromptFacts, rng: random.Random) -> str:
    caps = facts.capitalization.lower()
    style = _NEGATED.sub(" ", f"{caps} {facts.speaking_style} {facts.voice}".lower())
    if "lowercase" in style or "lower case" in style:
        return text.lower()
    if re.match(r"\s*(all caps|uppercase|all upper)", caps) or "always all caps" in caps:
        return text.upper()
    if "caps" in caps and rng.random() < 0.3:  # "the odd ALL CAPS word for excitement"
        words = text.split(" ")
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        words[longest] = words[longest].upper()
        text = " ".join(words)
    text = re.sub(r"(?<![\w'])i(?=['\s,.!?])", "I", text)
    return re.sub(r"(^|[.!?]\s+|\n\n)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def _styled(text: str, facts: PromptFacts, rng: random.Random) -> str:
    text = " ".join(text.split(" "))
    if facts.avoid_hyphens:
        text = rules.HYPHENS.sub(" ", text)
        text = re.sub(r" {2,}", " ", text)
    text = _capitalise(text, facts, rng)
    if facts.hashtags and facts.purpose not in ("reply",) and rng.random() < 0.6:
        tag = _hashtag(facts, rng)
        if len(text) + len(tag) + 1 <= facts.max_length:
            text = f"{text} {tag}"
    if facts.emojis and rng.random() < _emoji_chance(facts.emoji_frequency):
        emoji = rng.choice(EMOJIS)
        if len(text) + 3 <= facts.max_length:
            text = f"{text} {emoji}"
    return text.strip()


def _addressed(text: str, facts: PromptFacts) -> str:
    """Replies open with the handle of the account being answered."""
    if facts.purpose != "reply":
        return text
    handle = facts.replying_to or (facts.thread[-1][0] if facts.thread else "")
    return f"@{handle} {text}" if handle else text


Verdict = Literal["new", "relaxed", "too long"]


def _verdict(text: str, facts: PromptFacts) -> Verdict | None:
    """How a candidate fares, each check made once: ``new`` (fits the maximum, follows the style
    rules, clearly new), ``relaxed`` (fits, only as new as validation asks), ``too long`` (either,
    but over the maximum), else None (breaks a rule or repeats a recent post)."""
    if not _follows_rules(text, facts):
        return None
    # Stricter than validation, so the fake's posts read as clearly different ones; what is
    # clearly new is also new by validation's thresholds (they are higher).
    if rules.near_duplicate_of(text, facts.recent_posts, jaccard=0.4, shingles=0.34) is not None:
        if rules.near_duplicate_of(text, facts.recent_posts) is not None:
            return None
        return "relaxed" if _fits(text, facts) else "too long"
    return "new" if _fits(text, facts) else "too long"


def _fits(text: str, facts: PromptFacts) -> bool:
    """Within the maximum: the first paragraph, and the whole text unless it is a thread."""
    limit = min(280, facts.max_length or 280)
    own = rules.leading_handles(text)[1] if facts.purpose == "reply" else text  # handles do not count
    first = own.split("\n\n")[0]
    if weighted_length(first) > limit:
        return False
    return facts.purpose == "thread" or first == own or weighted_length(own) <= limit


def _follows_rules(text: str, facts: PromptFacts) -> bool:
    if rules.avoided_terms_in(text, facts.avoid_terms) or rules.avoided_topics_in(text, facts.topics_to_avoid):
        return False
    if not facts.hashtags and rules.hashtags(text):
        return False
    return not (facts.avoid_hyphens and rules.HYPHENS.search(text))
