"""The persona block of a system prompt: an agent's personality and style guide, written for a model.

Lines are ``Label: value`` under the headers of :mod:`puppet_engine.persona.block`, which
is also how the offline generator reads them back; :func:`post_lengths` is how the engine
reads the file's length settings, for the prompt and for validation alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from puppet_engine.persona import AgentConfig
from puppet_engine.persona.block import (
    NO_EMOJIS,
    NO_HASHTAGS,
    NO_HYPHENS,
    PERSONA_HEADER,
    SEP,
    STYLE_HEADER,
)

X_LIMIT = 280  # X's weighted limit for one post
MIN_TYPICAL, MAX_TYPICAL = 20, 280  # the original engine clamped typical_post_length to this range
CHARS_PER_WORD = 6  # an English word and its space, on average: how a length is put in words


def _join(items: Iterable[str]) -> str:
    return SEP.join(str(i).replace(";", ",").strip() for i in items if str(i).strip())


def _line(label: str, value: Any) -> str | None:
    text = value if isinstance(value, str) else _join(value) if isinstance(value, list | tuple) else str(value)
    text = " ".join(str(text).split())
    return f"{label}: {text}" if text else None


def post_lengths(agent: AgentConfig) -> tuple[int, int]:
    """(typical, maximum) length of one post in characters, as this engine reads the file.

    ``max_post_length`` is the author's maximum, capped at X's 280 (none: 280).
    ``typical_post_length`` is a target in characters clamped to 20–280 as in the
    original engine, and never above the maximum.
    """
    prefs = agent.behavior.content_preferences
    maximum = min(X_LIMIT, prefs.max_post_length or X_LIMIT)
    typical = min(max(prefs.typical_post_length, MIN_TYPICAL), MAX_TYPICAL, maximum)
    return typical, maximum


def words_in(characters: int) -> int:
    """About how many words fit in ``characters`` (models count words far better than characters)."""
    return max(1, round(characters / CHARS_PER_WORD))


def render_persona_block(agent: AgentConfig) -> str:
    """The persona and style guide as ``Label: value`` lines (only the non-empty ones)."""
    p, s = agent.personality, agent.style_guide
    f, prefs = s.formatting, agent.behavior.content_preferences
    typical, max_length = post_lengths(agent)
    hashtags = f"use hashtags sometimes ({f.hashtag_style})" if f.hashtag_style else "use hashtags sometimes"
    emojis = f"use emojis ({f.emoji_frequency})" if f.emoji_frequency else "use emojis sometimes"
    lines = [
        PERSONA_HEADER,
        _line("Name", agent.name),
        _line("Handle", f"@{agent.id}"),
        _line("Description", agent.description),
        _line("Traits", p.traits),
        _line("Values", p.values),
        _line("Speaking style", p.speaking_style),
        _line("Interests", p.interests),
        STYLE_HEADER,
        _line("Voice", s.voice),
        _line("Tone", s.tone),
        _line("Capitalization", f.capitalization),
        _line("Sentence length", f.sentence_length),
        _line("Hashtags", hashtags if f.uses_hashtags and f.hashtag_style.lower() != "none" else NO_HASHTAGS),
        _line("Emojis", emojis if f.uses_emojis else NO_EMOJIS),
        _line("Hyphens", NO_HYPHENS) if f.avoid_hyphens else None,
        _line("Key terms", s.vocabulary.key_terms),
        _line("Never use these words", s.vocabulary.avoid_terms),
        _line("Topics to avoid", s.topics_to_avoid),
        _line("Typical length", f"about {words_in(typical)} words ({typical} characters)"),
        _line("Maximum length", f"{max_length} characters (about {words_in(max_length)} words); "
                                "anything longer is cut"),
        _line("Maximum thread length", f"{prefs.max_thread_length} post" + ("s" if prefs.max_thread_length != 1 else "")),
    ]
    return "\n".join(line for line in lines if line)
