"""Tweet text rules shared by the client, the behaviours and the sandbox X emulator.

Weighted length follows twitter-text's counting configuration v3 (what X enforces):
the text is NFC-normalised, then walked by code point. URLs weigh 23 whatever their
length, each emoji sequence (ZWJ families, skin tones, keycaps, flags) weighs 2, a code
point in the "light" ranges (Latin, Greek, Cyrillic, Hebrew, Arabic … up to U+10FF and
some general punctuation) weighs 1 and any other (CJK, symbols, emoji) weighs 2. A post
is valid when it is not blank, holds no invalid character (U+FFFE, U+FEFF, U+FFFF) and
weighs at most 280. The conformance cases of twitter-text prove it
(``tests/unit/test_tweet_text.py``).
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from puppet_engine.twitter import _patterns as p

MAX_WEIGHT = 280
ELLIPSIS = "…"


@dataclass(frozen=True)
class TextConfig:
    """A twitter-text counting configuration (``v3.json`` by default)."""

    max_weighted_length: int = 280
    scale: int = 100
    default_weight: int = 200
    transformed_url_length: int = 23
    emoji_parsing: bool = True
    ranges: tuple[tuple[int, int, int], ...] = (
        (0x0000, 0x10FF, 100), (0x2000, 0x200D, 100), (0x2010, 0x201F, 100), (0x2032, 0x2037, 100),
    )

    def weight_of(self, code_point: int) -> int:
        for start, end, weight in self.ranges:
            if start <= code_point <= end:
                return weight
        return self.default_weight

    @functools.cached_property
    def ascii_weight(self) -> int | None:
        """The weight every ASCII character has, if they all have the same one."""
        weights = {self.weight_of(c) for c in range(128)}
        return weights.pop() if len(weights) == 1 else None


V3 = TextConfig()
V2 = TextConfig(emoji_parsing=False)  # the previous configuration: every emoji code point counts


@dataclass(frozen=True)
class TweetLength:
    """What twitter-text's ``parseTweet`` reports (ranges omitted)."""

    weighted_length: int
    valid: bool
    permillage: int


@dataclass(frozen=True)
class _Unit:
    text: str
    weight: int  # scaled (x100)
    kind: str  # "url", "emoji", "char"


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in p.url_pattern().finditer(text):
        proto, host = m.group("proto"), m.group("host") or m.group("bare")
        url = m.group(0)
        rest = url[len(proto or "") + len(host):]
        if proto is None and "/" not in rest and _is_short_domain(host):
            continue
        if host.lower() == "t.co" and (tco := re.match(r"https?://t\.co/[a-z0-9]+", url, re.IGNORECASE)):
            url = tco.group(0)
        if not _valid_host(host, len(url), has_protocol=proto is not None):
            continue
        spans.append((m.start(), m.start() + len(url)))
    return spans


def _is_short_domain(host: str) -> bool:
    """``example.co`` without scheme or path is not a link (twitter-text's short-domain rule)."""
    labels = host.split(".")
    return len(labels) == 2 and len(labels[1]) == 2 and labels[1].isascii() and host.lower() != "t.co"


def _valid_host(host: str, url_length: int, *, has_protocol: bool) -> bool:
    """Every label fits 63 characters once punycode-encoded, and the URL 4096."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    length = url_length + len(ascii_host) - len(host) + (0 if has_protocol else len("https://"))
    return length <= 4096


def _counted_spans(text: str, config: TextConfig) -> dict[int, tuple[int, int, str]]:
    """Where URLs and emoji sequences start: their end, scaled weight and kind."""
    spans = {start: (end, config.transformed_url_length * config.scale, "url") for start, end in _url_spans(text)}
    if config.emoji_parsing:
        for m in p.EMOJI.finditer(text):
            spans.setdefault(m.start(), (m.end(), config.default_weight, "emoji"))
    return spans


def _units(text: str, config: TextConfig) -> Iterator[_Unit]:
    """Split normalised ``text`` into what is counted: URLs, emoji sequences, code points."""
    spans = _counted_spans(text, config)
    i = 0
    while i < len(text):
        if i in spans:
            end, weight, kind = spans[i]
            yield _Unit(text[i:end], weight, kind)
        else:
            end = i + 1
            yield _Unit(text[i], config.weight_of(ord(text[i])), "char")
        i = end


def _total_weight(text: str, config: TextConfig) -> int:
    """``sum(u.weight for u in _units(text, config))`` without a unit per character: runs of
    plain characters between URLs and emoji are weighed at once (ASCII runs by their length)."""
    spans = _counted_spans(text, config)
    starts = sorted(spans)
    ascii_weight = config.ascii_weight
    total = i = 0
    while i < len(text):
        if i in spans:
            i, weight, _ = spans[i]
            total += weight
            continue
        at = bisect.bisect_right(starts, i)
        end = starts[at] if at < len(starts) else len(text)
        run = text[i:end]
        if ascii_weight is not None and run.isascii():
            total += ascii_weight * len(run)
        else:
            total += sum(config.weight_of(ord(ch)) for ch in run)
        i = end
    return total


def parse_tweet(text: str, config: TextConfig = V3) -> TweetLength:
    """Weighted length and validity of ``text`` as X computes them."""
    normalized = normalize(text)
    total = _total_weight(normalized, config)
    weighted = total // config.scale
    invalid = not p.INVALID_CHARS.isdisjoint(normalized)
    valid = bool(normalized.strip()) and not invalid and weighted <= config.max_weighted_length
    return TweetLength(weighted, valid, weighted * 1000 // config.max_weighted_length)


def weighted_length(text: str, config: TextConfig = V3) -> int:
    """X's weighted length of ``text`` (280 is the limit)."""
    return parse_tweet(text, config).weighted_length


def is_valid_tweet(text: str, config: TextConfig = V3) -> bool:
    """Not blank, no invalid characters, weighted length within the limit."""
    return parse_tweet(text, config).valid


def extract_urls(text: str) -> list[str]:
    """The URLs X would link (and count as 23), in order."""
    normalized = normalize(text)
    return [normalized[a:b] for a, b in _url_spans(normalized)]


def extract_cashtags(text: str) -> list[str]:
    """Cashtags (``$SOL``) without the dollar sign, in order."""
    return [m.group(1) for m in p.CASHTAG.finditer(normalize(text))]


def count_cashtags(text: str) -> int:
    """How many cashtags ``text`` holds; X's API refuses posts with more than one."""
    return len(extract_cashtags(text))


def extract_mentions(text: str) -> list[str]:
    """Mentioned usernames (without ``@``), in order, as X links them."""
    return [m.group(1) for m in p.MENTION.finditer(normalize(text))]


def fit_tweet(text: str, max_weight: int = MAX_WEIGHT, ellipsis: str = ELLIPSIS) -> str:
    """``text`` if it fits, else its longest prefix ending at a word boundary plus ``ellipsis``.

    URLs and emoji sequences are never cut. A first word too long to fit on its own is
    cut between code points (or whole emoji) instead.
    """
    config = TextConfig(max_weighted_length=max_weight)
    normalized = normalize(text).strip()
    if weighted_length(normalized, config) <= max_weight:
        return normalized
    budget = max_weight * config.scale - sum(u.weight for u in _units(ellipsis, config))
    units = list(_units(normalized, config))
    used, cut, last_space = 0, 0, None
    for index, unit in enumerate(units):
        if used + unit.weight > budget:
            break
        used += unit.weight
        cut = index + 1
        if unit.text.isspace():
            last_space = index
    if last_space is not None and last_space > 0:
        cut = last_space
    head = "".join(u.text for u in units[:cut]).rstrip(" \t\n,;:-–—")
    candidate = head + ellipsis
    while head and weighted_length(candidate, config) > max_weight:  # URL detection at the edge
        head = head[:-1].rstrip()
        candidate = head + ellipsis
    return candidate


def fit_text(text: str, max_weight: int = MAX_WEIGHT, ellipsis: str = ELLIPSIS) -> str:
    """``text`` cut to ``max_weight`` where it reads best.

    The whole sentences that fit, when they fill at least half the room (no ellipsis
    needed); otherwise :func:`fit_tweet`'s cut at a word boundary with ``ellipsis``.
    """
    normalized = normalize(text).strip()
    if weighted_length(normalized) <= max_weight:
        return normalized
    head = ""
    for sentence in p.SENTENCE_END.split(normalized):
        joined = f"{head} {sentence}" if head else sentence
        if weighted_length(joined) > max_weight:
            break
        head = joined
    if head and 2 * weighted_length(head) >= max_weight:
        return head
    return fit_tweet(normalized, max_weight, ellipsis)


def split_thread(text: str, max_parts: int = 10, max_weight: int = MAX_WEIGHT, numbered: bool = False) -> list[str]:
    """Split ``text`` into at most ``max_parts`` posts that each fit.

    Sentences stay whole when they can; a sentence longer than a post is split between
    words. With ``numbered`` every part ends in `` i/n``. When the text needs more than
    ``max_parts`` posts the last one is shortened with an ellipsis.
    """
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    normalized = normalize(text).strip()
    if not normalized:
        return []
    room = max_weight - (len(f" {max_parts}/{max_parts}") if numbered else 0)
    pieces: list[str] = []
    for sentence in p.SENTENCE_END.split(normalized):
        pieces.extend(_split_long(sentence.strip(), room))
    parts: list[str] = []
    for piece in pieces:
        if parts and weighted_length(f"{parts[-1]} {piece}") <= room:
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    if len(parts) > max_parts:
        tail = " ".join(parts[max_parts - 1:])
        parts = [*parts[: max_parts - 1], fit_tweet(tail, room)]
    if numbered and len(parts) > 1:
        parts = [f"{part} {i}/{len(parts)}" for i, part in enumerate(parts, 1)]
    return parts


def _split_long(sentence: str, room: int) -> list[str]:
    """Words packed into chunks of at most ``room``; a word longer than that is cut."""
    if weighted_length(sentence) <= room:
        return [sentence] if sentence else []
    chunks: list[str] = []
    current = ""
    for word in sentence.split():
        joined = f"{current} {word}" if current else word
        if weighted_length(joined) <= room:
            current = joined
            continue
        if current:
            chunks.append(current)
        while weighted_length(word) > room:
            head = _hard_cut(word, room)
            chunks.append(head)
            word = word[len(head):]
        current = word
    if current:
        chunks.append(current)
    return chunks


def _hard_cut(word: str, room: int) -> str:
    """The longest prefix of ``word`` (whole units, at least one) that weighs at most ``room``."""
    config = TextConfig(max_weighted_length=room)
    head = ""
    for unit in _units(word, config):
        if head and weighted_length(head + unit.text, config) > room:
            break
        head += unit.text
    return head
