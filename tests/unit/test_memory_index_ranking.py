"""VectorIndex ranks as the reference definition: same hits, same scores bit for bit, same order.

The reference is the definition written plainly: the candidates ``argpartition`` picks, each
scored ``similarity + RankingWeights.bonus`` and sorted best first by a stable sort (equal
scores keep the candidates' order). Ties are made on purpose: duplicated vectors with equal
importance and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from puppet_engine.memory import MEMORY_KINDS, RankingWeights, VectorIndex
from puppet_engine.memory.index import IndexHit

DIM = 16
NOW = 2_000_000.0


def reference(
    vectors: np.ndarray, importance: np.ndarray, created: np.ndarray, kinds: list[str], ids: list[str],
    query: np.ndarray, k: int, weights: RankingWeights, wanted: Sequence[str] | None,
) -> list[tuple[Any, ...]]:
    similarity = vectors @ query
    eligible = len(ids)
    if wanted:
        mask = np.isin(np.array(kinds), list(wanted))
        similarity[~mask] = -np.inf
        eligible = int(mask.sum())
    n, c = len(ids), min(weights.candidates(k), eligible)
    if c == 0:
        return []
    rows = np.argpartition(similarity, n - c)[n - c:] if c < n else np.arange(n)
    scores = (similarity[rows] + weights.bonus(importance[rows], created[rows], NOW)).tolist()
    best = sorted(range(c), key=scores.__getitem__, reverse=True)[:k]
    return [
        (ids[rows[i]], scores[i], float(similarity[rows[i]]), float(importance[rows[i]]),
         float(created[rows[i]]), ("payload", ids[rows[i]]))
        for i in best
    ]


@pytest.mark.parametrize("seed", range(12))
def test_search_is_the_reference_ranking(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2500))
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    ties = seed % 2 == 0
    if ties:  # half the rows one vector: equal similarities, and equal scores too below
        vectors[rng.integers(0, n, n // 2)] = vectors[0]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    importance = rng.choice([0.2, 0.8], n) if ties else rng.uniform(0, 1, n)
    created = rng.choice([NOW - 3600, NOW + 60], n) if ties else NOW - rng.uniform(0, 60 * 86400, n)
    kinds = [MEMORY_KINDS[i] for i in rng.integers(0, 4, n)]
    ids = [f"m{i}" for i in range(n)]
    weights = RankingWeights()
    index = VectorIndex(DIM, weights)
    index.add(ids, vectors, importance, created, kinds, [("payload", i) for i in ids])
    # Deletes move rows: the reference sees the index's own row order.
    index.remove(ids[::5])
    order = index._ids
    at = {memory_id: i for i, memory_id in enumerate(ids)}
    rows = [at[memory_id] for memory_id in order]
    for trial in range(6):
        query = vectors[rng.integers(0, n)] if trial % 2 else rng.normal(size=DIM).astype(np.float32)
        k = int(rng.integers(1, 25))
        wanted = None if trial < 3 else list(MEMORY_KINDS[:2])
        expected = reference(vectors[rows], importance[rows], created[rows], [kinds[r] for r in rows],
                             order, query, k, weights, wanted)
        hits = index.search(query, k, now=NOW, kinds=wanted)
        assert [tuple(hit) for hit in hits] == expected
        assert all(isinstance(hit, IndexHit) for hit in hits)
        built = index.ranked(query, k, lambda *fields: fields, now=NOW, kinds=wanted)
        assert built == expected


def test_ranked_builds_nothing_for_an_empty_index_or_no_eligible_kind() -> None:
    index = VectorIndex(DIM, RankingWeights())
    query = np.ones(DIM, dtype=np.float32) / 4
    assert index.ranked(query, 5, lambda *fields: fields, now=NOW) == []
    index.add(["a"], query[None, :], [0.5], [NOW], ["post"])
    assert index.ranked(query, 5, lambda *fields: fields, now=NOW, kinds=["trade"]) == []
    assert index.ranked(query, 5, lambda *fields: fields, now=NOW) == [("a", pytest.approx(1.175), 1.0, 0.5, NOW, None)]
