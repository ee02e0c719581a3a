"""How long an event waits on what lies outside the engine: X, the LLM, Solana RPC, Jupiter.

Every client wraps its calls in ``with upstream("x"):`` (``llm``, ``solana``,
``jupiter``). The event engine calls :func:`track` as each event starts, so whatever
runs for that event, in its task, adds its waiting to the event's :class:`Spent`.
Handler time minus that is the engine's own overhead per event — prompts,
validation, memory search, the database — which ``puppet_event_overhead_seconds``
reports and ``bench/engine.py`` measures. Nested sections count once. Listeners
(:func:`listen`) hear every call with its service, outcome and duration: the
``puppet_http_client_latency_seconds`` metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from puppet_engine.errors import RateLimited, ServiceUnavailable


@dataclass
class Call:
    """One upstream call; set ``status`` to the HTTP status when the service answered."""

    status: int | None = None


@dataclass
class Spent:
    """Time one event spent waiting on upstream services, and how many calls that took."""

    seconds: float = 0.0
    calls: int = 0
    depth: int = 0


Listener = Callable[[str, str, float], None]  # service, outcome (ok|rate_limited|timeout|error), seconds

_current: ContextVar[Spent | None] = ContextVar("puppet_upstream", default=None)
_listeners: list[Listener] = []


def track() -> Spent:
    """Start counting for the current task (an event): returns the counter it fills."""
    counter = Spent()
    _current.set(counter)
    return counter


def spent() -> Spent | None:
    """The current event's counter, if one is being tracked."""
    return _current.get()


def listen(listener: Listener) -> Callable[[], None]:
    """Hear every upstream call; returns a function that stops listening."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def outcome_of(call: Call, exc: BaseException | None) -> str:
    if isinstance(exc, RateLimited) or call.status == 429:
        return "rate_limited"
    if exc is not None:
        timeout = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
        return "timeout" if timeout or (isinstance(exc, ServiceUnavailable) and "Timeout" in str(exc)) else "error"
    return "error" if call.status is not None and call.status >= 400 else "ok"


@contextmanager
def upstream(service: str) -> Iterator[Call]:
    """Time the block as waiting on ``service`` (for the event, the outermost block only)."""
    counter = _current.get()
    if counter is not None:
        counter.depth += 1
    started = time.perf_counter()
    call = Call()
    failure: BaseException | None = None
    try:
        yield call
    except BaseException as exc:
        failure = exc
        raise
    finally:
        seconds = time.perf_counter() - started
        if counter is not None:
            counter.depth -= 1
            if counter.depth == 0:
                counter.seconds += seconds
                counter.calls += 1
        for listener in _listeners:
            listener(service, outcome_of(call, failure), seconds)
