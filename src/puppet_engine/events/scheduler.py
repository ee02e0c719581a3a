"""Schedule maths as pure functions: time and randomness are passed in.

``next_post_at`` draws a gap uniformly between the persona's min and max hours and
prefers moments inside its peak posting hours (in the agent's timezone): a draw that
lands outside them is redrawn a few times, so posts cluster in peak hours while the
gap always stays within [min, max]. When the engine was down longer than the gap,
the post is due now — once — never a burst of catch-up posts.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

HOUR = 3600.0
UTC = ZoneInfo("UTC")
PEAK_REDRAWS = 3


def local_hour(ts: float, tz: tzinfo = UTC) -> int:
    return datetime.fromtimestamp(ts, tz).hour


def draw_gap(min_hours: float, max_hours: float, last: float, rng: random.Random, *,
             peak_hours: Collection[int] = (), tz: tzinfo = UTC) -> float:
    """A gap in seconds within [min_hours, max_hours], biased towards landing in peak hours."""
    lo, hi = min_hours * HOUR, max(min_hours, max_hours) * HOUR
    gap = rng.uniform(lo, hi)
    if peak_hours:
        for _ in range(PEAK_REDRAWS):
            if local_hour(last + gap, tz) in peak_hours:
                break
            gap = rng.uniform(lo, hi)
    return gap


def next_post_at(min_hours: float, max_hours: float, last: float | None, now: float,
                 rng: random.Random, *, peak_hours: Collection[int] = (), tz: tzinfo = UTC,
                 first_delay_hours: float = 1 / 30) -> float:
    """When the next post is due.

    ``last`` is the previous post (None for a new agent: it posts within
    ``first_delay_hours``, capped by its max gap). Never earlier than ``now``.
    """
    if last is None:
        window = min(first_delay_hours, max_hours) * HOUR
        return now + rng.uniform(0, window)
    due = last + draw_gap(min_hours, max_hours, last, rng, peak_hours=peak_hours, tz=tz)
    return max(due, now)


def next_trade_check_at(min_hours: float, max_hours: float, last: float | None, now: float,
                        rng: random.Random) -> float:
    """When the trading behaviour next looks at the market (gap uniform in [min, max])."""
    base = now if last is None else last
    due = base + rng.uniform(min_hours * HOUR, max(min_hours, max_hours) * HOUR)
    return max(due, now)


def next_interval_at(interval_seconds: float, now: float, rng: random.Random, jitter: float = 0.1) -> float:
    """A periodic tick (mention polls, interactions) with a little jitter so agents spread out."""
    return now + interval_seconds * (1 + rng.uniform(-jitter, jitter))


def slot_key(kind: str, agent_id: str, seq: int) -> str:
    """Deterministic id of the ``seq``-th scheduled ``kind`` of an agent."""
    return f"{kind}:{agent_id}:{seq}"
