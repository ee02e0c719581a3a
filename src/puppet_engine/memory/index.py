"""An exact in-memory vector index for one agent: a growable numpy matrix plus per-row fields.

Search is one matrix-vector product and an ``argpartition`` for the most
similar candidates, which the ranking bonus (importance, recency) then
re-orders: exact, and as fast as the matrix product allows. Adds append rows (amortised growth); deletes move the
last row into the hole, so neither ever copies the whole matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from puppet_engine.memory.base import MEMORY_KINDS, RankingWeights

_KIND_CODE = {kind: code for code, kind in enumerate(MEMORY_KINDS)}


class IndexHit(NamedTuple):  # a tuple: ten of them per search, built in a fraction of a dataclass's time
    id: str
    score: float
    similarity: float


class VectorIndex:
    """Unit-length float32 vectors of one agent's memories, with importance, time and kind."""

    # Starts small and doubles: one index per agent is kept, and 10,000 agents' worth of
    # 256-row matrices (384 floats each) would be 1.9 GiB before anyone remembered much.
    def __init__(self, dim: int, weights: RankingWeights, capacity: int = 16) -> None:
        self.dim = dim
        self.weights = weights
        capacity = max(16, capacity)
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        # float64, as stored: the ranking then adds exactly the importance the database holds.
        self._importance = np.zeros(capacity, dtype=np.float64)
        self._created = np.zeros(capacity, dtype=np.float64)
        self._kinds = np.zeros(capacity, dtype=np.int8)
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, memory_id: object) -> bool:
        return memory_id in self._pos

    def _reserve(self, extra: int) -> None:
        need = len(self._ids) + extra
        capacity = self._vectors.shape[0]
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        n = len(self._ids)
        for name in ("_vectors", "_importance", "_created", "_kinds"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        importance: Sequence[float],
        created_at: Sequence[float],
        kinds: Sequence[str],
    ) -> None:
        """Append rows; ids already present are updated in place instead."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        fresh = [i for i, memory_id in enumerate(ids) if memory_id not in self._pos]
        for i, memory_id in enumerate(ids):
            if memory_id in self._pos:
                self.update(
                    memory_id,
                    vector=vectors[i],
                    importance=importance[i],
                    kind=kinds[i],
                    created_at=created_at[i],
                )
        if not fresh:
            return
        self._reserve(len(fresh))
        start = len(self._ids)
        stop = start + len(fresh)
        self._vectors[start:stop] = vectors[fresh]
        self._importance[start:stop] = [importance[i] for i in fresh]
        self._created[start:stop] = [created_at[i] for i in fresh]
        self._kinds[start:stop] = [_KIND_CODE[kinds[i]] for i in fresh]
        for offset, i in enumerate(fresh):
            self._pos[ids[i]] = start + offset
            self._ids.append(ids[i])

    def update(
        self,
        memory_id: str,
        *,
        vector: np.ndarray | None = None,
        importance: float | None = None,
        kind: str | None = None,
        created_at: float | None = None,
    ) -> None:
        row = self._pos.get(memory_id)
        if row is None:
            return
        if vector is not None:
            self._vectors[row] = vector
        if importance is not None:
            self._importance[row] = importance
        if kind is not None:
            self._kinds[row] = _KIND_CODE[kind]
        if created_at is not None:
            self._created[row] = created_at

    def remove(self, ids: Sequence[str]) -> None:
        """Drop rows: the last row moves into each hole."""
        for memory_id in ids:
            row = self._pos.pop(memory_id, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            if row != last:
                moved = self._ids[last]
                self._vectors[row] = self._vectors[last]
                self._importance[row] = self._importance[last]
                self._created[row] = self._created[last]
                self._kinds[row] = self._kinds[last]
                self._ids[row] = moved
                self._pos[moved] = row
            self._ids.pop()

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        now: float,
        kinds: Sequence[str] | None = None,
    ) -> list[IndexHit]:
        """The best ``k``: the most similar candidates (exact), re-ranked with the bonus."""
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        similarity = self._vectors[:n] @ np.asarray(query, dtype=np.float32).reshape(self.dim)
        n_eligible = n
        if kinds:
            mask = np.isin(self._kinds[:n], [_KIND_CODE[kind] for kind in kinds])
            similarity[~mask] = -np.inf
            n_eligible = int(mask.sum())
        c = min(self.weights.candidates(k), n_eligible)
        if c == 0:
            return []
        # The c most similar sit after position n - c; with c <= the eligible rows, none is -inf.
        rows = np.argpartition(similarity, n - c)[n - c:] if c < n else np.arange(n)
        near = similarity[rows]
        scores = near + self.weights.bonus(self._importance[rows], self._created[rows], now)
        best = np.argsort(-scores, kind="stable")[:k]
        # Python floats in one conversion each, not a numpy scalar per hit.
        ids = self._ids
        return [
            IndexHit(ids[row], score, sim)
            for row, score, sim in zip(
                rows[best].tolist(), scores[best].tolist(), near[best].tolist(), strict=True
            )
        ]
