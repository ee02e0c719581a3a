"""Engagement as a measured signal: when posts are sampled, how they are scored, what is learnt.

Pure functions; :mod:`puppet_engine.agents.behaviors.engagement` takes the samples and
applies what these decide. Definitions (docs/engagement.md):

- a post's **value** is its engagement rate, interactions (likes + replies + reposts +
  quotes + bookmarks) ÷ impressions, where impressions are known; else its interactions;
- a post is **settled** once the sample of its :attr:`EngagementPlan.judge_hours` slot
  (24 h) or a later one was taken: only settled posts are compared, shown by hour, and learnt from;
- its **score** in [-1, 1] is log2 of its value over the agent's usual value (the mean
  over its other settled posts), clamped: +1 twice as good as usual, -1 half as good.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from puppet_engine.storage.repos.engagement import Sample, TrackedPost

HOUR = 3600.0
MIN_BASELINE_POSTS = 3  # settled posts needed before a post is called better or worse than usual
MIN_LEARNING_POSTS = 8  # settled posts needed before peak hours move
PRIOR_WEIGHT = 3.0  # an hour's mean is shrunk towards the overall mean as if it had this many more posts
DEFAULT_PEAK_COUNT = 4  # hours learnt when the persona names none
CONFIGURED_BONUS = 1.1  # the persona's own peak hours start this much ahead


@dataclass(frozen=True)
class EngagementPlan:
    """When posts are sampled and how long samples are kept (from Settings)."""

    sample_hours: tuple[float, ...] = (1.0, 6.0, 24.0, 72.0)
    check_seconds: float = 6 * HOUR
    retention_days: float = 90.0
    judge_hours: float = 24.0
    early: float = 0.1  # a slot may be taken this share of its delay early, so nearby samples share a round

    def __post_init__(self) -> None:
        if not self.sample_hours or list(self.sample_hours) != sorted(set(self.sample_hours)):
            raise ValueError(f"engagement sample hours must be increasing and distinct; got {self.sample_hours}")

    @classmethod
    def from_settings(cls, settings: Any) -> EngagementPlan:
        hours = tuple(float(h) for h in str(settings.engagement_sample_hours).split(",") if h.strip())
        return cls(sample_hours=hours, check_seconds=float(settings.engagement_check_seconds),
                   retention_days=float(settings.engagement_retention_days))

    @property
    def horizon(self) -> float:
        """Seconds after posting at which the last sample is due."""
        return self.sample_hours[-1] * HOUR

    @property
    def window(self) -> float:
        """Seconds back the posts still being sampled reach (the last slot, two checks, a day's slack)."""
        return self.horizon + 2 * self.check_seconds + 24 * HOUR

    @property
    def kept(self) -> float:
        """Seconds samples are kept after the post: the retention, never less than :attr:`window`
        (a pruned post still in the window would be sampled again)."""
        return max(self.retention_days * 24 * HOUR, self.window)

    @property
    def judge_slot(self) -> int:
        """The first slot at or after ``judge_hours`` (the last slot if none is)."""
        return next((i for i, h in enumerate(self.sample_hours) if h >= self.judge_hours), len(self.sample_hours) - 1)

    def due_slot(self, post: TrackedPost, now: float) -> int | None:
        """The slot to sample now: the latest whose time has come, if later than any taken
        (slots missed while the engine was down are skipped, not caught up one by one)."""
        last = max(post.taken, default=-1)
        due = [i for i, h in enumerate(self.sample_hours) if i > last and self._opens(post, h) <= now]
        return due[-1] if due else None

    def next_due(self, post: TrackedPost, now: float) -> float | None:
        """When this post's next slot not yet open at ``now`` falls due (None when none is left)."""
        last = max(post.taken, default=-1)
        later = [post.posted_at + h * HOUR for i, h in enumerate(self.sample_hours)
                 if i > last and self._opens(post, h) > now]
        return later[0] if later else None

    def _opens(self, post: TrackedPost, hours: float) -> float:
        return post.posted_at + hours * HOUR * (1 - self.early)


def value(sample: Sample) -> float:
    """Engagement rate where impressions are known, else interactions."""
    if sample.impressions:
        return sample.interactions / sample.impressions
    return float(sample.interactions)


def rate(sample: Sample) -> float | None:
    return sample.interactions / sample.impressions if sample.impressions else None


def score(own: float, usual: float | None) -> float:
    """log2(own ÷ usual) clamped to [-1, 1]; 0 without a usual value to compare with."""
    if usual is None:
        return 0.0
    eps = 1e-4 if usual < 1 else 0.5  # rates are small fractions, counts are whole numbers
    return max(-1.0, min(1.0, math.log2((own + eps) / (usual + eps))))


def usual_value(settled: Iterable[Sample], excluding: str | None = None) -> float | None:
    """Mean value of the settled posts (other than ``excluding``), None with too few of them."""
    values = [value(s) for s in settled if s.post_id != excluding and not s.gone]
    return sum(values) / len(values) if len(values) >= MIN_BASELINE_POSTS else None


def importance_for(post_score: float) -> float:
    """A post memory's importance for its score: 0.4 as usual, 0.1 … 0.7 from worst to best."""
    return round(max(0.05, min(0.95, 0.4 + 0.3 * post_score)), 3)


def by_hour(settled: Iterable[Sample]) -> dict[int, tuple[int, float]]:
    """hour of day (agent's timezone) → (settled posts, mean value)."""
    sums: dict[int, list[float]] = {}
    for s in settled:
        if not s.gone:
            sums.setdefault(s.posted_hour, []).append(value(s))
    return {h: (len(v), sum(v) / len(v)) for h, v in sorted(sums.items())}


def learn_peak_hours(configured: Collection[int], stats: dict[int, tuple[int, float]], *,
                     count: int | None = None, min_posts: int = MIN_LEARNING_POSTS) -> list[int] | None:
    """Peak hours moved towards the hours that did best, or None with too little to go on.

    Each hour's mean is shrunk towards the overall mean (:data:`PRIOR_WEIGHT`), the
    configured hours starting a little ahead, so one lucky post does not move anything
    and the persona's choice holds until the numbers say otherwise. The best ``count``
    hours (as many as configured, else :data:`DEFAULT_PEAK_COUNT`) are the new peak hours.
    """
    posts = sum(n for n, _ in stats.values())
    if posts < min_posts:
        return None
    overall = sum(n * mean for n, mean in stats.values()) / posts
    want = count or len(set(configured)) or DEFAULT_PEAK_COUNT

    def smoothed(hour: int) -> float:
        n, mean = stats.get(hour, (0, 0.0))
        prior = overall * (CONFIGURED_BONUS if hour in configured else 1.0)
        return (n * mean + PRIOR_WEIGHT * prior) / (n + PRIOR_WEIGHT)

    ranked = sorted(range(24), key=lambda h: (-smoothed(h), h not in configured, h))
    return sorted(ranked[:want])


def settled(samples: Sequence[Sample], plan: EngagementPlan) -> list[Sample]:
    """Each settled post's latest sample (``samples`` ordered by post then slot)."""
    latest: dict[str, Sample] = {}
    for s in samples:
        if s.slot >= plan.judge_slot:
            latest[s.post_id] = s
    return list(latest.values())


def summary(latest: Sequence[Sample], plan: EngagementPlan, *, top: int = 5) -> dict[str, Any]:
    """What ``GET /agents/{id}/engagement`` shows: totals, rate, best and worst posts, by hour."""
    posts = [s for s in latest if not s.gone]
    done = [s for s in posts if s.slot >= plan.judge_slot]
    with_impressions = [s for s in posts if s.impressions]
    interactions = sum(s.interactions for s in posts)
    impressions = sum(s.impressions or 0 for s in with_impressions)
    ranked = sorted(done, key=value, reverse=True)
    return {
        "posts": len(posts),
        "settled_posts": len(done),
        "interactions": interactions,
        "impressions": impressions if with_impressions else None,
        "rate": (sum(s.interactions for s in with_impressions) / impressions) if impressions else None,
        "interactions_per_post": interactions / len(posts) if posts else None,
        "best": [post_view(s) for s in ranked[:top]],
        "worst": [post_view(s) for s in reversed(ranked[-top:])] if ranked and top else [],
        "by_hour": [{"hour": h, "posts": n, "value": round(mean, 6)} for h, (n, mean) in by_hour(done).items()],
    }


def post_view(s: Sample) -> dict[str, Any]:
    return {"post_id": s.post_id, "posted_at": s.posted_at, "hour": s.posted_hour, "sampled_at": s.sampled_at,
            "age_hours": round((s.sampled_at - s.posted_at) / HOUR, 2), "likes": s.likes, "replies": s.replies,
            "reposts": s.reposts, "quotes": s.quotes, "bookmarks": s.bookmarks, "impressions": s.impressions,
            "interactions": s.interactions, "rate": rate(s)}
