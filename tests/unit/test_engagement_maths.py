"""The pure side of engagement: when a post is due a sample, scores, importance, learnt peak hours."""

from __future__ import annotations

import pytest

from puppet_engine.agents.engagement import (
    HOUR,
    EngagementPlan,
    by_hour,
    importance_for,
    learn_peak_hours,
    score,
    summary,
    usual_value,
)
from puppet_engine.agents.mood import Mood, after_engagement
from puppet_engine.settings import Settings
from puppet_engine.storage.repos.engagement import Sample, TrackedPost


def sample(post_id: str, hour: int, interactions: int, impressions: int | None, slot: int = 2) -> Sample:
    return Sample("a", post_id, 0.0, hour, slot, 24 * HOUR, likes=interactions, impressions=impressions)


def test_due_slot_is_the_latest_come_and_missed_slots_are_skipped() -> None:
    plan = EngagementPlan()
    post = TrackedPost("1", 0.0, "text")
    assert plan.due_slot(post, 0.5 * HOUR) is None
    assert plan.due_slot(post, 1 * HOUR) == 0
    assert plan.due_slot(post, 30 * HOUR) == 2  # down through 1 h and 6 h: one sample, at 24 h
    assert plan.due_slot(TrackedPost("1", 0.0, "t", frozenset({2})), 30 * HOUR) is None
    assert plan.next_due(TrackedPost("1", 0.0, "t", frozenset({0})), 2 * HOUR) == 6 * HOUR
    assert plan.judge_slot == 2


def test_plan_from_settings_and_bad_hours() -> None:
    plan = EngagementPlan.from_settings(Settings(engagement_sample_hours="2, 12,48", _env_file=None))  # type: ignore[call-arg]
    assert plan.sample_hours == (2.0, 12.0, 48.0) and plan.judge_slot == 2
    with pytest.raises(ValueError, match="increasing"):
        EngagementPlan(sample_hours=(6.0, 1.0))
    with pytest.raises(ValueError, match="engagement_sample_hours"):
        Settings(engagement_sample_hours="1,soon", _env_file=None)  # type: ignore[call-arg]


def test_scores_compare_with_the_usual_and_set_importance() -> None:
    assert score(0.04, 0.02) == pytest.approx(1.0, abs=0.01)
    assert score(0.01, 0.02) == pytest.approx(-1.0, abs=0.02)
    assert score(0.02, None) == 0.0
    assert importance_for(1.0) == 0.7 and importance_for(-1.0) == 0.1 and importance_for(0.0) == 0.4
    settled = [sample(str(i), 12, 10 + i, 500) for i in range(3)]
    assert usual_value(settled) == pytest.approx(sum(10 + i for i in range(3)) / 1500)
    assert usual_value(settled, excluding="0") is None  # two others are too few to compare with
    better = after_engagement(Mood(), 1.0)
    assert better.valence > Mood().valence and after_engagement(Mood(), -1.0).valence < Mood().valence


def test_peak_hours_move_only_with_enough_evidence() -> None:
    night = [3, 4, 5, 6]
    few = by_hour([sample(str(i), 17, 30, 500) for i in range(3)])
    assert learn_peak_hours(night, few) is None
    many = [sample(f"n{i}", 3 + i % 4, 5, 500) for i in range(12)]
    many += [sample(f"d{i}", 15 + i % 4, 30, 500) for i in range(12)]
    assert learn_peak_hours(night, by_hour(many)) == [15, 16, 17, 18]
    # One lucky post in an hour does not beat the persona's choice.
    even = [sample(f"e{i}", h, 10, 500) for i, h in enumerate([3, 4, 5, 6] * 3)] + [sample("x", 20, 11, 500)]
    assert learn_peak_hours(night, by_hour(even)) == night


def test_summary_ranks_settled_posts_and_falls_back_to_interactions_per_post() -> None:
    plan = EngagementPlan()
    latest = [sample("a", 9, 10, 100), sample("b", 9, 1, 100), sample("c", 21, 5, 100), sample("young", 1, 9, 10, 0)]
    out = summary(latest, plan, top=2)
    assert [p["post_id"] for p in out["best"]] == ["a", "c"] and [p["post_id"] for p in out["worst"]] == ["b", "c"]
    assert out["posts"] == 4 and out["settled_posts"] == 3 and out["rate"] == pytest.approx(25 / 310)
    assert out["by_hour"] == [{"hour": 9, "posts": 2, "value": 0.055}, {"hour": 21, "posts": 1, "value": 0.05}]
    counts_only = summary([sample("a", 9, 10, None), sample("b", 9, 4, None)], plan)
    assert counts_only["rate"] is None and counts_only["impressions"] is None
    assert counts_only["interactions_per_post"] == 7
