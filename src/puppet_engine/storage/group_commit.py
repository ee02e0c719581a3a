"""Group commit: writes that arrive together share one transaction.

Many tasks finish at about the same moment (events of different agents, sends of
their actions). Committing each on its own costs a transaction apiece; here the
first caller starts a committer task, everyone who arrives while it works joins the
next transaction, and each caller gets its own result back once its write is durable.
One bad item cannot fail its neighbours: a failed group is retried one item at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database

T = TypeVar("T")
R = TypeVar("R")

WriteMany = Callable[[AsyncConnection, list[T]], Awaitable[list[R]]]


class GroupCommitter(Generic[T, R]):
    """``await committer.write(item)`` → ``write_many(conn, [item, …])[i]``, committed with its group."""

    def __init__(self, db: Database, write_many: WriteMany[T, R]) -> None:
        self.db = db
        self.write_many = write_many
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.groups = 0  # transactions committed (for tests and benchmarks)

    async def write(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if self._committer is not None and self._committer.get_loop() is not loop:
            # Used from a new event loop (the old one is gone, and with it what waited there).
            self._committer, self._waiting = None, []
        done: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups(), name="group-commit")
        return await done

    async def _commit_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                async with self.db.transaction() as conn:
                    results = await self.write_many(conn, [item for item, _ in group])
                self.groups += 1
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][1], exc=exc)
                    continue
                for item, done in group:  # one bad item must not fail its neighbours
                    try:
                        async with self.db.transaction() as conn:
                            [result] = await self.write_many(conn, [item])
                        self.groups += 1
                    except Exception as one:
                        _settle(done, exc=one)
                    else:
                        _settle(done, result)
            else:
                for (_, done), result in zip(group, results, strict=True):
                    _settle(done, result)


def _settle(done: asyncio.Future[R], result: R | None = None, *, exc: BaseException | None = None) -> None:
    if done.done():  # its caller was cancelled meanwhile
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(result)  # type: ignore[arg-type]
