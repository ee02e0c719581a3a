"""Client-side X rate limiting driven by the ``x-rate-limit-*`` response headers.

X tells, on every response, how many calls are left in the current window of that
endpoint for the caller and when the window resets (and, on ``POST /2/tweets``, the
24-hour user and app caps). :class:`RateLimiter` remembers those numbers per
(account, endpoint) and never sends a call it already knows would be refused: it waits
until the reset on the injected clock, or raises :class:`RateLimited` when that wait
is longer than ``max_wait``. Calls in flight count against what is left, so concurrent
callers cannot overshoot a window either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import RateLimited

PREFIXES = ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")
_NAMES = tuple((prefix, f"{prefix}-limit", f"{prefix}-remaining", f"{prefix}-reset") for prefix in PREFIXES)
DEFAULT_RESET = 60.0  # seconds to wait after a 429 that carries no reset header


@dataclass
class _Window:
    remaining: int
    reset: float


@dataclass
class _Bucket:
    windows: dict[str, _Window] = field(default_factory=dict)
    inflight: int = 0

    def blocked_until(self, now: float) -> float | None:
        """When the first spent window resets, if any live window has no call left for us."""
        spent = [w.reset for w in self.windows.values() if now < w.reset and w.remaining - self.inflight <= 0]
        return max(spent) if spent else None


class RateLimiter:
    """Per (account, endpoint) budgets learned from X's headers.

    ``acquire`` before a call, ``release`` with the response headers after it (or with
    ``None`` when no response came). ``margin`` seconds are added to every wait so a
    call never lands just before the server's window rolls over.
    """

    def __init__(self, clock: Clock | None = None, *, max_wait: float = 960.0, margin: float = 1.0,
                 service: str = "x") -> None:
        self.clock = clock or WallClock()
        self.max_wait = max_wait
        self.margin = margin
        self.service = service
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _bucket(self, account: str, endpoint: str) -> _Bucket:
        return self._buckets.setdefault((account, endpoint), _Bucket())

    def wait_time(self, account: str, endpoint: str) -> float:
        """Seconds before a call to ``endpoint`` may be sent (0 when it may go now)."""
        until = self._bucket(account, endpoint).blocked_until(self.clock.now())
        return 0.0 if until is None else max(0.0, until - self.clock.now()) + self.margin

    async def acquire(self, account: str, endpoint: str, *, max_wait: float | None = None) -> None:
        """Wait until a call is allowed (or raise :class:`RateLimited` when that is more than
        ``max_wait`` seconds away, default :attr:`max_wait`), then count it in flight."""
        limit = self.max_wait if max_wait is None else max_wait
        bucket = self._bucket(account, endpoint)
        while True:
            wait = self.wait_time(account, endpoint)
            if wait <= 0:
                break
            if wait > limit:
                raise RateLimited(f"{endpoint} limit reached for this account", service=self.service,
                                  retry_after=wait)
            await self.clock.sleep(wait)
            await asyncio.sleep(0)
        bucket.inflight += 1

    def release(self, account: str, endpoint: str, headers: Mapping[str, str] | None, status: int | None = None) -> None:
        """The call finished: learn from its headers; a 429 marks the window spent."""
        bucket = self._bucket(account, endpoint)
        bucket.inflight = max(0, bucket.inflight - 1)
        if headers is None:
            return
        now = self.clock.now()
        # One pass over the headers: an httpx2 ``Headers`` scans them all for each name looked up.
        values = dict(headers.items())
        for prefix, limit_name, remaining_name, reset_name in _NAMES:
            limit = _int(values.get(limit_name))
            remaining = _int(values.get(remaining_name))
            reset = _int(values.get(reset_name))
            if remaining is None or reset is None:
                continue
            if limit is not None and remaining > limit:
                remaining = limit
            self._learn(bucket, prefix, remaining, float(reset))
        if status == 429:
            main = bucket.windows.get("x-rate-limit")
            if main is None or main.reset <= now:
                self._learn(bucket, "x-rate-limit", 0, now + DEFAULT_RESET)
            elif not any(w.remaining <= 0 for w in bucket.windows.values()):
                main.remaining = 0

    @staticmethod
    def _learn(bucket: _Bucket, name: str, remaining: int, reset: float) -> None:
        known = bucket.windows.get(name)
        if known is None or reset > known.reset:  # a newer window
            bucket.windows[name] = _Window(remaining, reset)
        elif reset == known.reset:  # within a window the count only goes down; replies may arrive out of order
            known.remaining = min(known.remaining, remaining)

    def reset_in(self, account: str, endpoint: str) -> float:
        """Seconds until the spent window of ``endpoint`` resets (``DEFAULT_RESET`` when unknown)."""
        until = self._bucket(account, endpoint).blocked_until(self.clock.now())
        return DEFAULT_RESET if until is None else max(0.0, until - self.clock.now())


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
