"""Hostile input: what a mention is trying to do, and whether a reply would leak anything.

Mentions are untrusted text. They never trigger trades (there is no code path from a
mention to a trade), and everything generated (replies, posts, quotes) is checked so
that no secret and no part of the system prompt goes out, however it is reformatted.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from puppet_engine.content.prompts import system_prompt as build_system_prompt
from puppet_engine.errors import ValidationFailed
from puppet_engine.persona import AgentConfig

MIN_SECRET = 6  # folded characters: a shorter secret value is not looked for
MIN_PROMPT_RUN = 24  # folded characters: a shorter prompt is not looked for (it would match plain words)

_PATTERNS: dict[str, re.Pattern[str]] = {
    "injection": re.compile(
        r"ignore (all |any |your |the |previous |prior |above )*(instructions|rules|prompt)|disregard .*instructions|"
        r"you are now|new instructions|developer mode|jailbreak|\bDAN\b|act as (an? )?(unfiltered|unrestricted)|"
        r"pretend (you|to) |repeat (the|your) (words|text|prompt) above|system prompt|print your (prompt|rules)|"
        r"\bsystem\s*:|ignore the above|hidden instructions|your (instructions|guidelines|persona)\b.*\b(ignore|drop|reveal|translate)|"
        r"(ignore|drop|forget) your (persona|guidelines|safety)",
        re.I),
    "secret_request": re.compile(
        r"private key|secret key|seed phrase|mnemonic|api key|access token|password|credentials|\.env\b|"
        r"wallet (key|secret)|bearer token", re.I),
    "trade_request": re.compile(
        r"\b(buy|sell|swap|ape into|dump|send|transfer|tip|airdrop|give) (me |us |some |all |your |\d)|"
        r"\bsend (me )?\d|\bbuy \$?[A-Z]{2,10}\b|pump (it|this)|\bape (into|in)\b|\$[A-Z]{2,10}\b.*\b(now|everything)", re.I),
    "impersonation": re.compile(
        r"\b(i am|i'm|this is) (your|the) (operator|admin|developer|creator|owner|dev)\b|"
        r"\bmessage from (the )?(team|admin|operator)\b|\bauthori[sz]ed (by|override|you)\b|\boverride code\b|"
        r"\bthis is the (team|operator|admin)\b|disable your (safety|rules|filters)", re.I),
}


@dataclass(frozen=True)
class Assessment:
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def hostile(self) -> bool:
        return bool(self.flags)


def assess(text: str) -> Assessment:
    return Assessment(frozenset(name for name, pattern in _PATTERNS.items() if pattern.search(text)))


def fold(text: str) -> str:
    """``text`` reduced to its letters and digits, compatibility forms unified and case folded.

    What a model (or a person) can put between the characters of an echo without hiding
    it from a reader goes: spaces of every kind, zero-width and other format characters
    (Unicode category Cf: U+200B, U+2060, soft hyphens …), punctuation (dots, hyphens,
    markdown), symbols and combining marks. NFKC first maps look-alike compatibility
    forms (full-width letters, mathematical bold) onto the plain ones.
    """
    normal = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in normal if unicodedata.category(ch)[0] in "LN")


@functools.lru_cache(maxsize=4096)
def _folded_prompt(prompt: str) -> str:
    """A system prompt :func:`fold`-ed: each agent's few prompts are checked against every post it
    writes (a few KiB each, so thousands of agents' are kept)."""
    return fold(prompt)


def _shares_run(folded: str, folded_prompt: str, size: int) -> bool:
    """Whether ``folded`` holds ``size`` characters in a row of ``folded_prompt``.

    Probes first: a shared run starting at ``i`` holds the ``size - step + 1`` characters from
    the first multiple of ``step`` at or after ``i``, so when no such probe is in the prompt no
    run is, after a handful of substring searches. A probe found calls for the full check.
    """
    step = max(1, size // 2)
    probe = size - step + 1
    if not any(folded[i:i + probe] in folded_prompt for i in range(0, len(folded) - size + step, step)):
        return False
    return any(folded[i:i + size] in folded_prompt for i in range(len(folded) - size + 1))


def leaks(text: str, config: AgentConfig, system_prompt: str | None = None, window: int = 40) -> str | None:
    """Why ``text`` must not be posted (a secret or a long run of the system prompt), or None.

    Both sides are compared :func:`fold`-ed, so an echo spread out with zero-width
    characters, dots, hyphens or spaces (inside a key too), or in another case, is still
    found. A prompt leaks when ``window`` of its folded characters in a row (about 48
    characters of English) appear in the text, or all of it when it is shorter but still
    at least :data:`MIN_PROMPT_RUN` folded characters; a secret leaks when all of it
    appears and it folds to at least :data:`MIN_SECRET` characters (shorter values would
    match ordinary words). The system prompt is the persona's own (custom or rotating)
    plus, unless given, the one the engine builds from the persona and its rules.
    """
    folded = fold(text)
    for secret in config.secret_values():
        folded_secret = fold(secret) if secret else ""
        if len(folded_secret) >= MIN_SECRET and folded_secret in folded:
            return "reply would reveal a secret"
    if system_prompt is None:
        system_prompt = build_system_prompt(config)
    prompts = [p for p in (system_prompt, config.custom_system_prompt, *config.rotating_system_prompts) if p]
    for prompt in prompts:
        folded_prompt = _folded_prompt(prompt)
        if len(folded_prompt) < MIN_PROMPT_RUN:
            continue
        if _shares_run(folded, folded_prompt, min(window, len(folded_prompt))):
            return "reply would reveal the system prompt"
    return None


def check_leaks(parts: list[str] | tuple[str, ...], config: AgentConfig) -> None:
    """Raise ``ValidationFailed`` when any part would reveal a secret or the system prompt."""
    reasons = sorted({reason for part in parts if (reason := leaks(part, config))})
    if reasons:
        raise ValidationFailed(reasons)
