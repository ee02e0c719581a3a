"""Starting thousands of agents at once: the cyclic garbage collector spaced out meanwhile.

Start-up builds long-lived objects by the hundred thousand (runtimes, clients, configs,
schedules). CPython's collector runs a young-generation pass every 700 net allocations and
older passes every few of those, each scanning what survived: at 10,000 agents that is
about a third of the start-up's CPU, spent finding nothing to free. While many agents
start, the first generation is larger (fewer, not skipped, collections); the thresholds
are restored when the last start-up in the process ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

MANY = 200  # agents from which a start-up spaces collections out
YOUNG_THRESHOLD = 50_000  # first-generation threshold meanwhile (CPython's default: 700)

_depth = 0  # start-ups running now (they may overlap: an agent file added during another)
_saved: tuple[int, ...] = ()


@contextmanager
def collections_spaced(agents: int) -> Iterator[None]:
    """Within: the first GC generation holds :data:`YOUNG_THRESHOLD` objects when ``agents``
    is at least :data:`MANY` (or another start-up of many is running); as before after."""
    global _depth, _saved
    if agents < MANY:
        yield
        return
    if _depth == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), *_saved[1:])
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.set_threshold(*_saved)
