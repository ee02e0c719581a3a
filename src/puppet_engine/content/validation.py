"""Output validation: what a model wrote becomes a post only if it passes these rules.

:func:`validate_post` cleans the usual model wrapping (quotes, ``Tweet:`` labels,
"as an AI" boilerplate), then checks the persona's style guide (hashtags, emojis,
banned terms, hyphens), its topics to avoid, that no third-party account is named,
the length, and that the text is neither a near-duplicate of a recent post nor a
word-for-word repeat of anything the agent posted within X's duplicate window.
Failures raise :class:`~puppet_engine.errors.ValidationFailed` listing every reason.

Length: the author's ``max_post_length`` guides; it never mutes an agent. Generated
text over it is *fitted* (cut after the last whole sentence that fits, else at a word
with an ellipsis; a reply's leading handles do not count). Only X's hard limit (280
weighted characters, for text that cannot become an allowed thread) and the thread
rules (``max_thread_length``) refuse. See :func:`length_warnings` for what
``agents validate`` says about limits that will cut most output.

:func:`generate_validated` asks the provider again (new seed, the reasons fed back
into the prompt, a repeated post shown among the recent ones) a bounded number of times.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from puppet_engine.content.persona import MIN_TYPICAL, post_lengths, words_in
from puppet_engine.content.prompts import PromptContext, generate_reply, generate_tweet
from puppet_engine.errors import ValidationFailed
from puppet_engine.llm.base import LLMProvider
from puppet_engine.persona import AgentConfig, rules
from puppet_engine.twitter.text import (
    MAX_WEIGHT,
    extract_mentions,
    fit_text,
    normalize,
    split_thread,
    weighted_length,
)

THREADABLE = frozenset({"post", "thread", "news", "trade", "content"})
SEED_STEP = 7919
SHORT_WARNING = 40  # a maximum below this many characters cuts most of what a model writes

_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`")]
_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:assistant|ai|tweet|post|reply|response|answer|output|draft|final(?: answer)?|"
    r"here(?:'s| is) (?:my|the|a|your) (?:tweet|post|reply)[^:\n]{0,30})\s*(?:\d+)?\s*(?:\*\*)?\s*[:：]\s*",
    re.I,
)
_BOILERPLATE = re.compile(
    r"(?:^|(?<=[.!?]\s))[^.!?\n]*\b(?:as an ai|as a language model|i'?m (?:just )?an ai|i am (?:just )?an ai|"
    r"ai language model|i cannot (?:browse|access)|i don'?t have personal)\b[^.!?\n]*[.!?]?\s*",
    re.I,
)
_USER_ID = re.compile(r"(?<!\d)\d{15,20}(?!\d)")
_DASH_PUNCT = re.compile(r"\s*[—–―]\s*")
_WORD_HYPHEN = re.compile(r"(?<=\w)[\-‐‑‒](?=\w)")
# Compiled here: a pattern per agent name below would push these out of re's own cache of 512.
_FENCE = re.compile(r"^```[a-z]*\s*|\s*```$")
_SPACES = re.compile(r"[ \t]{2,}")
_LONE_HYPHENS = re.compile(r"(?<=\s)-+(?=\s)")


@functools.lru_cache(maxsize=1024)
def _name_label(name: str) -> re.Pattern[str]:
    """``name:`` (or ``@name：``) opening a text, in any case."""
    return re.compile(rf"^\s*@?{re.escape(name)}\s*[:：]\s*", flags=re.I)


@dataclass(frozen=True)
class ValidatedText:
    """Cleaned text that passed every rule; ``parts`` has one entry per post (a thread if more)."""

    text: str
    parts: tuple[str, ...]
    kind: str = "post"
    cut_from: int | None = None  # weighted length before it was fitted to the author's maximum

    @property
    def is_thread(self) -> bool:
        return len(self.parts) > 1


def clean(text: str, agent: AgentConfig | None = None) -> str:
    """Remove wrapping quotes, role labels and AI boilerplate; fix dashes when hyphens are avoided."""
    text = text.strip().strip("\ufeff")
    text = _FENCE.sub("", text).strip()
    names = [agent.name, agent.id] if agent is not None else []
    for _ in range(3):
        before = text
        text = _PREFIX.sub("", text)
        if ":" in text or "：" in text:  # a name label needs one
            for name in filter(None, names):
                text = _name_label(name).sub("", text)
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right) and text.count(left) <= 2:
                text = text[1:-1].strip()
        if text == before:
            break
    text = _BOILERPLATE.sub("", text).strip()
    if agent is not None and agent.style_guide.formatting.avoid_hyphens:
        text = _fix_hyphens(text)
    return _SPACES.sub(" ", text).strip()


def _fix_hyphens(text: str) -> str:
    urls = rules.URL.findall(text)
    masked = rules.URL.sub("\x00", text)
    masked = _DASH_PUNCT.sub(", ", masked)
    masked = _WORD_HYPHEN.sub(" ", masked)
    masked = _LONE_HYPHENS.sub(",", masked)
    for url in urls:
        masked = masked.replace("\x00", url, 1)
    return masked


def limit_for(agent: AgentConfig) -> int:
    """The author's maximum for one post (weighted characters, at most X's 280)."""
    return post_lengths(agent)[1]


def own_length(text: str, kind: str = "post") -> int:
    """Weighted length that counts against the author's maximum (a reply's leading handles do not)."""
    return weighted_length(rules.leading_handles(text)[1] if kind == "reply" else text)


def fit_to(text: str, limit: int, kind: str = "post") -> str:
    """``text`` cut to ``limit`` (see :func:`~puppet_engine.twitter.text.fit_text`), a reply's handles kept."""
    handles, body = rules.leading_handles(text) if kind == "reply" else ("", text)
    room = min(limit, MAX_WEIGHT - weighted_length(handles))
    return handles + fit_text(body, max(1, room))


def style_problems(text: str, agent: AgentConfig) -> list[str]:
    """Style-guide and topic violations in ``text`` (empty when it complies)."""
    sg = agent.style_guide
    f = sg.formatting
    problems = []
    uses_hashtags = f.uses_hashtags and f.hashtag_style.strip().lower() not in ("none", "never")
    if not uses_hashtags and (tags := rules.hashtags(text)):
        problems.append(f"uses hashtags ({', '.join('#' + t for t in tags[:3])}) but the persona uses none")
    if not f.uses_emojis and rules.has_emoji(text):
        problems.append("uses emojis but the persona uses none")
    if f.avoid_hyphens and rules.HYPHENS.search(rules.URL.sub("", text)):
        problems.append("uses hyphens or dashes but the style guide avoids them")
    if terms := rules.avoided_terms_in(text, sg.vocabulary.avoid_terms):
        problems.append(f"uses avoided terms: {', '.join(terms)}")
    if topics := rules.avoided_topics_in(text, sg.topics_to_avoid):
        problems.append(f"touches topics to avoid: {', '.join(topics)}")
    return problems


def _parts(text: str, agent: AgentConfig, kind: str, problems: list[str], *, fit: bool) -> list[str]:
    limit = limit_for(agent)
    max_parts = agent.behavior.content_preferences.max_thread_length
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if kind == "thread" and max_parts > 1 and len(paragraphs) > 1:
        if fit:
            pieces = [fit_text(p, limit) for p in paragraphs]
        else:
            pieces = [piece for p in paragraphs for piece in split_thread(p, max_parts=100, max_weight=limit)]
        if len(pieces) > max_parts:
            problems.append(f"a thread of {len(pieces)} posts, max_thread_length is {max_parts}")
        return pieces
    weight = weighted_length(text)
    over_x = weight > MAX_WEIGHT
    if (weight if kind != "reply" else own_length(text, kind)) <= limit and not over_x:
        return [text]
    if (over_x or not fit) and kind in THREADABLE and max_parts > 1:
        pieces = split_thread(" ".join(paragraphs), max_parts=100, max_weight=limit)
        if len(pieces) > max_parts:
            problems.append(f"too long: {weight} weighted characters need {len(pieces)} posts, "
                            f"max_thread_length is {max_parts}")
        return pieces
    if fit and not over_x:
        return [fit_to(text, limit, kind)]
    shown = f"X's limit is {MAX_WEIGHT}" if over_x else f"the limit is {limit}"
    problems.append(f"too long: {weight} weighted characters, {shown}")
    return [text]


def repeated(parts: Sequence[str], recent_posts: Sequence[str], posted: Iterable[str] = ()) -> tuple[str, str] | None:
    """``(problem, earlier post)`` when these parts repeat one: nearly (a recent post) or word for
    word (any post in ``posted``, X's duplicate window)."""
    if (dup := rules.near_duplicate_of(" ".join(parts), recent_posts)) is not None:
        return "near-duplicate of a recent post", dup
    wanted = {normalize(p).strip() for p in parts}
    if (same := next((p for p in posted if normalize(p).strip() in wanted), None)) is not None:
        return "repeats a post of the last 24 hours word for word", same
    return None


def validate_post(text: str, agent: AgentConfig, recent_posts: Sequence[str] = (), *, kind: str = "post",
                  replying_to: str | None = None, allowed_handles: Iterable[str] = (),
                  posted: Iterable[str] = (), fit: bool = True) -> ValidatedText:
    """Clean ``text`` and check it against the agent's rules; raise ``ValidationFailed`` with every reason.

    ``replying_to`` (and ``allowed_handles``) are the only accounts the text may
    mention; ``recent_posts`` are the agent's latest posts, newest first (no near
    repeat); ``posted`` every tweet it sent within X's duplicate window (no exact
    repeat). ``fit=False`` (an operator's own words) never cuts: text over the
    maximum becomes a thread if allowed, else is refused.
    """
    cleaned = clean(text, agent)
    if not cleaned or not re.search(r"\w", cleaned):
        raise ValidationFailed(["empty after removing wrapping and boilerplate"])
    problems = style_problems(cleaned, agent)
    allowed = {h.lower().lstrip("@") for h in [*allowed_handles, replying_to or "", agent.id] if h}
    strangers = sorted({m for m in extract_mentions(cleaned) if m.lower() not in allowed})
    if strangers:
        problems.append(f"mentions accounts outside this conversation: {', '.join('@' + s for s in strangers)}")
    if _USER_ID.search(cleaned):
        problems.append("contains what looks like a user id")
    parts = _parts(cleaned, agent, kind, problems, fit=fit)
    if (repeat := repeated(parts, recent_posts, posted)) is not None:
        problem, dup = repeat
        shown = dup if len(dup) <= 60 else dup[:57] + "..."
        problems.append(f"{problem}: {shown!r}")
    if problems:
        raise ValidationFailed(problems)
    cut = len(parts) == 1 and parts[0] != cleaned
    return ValidatedText(text=" ".join(parts) if cut else cleaned, parts=tuple(parts), kind=kind,
                         cut_from=own_length(cleaned, kind) if cut else None)


async def generate_validated(provider: LLMProvider, agent: AgentConfig, context: PromptContext,
                             recent_posts: Sequence[str] = (), attempts: int = 3, *,
                             allowed_handles: Iterable[str] = (), posted: Sequence[str] = ()) -> ValidatedText:
    """Generate and validate, asking again up to ``attempts`` times.

    Each new attempt has a new seed and the reasons fed back; a draft that repeated a
    post also puts that post first among the recent posts the model is shown.
    Provider errors propagate unchanged; after the last failed attempt
    ``ValidationFailed`` lists why each attempt was refused.
    """
    allowed = list(allowed_handles)
    reasons: list[str] = []
    feedback: list[str] = []
    shown = list(context.recent_posts)
    for attempt in range(max(1, attempts)):
        extra = dict(context.extra)
        if feedback:
            extra["feedback"] = "; ".join(feedback[-3:])
        ctx = replace(context, seed=context.seed + attempt * SEED_STEP, extra=extra, recent_posts=shown)
        text = await generate_reply(provider, agent, ctx) if context.purpose == "reply" else \
            await generate_tweet(provider, agent, ctx)
        try:
            return validate_post(text, agent, recent_posts, kind=context.purpose, replying_to=context.replying_to,
                                 allowed_handles=allowed, posted=posted)
        except ValidationFailed as exc:
            feedback.extend(exc.reasons)
            reasons.extend(f"attempt {attempt + 1}: {reason}" for reason in exc.reasons)
            if (repeat := repeated([clean(text, agent)], recent_posts, posted)) is not None:
                shown = [repeat[1], *(p for p in shown if p != repeat[1])]
    raise ValidationFailed(reasons)


def length_warnings(agent: AgentConfig, source: str) -> list[str]:
    """What an author should know about the length settings of a valid file (warnings, not errors).

    Nothing here stops the agent: text over the maximum is cut, not refused. These
    say when most of what the agent writes would be cut hard, or a value is read
    differently from how it is written.
    """
    prefs = agent.behavior.content_preferences
    where = f"{source}: behavior.content_preferences"
    typical, maximum = post_lengths(agent)
    notes = []
    if prefs.max_post_length is not None and prefs.max_post_length > MAX_WEIGHT:
        notes.append(f"{where}.max_post_length: {prefs.max_post_length} is above X's limit; {MAX_WEIGHT} applies")
    if maximum < SHORT_WARNING:
        notes.append(f"{where}.max_post_length: {maximum} characters is about {words_in(maximum)} words; most posts "
                     "and replies the model writes will be cut to fit (they are cut, not refused)")
    if "typical_post_length" not in prefs.model_fields_set:
        return notes  # the default (240) is only a target: under a smaller maximum it simply means "long"
    if prefs.typical_post_length > maximum:
        notes.append(f"{where}.typical_post_length: {prefs.typical_post_length} is above max_post_length "
                     f"{maximum}; the model is asked for about {typical} characters and longer text is cut")
    elif prefs.typical_post_length < MIN_TYPICAL:
        notes.append(f"{where}.typical_post_length: {prefs.typical_post_length} is read as {MIN_TYPICAL} characters "
                     f"(about {words_in(MIN_TYPICAL)} words): like the original engine, the target is kept within "
                     f"{MIN_TYPICAL}-{MAX_WEIGHT}")
    return notes
