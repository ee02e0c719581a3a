"""Output validation: what a model wrote becomes a post only if it passes these rules.

:func:`validate_post` cleans the usual model wrapping (quotes, ``Tweet:`` labels,
"as an AI" boilerplate), then checks the persona's style guide (hashtags, emojis,
banned terms, hyphens), its topics to avoid, that no third-party account is named,
X's weighted length (splitting into a thread when the persona allows threads) and
that the text is not a near-duplicate of a recent post. Failures raise
:class:`~puppet_engine.errors.ValidationFailed` listing every reason.

:func:`generate_validated` asks the provider again (new seed, the reasons fed back
into the prompt) a bounded number of times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from puppet_engine.errors import ValidationFailed
from puppet_engine.llm import rules
from puppet_engine.llm.base import LLMProvider, PromptContext
from puppet_engine.twitter.text import MAX_WEIGHT, extract_mentions, split_thread, weighted_length

if TYPE_CHECKING:
    from puppet_engine.agents.config import AgentConfig

THREADABLE = frozenset({"post", "thread", "news", "trade", "content"})
SEED_STEP = 7919

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


@dataclass(frozen=True)
class ValidatedText:
    """Cleaned text that passed every rule; ``parts`` has one entry per post (a thread if more)."""

    text: str
    parts: tuple[str, ...]
    kind: str = "post"

    @property
    def is_thread(self) -> bool:
        return len(self.parts) > 1


def clean(text: str, agent: AgentConfig | None = None) -> str:
    """Remove wrapping quotes, role labels and AI boilerplate; fix dashes when hyphens are avoided."""
    text = text.strip().strip("\ufeff")
    text = re.sub(r"^```[a-z]*\s*|\s*```$", "", text).strip()
    names = [agent.name, agent.id] if agent is not None else []
    for _ in range(3):
        before = text
        text = _PREFIX.sub("", text)
        for name in filter(None, names):
            text = re.sub(rf"^\s*@?{re.escape(name)}\s*[:：]\s*", "", text, flags=re.I)
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right) and text.count(left) <= 2:
                text = text[1:-1].strip()
        if text == before:
            break
    text = _BOILERPLATE.sub("", text).strip()
    if agent is not None and agent.style_guide.formatting.avoid_hyphens:
        text = _fix_hyphens(text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _fix_hyphens(text: str) -> str:
    urls = rules.URL.findall(text)
    masked = rules.URL.sub("\x00", text)
    masked = _DASH_PUNCT.sub(", ", masked)
    masked = _WORD_HYPHEN.sub(" ", masked)
    masked = re.sub(r"(?<=\s)-+(?=\s)", ",", masked)
    for url in urls:
        masked = masked.replace("\x00", url, 1)
    return masked


def limit_for(agent: AgentConfig) -> int:
    """The weighted length one post may have for this agent."""
    return min(MAX_WEIGHT, agent.behavior.content_preferences.max_post_length or MAX_WEIGHT)


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


def _parts(text: str, agent: AgentConfig, kind: str, problems: list[str]) -> list[str]:
    limit = limit_for(agent)
    max_parts = agent.behavior.content_preferences.max_thread_length
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if kind == "thread" and max_parts > 1 and len(paragraphs) > 1:
        pieces = [piece for p in paragraphs for piece in split_thread(p, max_parts=100, max_weight=limit)]
    elif weighted_length(text) <= limit:
        return [text]
    elif kind in THREADABLE and max_parts > 1:
        pieces = split_thread(" ".join(paragraphs), max_parts=100, max_weight=limit)
    else:
        problems.append(f"too long: {weighted_length(text)} weighted characters, the limit is {limit}")
        return [text]
    if len(pieces) > max_parts:
        problems.append(f"too long: {weighted_length(text)} weighted characters need {len(pieces)} posts, "
                        f"max_thread_length is {max_parts}")
    return pieces


def validate_post(text: str, agent: AgentConfig, recent_posts: Sequence[str] = (), *, kind: str = "post",
                  replying_to: str | None = None, allowed_handles: Iterable[str] = ()) -> ValidatedText:
    """Clean ``text`` and check it against the agent's rules; raise ``ValidationFailed`` with every reason.

    ``replying_to`` (and ``allowed_handles``) are the only accounts the text may
    mention; ``recent_posts`` are the agent's latest posts, newest first.
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
    parts = _parts(cleaned, agent, kind, problems)
    if (dup := rules.near_duplicate_of(cleaned, recent_posts)) is not None:
        shown = dup if len(dup) <= 60 else dup[:57] + "..."
        problems.append(f"near-duplicate of a recent post: {shown!r}")
    if problems:
        raise ValidationFailed(problems)
    return ValidatedText(text=cleaned, parts=tuple(parts), kind=kind)


async def generate_validated(provider: LLMProvider, agent: AgentConfig, context: PromptContext,
                             recent_posts: Sequence[str] = (), attempts: int = 3, *,
                             allowed_handles: Iterable[str] = ()) -> ValidatedText:
    """Generate and validate, asking again (new seed, reasons fed back) up to ``attempts`` times.

    Provider errors propagate unchanged; after the last failed attempt
    ``ValidationFailed`` lists why each attempt was refused.
    """
    allowed = list(allowed_handles)
    reasons: list[str] = []
    feedback: list[str] = []
    for attempt in range(max(1, attempts)):
        extra = dict(context.extra)
        if feedback:
            extra["feedback"] = "; ".join(feedback[-3:])
        ctx = replace(context, seed=context.seed + attempt * SEED_STEP, extra=extra)
        if context.purpose == "reply":
            text = await provider.generate_reply(agent, ctx)
        else:
            text = await provider.generate_tweet(agent, ctx)
        try:
            return validate_post(text, agent, recent_posts, kind=context.purpose,
                                 replying_to=context.replying_to, allowed_handles=allowed)
        except ValidationFailed as exc:
            feedback.extend(exc.reasons)
            reasons.extend(f"attempt {attempt + 1}: {reason}" for reason in exc.reasons)
    raise ValidationFailed(reasons)
