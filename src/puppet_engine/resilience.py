"""One circuit breaker and one retry policy for every external service.

X (:mod:`puppet_engine.twitter.client`), the LLM providers
(:class:`~puppet_engine.llm.wrappers.CircuitBreakerProvider`), Solana RPC
(:class:`~puppet_engine.solana.rpc.SolanaRpc`) and Jupiter
(:class:`~puppet_engine.solana.jupiter.JupiterAPI`) fail fast through a
:class:`CircuitBreaker` while their service is down and space their retries with a
:class:`RetryPolicy`. Each caller decides which failures count (a refused request is
not an outage) and keeps its own parameters.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import BadResponse, ProviderError, ServiceUnavailable

T = TypeVar("T")
NO_RETRY = 1  # attempts of a caller that does not retry (Solana RPC and Jupiter by default)


def transient(exc: BaseException) -> bool:
    """Worth another try: the service was unreachable, erred or answered garbage."""
    return isinstance(exc, (ServiceUnavailable, BadResponse))


class CircuitBreaker:
    """Fails calls fast while a service is down.

    Open after ``failures`` consecutive failures; once ``cooldown`` seconds have passed it
    is ``half_open`` and lets a trial through (with ``one_trial``, a single call at a time:
    the others fail fast until it answers); any answer closes it again, a failure while
    half-open opens it for another cooldown. ``on_state(name, state)`` hears every
    transition (e.g. ``Metrics.set_breaker``). Share one between every client of a service:
    an outage is the service's, not one account's.

    A call is :meth:`before` then exactly one of :meth:`answered`, :meth:`failed` or
    :meth:`released` (no verdict: the call was refused, or never made).
    """

    def __init__(self, name: str, *, clock: Clock | None = None, failures: int = 5, cooldown: float = 30.0,
                 on_state: Callable[[str, str], None] | None = None, service: str | None = None,
                 one_trial: bool = False) -> None:
        self.name, self.service = name, service or name
        self.clock = clock or WallClock()
        self.failures, self.cooldown, self.on_state, self.one_trial = max(1, failures), cooldown, on_state, one_trial
        self.state = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self._trial_running = False

    def before(self, where: str = "") -> None:
        """Raise ``ServiceUnavailable`` instead of calling while open (a trial once cooled down)."""
        prefix = f"{where}: " if where else ""
        if self.state == "open":
            wait = self.opened_at + self.cooldown - self.clock.now()
            if wait > 0:
                raise ServiceUnavailable(f"{prefix}circuit open after {self.consecutive} failures; "
                                         f"next try in {wait:.0f}s", service=self.service)
            self._set("half_open")
        if self.state == "half_open" and self.one_trial:
            if self._trial_running:
                raise ServiceUnavailable(f"{prefix}circuit half-open, trial call in progress", service=self.service)
            self._trial_running = True

    def failed(self) -> None:
        """The call failed the way an unwell service fails."""
        self._trial_running = False
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.opened_at = self.clock.now()
            self._set("open")

    def answered(self) -> None:
        """The service answered (even with a refusal of this one call)."""
        self._trial_running = False
        self.consecutive = 0
        self._set("closed")

    def released(self) -> None:
        """The call ended without a verdict on the service's health."""
        self._trial_running = False

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(self.name, state)


@dataclass
class RetryPolicy:
    """At most ``attempts`` tries, waiting ``backoff·2^(n-1)`` seconds (capped at
    ``max_backoff``) times a jitter of one half to one between try ``n`` and the next."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.attempts = max(1, self.attempts)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + self.rng.random() / 2)

    async def call(self, fn: Callable[[], Awaitable[T]], *, clock: Clock | None = None,
                   breaker: CircuitBreaker | None = None, where: str = "", retry_on: Callable[[BaseException], bool] = lambda exc: False,
                   unwell: Callable[[BaseException], bool] = lambda exc: False) -> T:
        """``fn()`` through ``breaker``, tried again while ``retry_on(error)``, tries remain and
        the breaker is not open.

        ``unwell(error)`` says whether an error counts against the service in the breaker
        (other ``ProviderError`` answers close it); waits go through ``clock.sleep``
        (default: the wall clock).
        """

        async def attempt() -> T:
            if breaker is None:
                return await fn()
            breaker.before(where)
            try:
                result = await fn()
            except BaseException as exc:
                if unwell(exc):
                    breaker.failed()
                elif isinstance(exc, ProviderError):
                    breaker.answered()
                else:
                    breaker.released()
                raise
            breaker.answered()
            return result

        if self.attempts == 1:
            return await attempt()

        def again(exc: BaseException) -> bool:  # never while the breaker fails calls fast
            return retry_on(exc) and (breaker is None or breaker.state != "open")

        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts), retry=retry_if_exception(again),
                                 wait=self._wait, sleep=(clock or WallClock()).sleep, reraise=True)
        return await retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        return self.delay(state.attempt_number)
