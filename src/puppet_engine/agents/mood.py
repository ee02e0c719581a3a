"""Mood: a persisted (valence, arousal, dominance) per agent, each in [-1, 1].

It drifts back towards the persona's baseline on a schedule (with a little noise),
moves with what happens (kind or hostile replies, trade outcomes, how its posts are received), and colours the
prompts. Pure functions; the behaviours persist the result in the agent's state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

_POSITIVE = re.compile(r"\b(love|great|thanks|thank you|beautiful|brilliant|amazing|agree|nice|wise|lol|haha|"
                       r"gm|cool|based|respect|welcome|appreciate|wonderful|fun)\b", re.I)
_NEGATIVE = re.compile(r"\b(hate|stupid|idiot|scam|trash|garbage|dumb|liar|fraud|worst|shut up|clown|"
                       r"pathetic|loser|ugly|rug|useless|fake)\b", re.I)


@dataclass(frozen=True)
class Mood:
    valence: float = 0.2  # unhappy … happy
    arousal: float = 0.0  # calm … excited
    dominance: float = 0.0  # submissive … in control

    @classmethod
    def from_state(cls, data: Mapping[str, float] | None) -> Mood:
        if not data:
            return cls()
        return cls(**{k: float(data.get(k, getattr(cls(), k))) for k in ("valence", "arousal", "dominance")})

    def to_state(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    def label(self) -> str:
        if self.valence > 0.4:
            return "elated" if self.arousal > 0.3 else "content"
        if self.valence < -0.3:
            return "agitated" if self.arousal > 0.3 else "gloomy"
        return "restless" if self.arousal > 0.4 else "neutral"


def _clamp(x: float) -> float:
    return max(-1.0, min(1.0, x))


def nudge(mood: Mood, valence: float = 0.0, arousal: float = 0.0, dominance: float = 0.0) -> Mood:
    return Mood(_clamp(mood.valence + valence), _clamp(mood.arousal + arousal), _clamp(mood.dominance + dominance))


def drift(mood: Mood, rng: random.Random, baseline: Mood | None = None, rate: float = 0.2,
          noise: float = 0.05) -> Mood:
    """One scheduled step back towards ``baseline``, plus noise."""
    base = baseline or Mood()
    return Mood(*(
        _clamp(cur + (target - cur) * rate + rng.gauss(0, noise))
        for cur, target in ((mood.valence, base.valence), (mood.arousal, base.arousal),
                            (mood.dominance, base.dominance))
    ))


def sentiment_of(text: str) -> float:
    """A crude lexicon score in [-1, 1]: enough to tell kind from hostile."""
    pos, neg = len(_POSITIVE.findall(text)), len(_NEGATIVE.findall(text))
    if pos == neg == 0:
        return 0.0
    return (pos - neg) / (pos + neg)


def after_interaction(mood: Mood, text: str) -> Mood:
    s = sentiment_of(text)
    return nudge(mood, valence=0.15 * s, arousal=0.1 * abs(s), dominance=-0.05 if s < 0 else 0.02)


def after_trade(mood: Mood, pnl_fraction: float, failed: bool = False) -> Mood:
    if failed:
        return nudge(mood, valence=-0.1, arousal=0.15, dominance=-0.1)
    return nudge(mood, valence=_clamp(pnl_fraction * 5) * 0.2, arousal=0.1, dominance=0.05)


def after_engagement(mood: Mood, post_score: float) -> Mood:
    """A post settled better (score > 0) or worse (< 0) than the agent's usual: pleased and
    surer of itself, or a little deflated. ``post_score`` is in [-1, 1]."""
    s = max(-1.0, min(1.0, post_score))
    return nudge(mood, valence=0.08 * s, arousal=0.04 * abs(s), dominance=0.04 * s)
