"""Keeping the history for ``HISTORY_RETENTION_DAYS``: the pruning job.

Facts older than the cut are folded into one ``baseline`` fact per agent at the cut (what the
agent was then), then deleted, in one transaction per agent: the projection can still be
rebuilt, and the state at any moment after the cut still answered. The recordings replay reads
(LLM calls and reads, ``storage.repos.recordings``) go under the same limit; more can be added
with :func:`register_pruner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from puppet_engine.clock import Clock
from puppet_engine.history.projection import Projection, fold
from puppet_engine.storage import Database
from puppet_engine.storage.repos import facts as fact_rows
from puppet_engine.storage.repos.recordings import prune_recordings

log = structlog.get_logger("puppet_engine.history")

DAY = 86400.0
PRUNE_EVERY_SECONDS = 3600.0  # how often the job looks (engine clock)

Pruner = Callable[[Database, float], Awaitable[int]]
"""``pruner(db, before)`` deletes what it keeps from before ``before``; returns how many rows."""

_PRUNERS: dict[str, Pruner] = {}


def register_pruner(name: str, pruner: Pruner) -> None:
    """Have the retention job prune more history (e.g. ``"recordings"``) under the same limit."""
    _PRUNERS[name] = pruner


def unregister_pruner(name: str) -> None:
    """Stop pruning what :func:`register_pruner` registered under ``name``."""
    _PRUNERS.pop(name, None)


async def prune_facts(db: Database, before: float) -> int:
    """Fold each agent's facts older than ``before`` into a baseline at ``before``; delete them."""
    removed = 0
    for agent_id in await fact_rows.agent_ids(db, before=before):
        async with db.transaction() as conn:
            old = await fact_rows.read(conn, agent_id, until=before)
            old = [f for f in old if f["at"] < before]
            if not old or (len(old) == 1 and old[0]["kind"] == "baseline"):
                continue  # nothing to fold: a baseline alone stays as it is
            projection = fold(old, Projection())
            removed += await fact_rows.delete_before(conn, agent_id, before)
            await fact_rows.insert(conn, [fact_rows.fact(agent_id, "baseline", projection.baseline(), before)])
    return removed


async def prune_history(db: Database, now: float, retention_days: float) -> dict[str, int]:
    """Delete history older than ``retention_days`` before ``now``: facts, recordings, then every
    registered pruner's rows. Returns the rows removed per kind (``facts``, ``recordings``, and each
    pruner's name)."""
    before = now - retention_days * DAY
    removed = {"facts": await prune_facts(db, before), "recordings": await prune_recordings(db, before)}
    for name, pruner in _PRUNERS.items():
        removed[name] = await pruner(db, before)
    if any(removed.values()):
        log.info("history_pruned", before=before, **removed)
    return removed


async def retention_loop(db: Database, clock: Clock, retention_days: float,
                         every: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune now and then every ``every`` seconds of the engine clock, until cancelled."""
    while True:
        try:
            await prune_history(db, clock.now(), retention_days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("history_prune_failed")
        await clock.sleep(every)
