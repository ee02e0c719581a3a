"""Stopping a background task for sure.

``task.cancel()`` followed by ``await task`` waits forever when the cancellation is lost: on
Python 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives as the awaited thing
completes (python/cpython#86296, fixed in 3.12), and a loop around such a wait then simply
goes on. An engine stop must not hang on that, so :func:`cancel_and_wait` cancels again until
the task has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RECANCEL_SECONDS = 1.0  # how long a cancelled task gets to finish before it is cancelled again


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, every: float = RECANCEL_SECONDS) -> None:
    """Cancel ``task`` and wait until it has finished, cancelling it again every ``every`` seconds
    while it runs on (its cancellation was swallowed). Its own exception, if any, is not raised;
    a cancellation of the caller is."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()  # retrieved: no "exception was never retrieved" at shutdown
