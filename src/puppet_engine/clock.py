"""Time as an injected dependency: a wall clock for production, a virtual one for simulation.

Everything that schedules or measures time (the event engine, rate limiters, the
sandbox's windows and markets) reads a :class:`Clock` so tests and ``simulate`` can
run days of agent life in seconds.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any


class Clock(ABC):
    """Seconds since the Unix epoch, and a way to wait until a moment."""

    @abstractmethod
    def now(self) -> float:
        """Current time, epoch seconds."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    async def sleep_until(self, when: float) -> None:
        delay = when - self.now()
        if delay > 0:
            await self.sleep(delay)


class WallClock(Clock):
    """The real time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock(Clock):
    """A clock that only moves when told to, or when every sleeper is waiting on it.

    ``sleep`` registers a waiter and returns once :meth:`advance` or :meth:`set`
    moves time past its deadline. ``simulate`` drives it forward to the next due
    moment, so idle stretches cost nothing.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._waiters: list[tuple[float, asyncio.Future[None], asyncio.Task[Any] | None]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._now + seconds, fut, asyncio.current_task()))
        try:
            await fut
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not fut]

    def set(self, when: float) -> None:
        if when < self._now:
            return
        self._now = float(when)
        for deadline, fut, _task in list(self._waiters):
            if deadline <= self._now and not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def next_deadline(self) -> float | None:
        pending = [t for t, f, _task in self._waiters if not f.done()]
        return min(pending) if pending else None

    def all_asleep(self, tasks: Collection[asyncio.Task[Any]]) -> float | None:
        """The earliest wake-up of ``tasks`` when every one of them is asleep on this clock
        (else None): nothing but moving the clock lets them go on."""
        deadlines = {task: deadline for deadline, fut, task in self._waiters if not fut.done()}
        if not tasks or any(task not in deadlines for task in tasks):
            return None
        return min(deadlines[task] for task in tasks)
