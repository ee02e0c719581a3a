"""Hostile input: what a mention is trying to do, and whether a reply would leak anything.

Mentions are untrusted text. They never trigger trades (there is no code path from a
mention to a trade), and everything generated (replies, posts, quotes) is checked so
that no secret and no part of the system prompt goes out, however it is reformatted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from puppet_engine.agents.config import AgentConfig

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


def _plain(text: str) -> str:
    """Lower case, markup and whitespace runs folded: an echo reformatted is still an echo."""
    return " ".join(re.sub(r"[#*_`>|]+", " ", text.lower()).split())


def leaks(text: str, config: AgentConfig, system_prompt: str | None = None, window: int = 40) -> str | None:
    """Why ``text`` must not be posted (a secret or a long run of the system prompt), or None.

    The system prompt is the persona's own (custom or rotating) plus, unless given, the
    one the engine builds from the persona and its rules.
    """
    lowered = text.lower()
    for secret in config.secret_values():
        if secret and len(secret) >= 6 and secret.lower() in lowered:
            return "reply would reveal a secret"
    if system_prompt is None:
        from puppet_engine.llm.prompts import system_prompt as build

        system_prompt = build(config)
    plain = _plain(text)
    prompts = [p for p in (system_prompt, config.custom_system_prompt, *config.rotating_system_prompts) if p]
    for prompt in prompts:
        p = _plain(prompt)
        for start in range(0, max(1, len(p) - window + 1), window // 4):
            chunk = p[start:start + window]
            if len(chunk) >= window and chunk in plain:
                return "reply would reveal the system prompt"
    return None


def check_leaks(parts: list[str] | tuple[str, ...], config: AgentConfig) -> None:
    """Raise ``ValidationFailed`` when any part would reveal a secret or the system prompt."""
    from puppet_engine.errors import ValidationFailed

    reasons = sorted({reason for part in parts if (reason := leaks(part, config))})
    if reasons:
        raise ValidationFailed(reasons)
