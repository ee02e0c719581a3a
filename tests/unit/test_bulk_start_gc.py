"""While many agents start, the cyclic GC's first generation is larger; as before afterwards."""

from __future__ import annotations

import gc

import pytest

from puppet_engine.agents.bulk import MANY, YOUNG_THRESHOLD, collections_spaced


@pytest.fixture(autouse=True)
def default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_a_start_of_many_spaces_collections_and_restores_the_thresholds() -> None:
    with collections_spaced(MANY):
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.isenabled()  # spaced out, never off
    assert gc.get_threshold() == (700, 10, 10)


def test_a_few_agents_change_nothing() -> None:
    with collections_spaced(MANY - 1):
        assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_start_ups_restore_once_the_last_ends_even_on_error() -> None:
    outer = collections_spaced(10_000)
    outer.__enter__()
    with pytest.raises(RuntimeError), collections_spaced(MANY):
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        raise RuntimeError("a start-up that failed")
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the other one still runs
    outer.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)
