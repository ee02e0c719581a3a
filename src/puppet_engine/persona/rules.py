"""Pure text rules shared by output validation and the offline text generator.

Near-duplicate detection (normalised token Jaccard and word-shingle overlap),
topics-to-avoid matching, banned terms, hashtags and emojis. Keeping them in one
place means the fake generator never writes what validation would refuse. They sit in
the bottom ``persona`` package because both sides read them: output validation
(``content``) and the fake provider's generator (``llm``), which may not import content.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

DUPLICATE_JACCARD = 0.6  # token-set overlap at or above which two posts are "the same"
DUPLICATE_SHINGLES = 0.5  # share of 3-word shingles of the shorter text found in the other

HASHTAG = re.compile(r"(?:^|(?<=[^\w&]))[#＃](\w*[^\W\d_]\w*)")
HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})\b")
URL = re.compile(r"https?://\S+|\bwww\.\S+", re.I)
HYPHENS = re.compile(r"[\-‐‑‒–—―]")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)

_STOP = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "i", "me", "my", "we", "our", "you", "your", "he", "she", "they", "them", "their", "his", "her", "not", "no", "so", "just", "very", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "should", "about", "into", "than", "then", "there", "here", "what", "which", "who", "whom", "how", "why", "when", "where", "all", "any", "some", "more", "most", "other", "such", "only", "own", "same", "too", "s", "t", "don"]
)

# Words that signal a topic where its own words are not enough to recognise it.
_TOPIC_SIGNALS: dict[str, tuple[str, ...]] = {
    "politic": ("election", "democrat", "republican", "senator", "congress", "parliament", "maga",
                "liberal", "conservative", "leftist", "right wing", "left wing", "vote for", "president"),
    "price prediction": ("price target", "will hit $", "going to $", "will reach $", "will moon", "to the moon",
                         "will pump", "will dump", "by next week", "by end of year", "x by"),
    "investment advice": ("you should buy", "you should sell", "buy now", "sell now", "financial advice",
                          "not financial advice", "load up on", "guaranteed returns", "dyor"),
    "financial advice": ("you should buy", "you should sell", "buy now", "sell now", "financial advice",
                         "not financial advice", "load up on", "guaranteed returns"),
    "personal attack": ("idiot", "stupid", "moron", "loser", "clown", "pathetic", "dumb", "ugly", "shut up"),
    "religio": ("god", "church", "jesus", "allah", "bible", "quran", "atheist"),
    "violence": ("kill", "shoot", "bomb", "attack them", "hurt"),
    "nsfw": ("nude", "porn", "sex"),
}


def _is_emoji_char(ch: str) -> bool:
    cp = ord(ch)
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x1F900 <= cp <= 0x1F9FF:
        return True
    return unicodedata.category(ch) == "So" and cp > 0x2100


def has_emoji(text: str) -> bool:
    # No ASCII character is an emoji (all lie below U+2100): most posts are checked in C.
    return not text.isascii() and any(_is_emoji_char(ch) for ch in text)


def strip_emojis(text: str) -> str:
    out = "".join(ch for ch in text if not _is_emoji_char(ch) and ch not in "\u200d\ufe0f")
    return re.sub(r"[ \t]{2,}", " ", out).strip()


_LEADING_HANDLES = re.compile(r"^(?:@[A-Za-z0-9_]{1,15}\s+)+")


def leading_handles(text: str) -> tuple[str, str]:
    """``("@ana @bo ", "rest")``: the handles a reply opens with, and the words after them.

    An author's ``max_post_length`` is about what the agent says, so these handles do
    not count against it (X's 280 still counts the whole text).
    """
    m = _LEADING_HANDLES.match(text)
    return (m.group(0), text[m.end():]) if m and m.end() < len(text) else ("", text)


def hashtags(text: str) -> list[str]:
    return [m.group(1) for m in HASHTAG.finditer(text)]


def handles(text: str) -> list[str]:
    return [m.group(1) for m in HANDLE.finditer(text)]


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased word stems, without URLs, handles, hashtag marks and stop words."""
    return list(_tokens(text))


@functools.lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[str, ...]:
    # Cached: every candidate post is compared with the same recent posts.
    text = URL.sub(" ", text)
    text = HANDLE.sub(" ", text)
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", text))]
    return tuple(_stem(w) for w in words if w not in _STOP)


def _shingles(words: Sequence[str], n: int = 3) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@functools.lru_cache(maxsize=1024)
def _compared(text: str) -> tuple[tuple[str, ...], frozenset[str], frozenset[tuple[str, ...]]]:
    """A text's tokens, their set and their 3-word shingles. Cached: each recent post is compared
    with every candidate of an event (the generator's and validation's, each attempt). About
    5 KiB an entry (the shingles), so only what recent events compared is kept."""
    words = _tokens(text)
    return words, frozenset(words), frozenset(_shingles(words))


def similarity(a: str, b: str) -> float:
    """0 … 1: the larger of token Jaccard and shingle containment of the shorter text."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return 1.0 if " ".join(a.lower().split()) == " ".join(b.lower().split()) else 0.0
    sa, sb = set(ta), set(tb)
    jaccard = len(sa & sb) / len(sa | sb)
    ha, hb = _shingles(ta), _shingles(tb)
    small, big = (ha, hb) if len(ha) <= len(hb) else (hb, ha)
    contained = len(small & big) / len(small) if small else 0.0
    if min(len(ta), len(tb)) < 4:  # too short for shingles to mean much
        contained = 0.0
    return max(jaccard, contained)


def near_duplicate_of(text: str, recent: Iterable[str], jaccard: float = DUPLICATE_JACCARD,
                      shingles: float = DUPLICATE_SHINGLES) -> str | None:
    """The first recent post ``text`` nearly repeats, or None."""
    ta, sa, ha = _compared(text)
    for other in recent:
        if not other:
            continue
        tb, sb, hb = _compared(other)
        if ta and tb:
            if len(sa & sb) / len(sa | sb) >= jaccard:
                return other
            small, big = (ha, hb) if len(ha) <= len(hb) else (hb, ha)
            if min(len(ta), len(tb)) >= 4 and small and len(small & big) / len(small) >= shingles:
                return other
        elif " ".join(text.lower().split()) == " ".join(other.lower().split()):
            return other
    return None


def _contains(haystack: str, needle: str) -> bool:
    needle = needle.lower().strip()
    if not needle:
        return False
    if needle[0].isalnum() and needle[-1].isalnum():
        return re.search(rf"(?<![\w]){re.escape(needle)}(?![\w])", haystack) is not None
    return needle in haystack


def avoided_terms_in(text: str, terms: Iterable[str]) -> list[str]:
    """The banned ``terms`` that ``text`` uses (whole words, case-insensitive)."""
    low = text.lower()
    return [t for t in terms if _contains(low, t)]


def topic_hits(text: str, topic: str) -> bool:
    """Whether ``text`` is about ``topic`` (all the topic's content words, or a known signal)."""
    low = " ".join(text.lower().split())
    topic_low = topic.lower()
    for key, signals in _TOPIC_SIGNALS.items():
        if key in topic_low and any(_contains(low, s) for s in signals):
            return True
    words = [_stem(w) for w in re.findall(r"[^\W_]+", topic_low) if w not in _STOP and len(w) > 2]
    if not words:
        return False
    have = set(tokens(text))
    return all(w in have for w in words)


def avoided_topics_in(text: str, topics: Iterable[str]) -> list[str]:
    return [t for t in topics if topic_hits(text, t)]
