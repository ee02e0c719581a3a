"""Each event's time splits into waiting on X and the LLM (upstream) and the engine's own work."""

from __future__ import annotations

from collections import defaultdict

from puppet_engine.clock import VirtualClock
from puppet_engine.events import Event
from puppet_engine.observability import upstream

from .test_posting_schedule import HOUR, make_engine, persona


async def test_upstream_time_is_measured_per_event_and_reported(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, persona("ada"), persona("bea"))
    seen: dict[str, list[tuple[float, float, int]]] = defaultdict(list)

    def observe(event: Event, outcome: str, seconds: float) -> None:
        spent = upstream.spent()
        assert spent is not None and spent.depth == 0
        seen[event.type].append((seconds, spent.seconds, spent.calls))

    engine.events.observe(observe)
    await engine.start()
    await engine.run_until(clock.now() + 8 * HOUR)
    await engine.stop()

    assert {"post.due", "mentions.poll", "mood.drift"} <= set(seen)
    for seconds, waited, _calls in (t for timings in seen.values() for t in timings):
        assert 0.0 <= waited <= seconds
    assert all(calls >= 1 and waited > 0 for _, waited, calls in seen["mentions.poll"])  # GET mentions
    posted = [calls for _, _, calls in seen["post.due"]]
    assert max(posted) >= 2  # the LLM writing it, then X taking it
    assert all(calls == 0 and waited == 0.0 for _, waited, calls in seen["mood.drift"])  # no I/O at all

    m = engine.metrics.registry.get_sample_value
    assert m("puppet_http_client_latency_seconds_count", {"service": "x", "outcome": "ok"}) >= len(seen["mentions.poll"])
    assert m("puppet_http_client_latency_seconds_count", {"service": "llm", "outcome": "ok"}) >= len(seen["post.due"])
    assert m("puppet_event_overhead_seconds_count", {"type": "post.due"}) == len(seen["post.due"])
    assert m("puppet_event_upstream_seconds_sum", {"type": "mood.drift"}) == 0.0
