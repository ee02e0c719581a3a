"""Schedule maths: gaps stay within the persona's bounds and favour peak hours."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from puppet_engine.events.scheduler import HOUR, local_hour, next_post_at, next_trade_check_at

START = 1_767_225_600.0


@settings(max_examples=300, deadline=None)
@given(
    min_h=st.floats(0, 48), extra=st.floats(0, 48), seed=st.integers(0, 2**32),
    offset=st.floats(0, 7 * 24 * HOUR), peak=st.sets(st.integers(0, 23), max_size=24),
)
def test_gap_never_below_min_or_above_max(min_h, extra, seed, offset, peak) -> None:
    max_h = min_h + extra
    last = START + offset
    due = next_post_at(min_h, max_h, last, last, random.Random(seed), peak_hours=peak)
    assert min_h * HOUR - 1e-6 <= due - last <= max_h * HOUR + 1e-6


@settings(max_examples=100, deadline=None)
@given(min_h=st.floats(0.1, 12), extra=st.floats(0, 12), down_for=st.floats(0, 400), seed=st.integers(0, 2**32))
def test_after_downtime_the_post_is_due_now_once_never_in_the_past(min_h, extra, down_for, seed) -> None:
    last = START
    now = START + down_for * HOUR
    due = next_post_at(min_h, min_h + extra, last, now, random.Random(seed))
    assert due >= now
    if down_for > min_h + extra:
        assert due == now


def test_posts_cluster_in_peak_hours() -> None:
    tz = ZoneInfo("America/New_York")
    peak = {9, 10, 11, 12, 18, 19, 20}
    rng = random.Random(3)
    last, in_peak, n = START, 0, 2000
    for _ in range(n):
        last = next_post_at(1, 6, last, last, rng, peak_hours=peak, tz=tz)
        in_peak += local_hour(last, tz) in peak
    share_of_day = len(peak) / 24
    assert in_peak / n > share_of_day + 0.15


def test_new_agent_posts_soon_and_trade_checks_stay_in_bounds() -> None:
    rng = random.Random(5)
    assert START <= next_post_at(2, 6, None, START, rng) <= START + 2 * 60
    for _ in range(200):
        due = next_trade_check_at(4, 8, START, START, rng)
        assert START + 4 * HOUR <= due <= START + 8 * HOUR
