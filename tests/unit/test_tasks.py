"""cancel_and_wait stops a task even when its first cancellation is swallowed (as Python 3.11's
asyncio.wait_for can do), and a stop that waited on ``cancel(); await task`` would hang."""

from __future__ import annotations

import asyncio

import pytest

from puppet_engine.tasks import cancel_and_wait


async def _swallows(times: int, cancels: list[int], give_up: asyncio.Event | None = None) -> None:
    """A loop that loses ``times`` cancellations (all of them until ``give_up`` is set), the way
    a swallowed one looks from outside."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append(1)
            if len(cancels) > times or (give_up is not None and give_up.is_set()):
                raise


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    cancels: list[int] = []
    task = asyncio.create_task(_swallows(2, cancels))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, every=0.01), 5)
    assert task.cancelled() and len(cancels) == 3


async def test_the_plain_way_waits_for_ever_on_such_a_task() -> None:
    cancels: list[int] = []
    task = asyncio.create_task(_swallows(1, cancels))
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.1)
    assert not done  # what engine.stop() used to wait on, for ever
    await cancel_and_wait(task, every=0.01)
    assert task.cancelled()


async def test_finished_failed_and_missing_tasks() -> None:
    await cancel_and_wait(None)

    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(failed)  # its own error is not the stopper's
    assert isinstance(failed.exception(), RuntimeError)

    async def quick() -> int:
        return 1

    done = asyncio.create_task(quick())
    await done
    await cancel_and_wait(done)
    assert done.result() == 1


async def test_the_callers_own_cancellation_goes_through() -> None:
    cancels: list[int] = []
    give_up = asyncio.Event()
    stubborn = asyncio.create_task(_swallows(10**6, cancels, give_up))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(stubborn, every=0.01))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert cancels  # it was being cancelled again and again meanwhile
    give_up.set()
    await cancel_and_wait(stubborn)
    assert stubborn.cancelled()
