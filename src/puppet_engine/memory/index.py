"""An exact in-memory vector index for one agent: a growable numpy matrix plus per-row fields.

Search is one matrix-vector product and an ``argpartition`` for the most
similar candidates, which the ranking bonus (importance, recency) then
re-orders: exact, and as fast as the matrix product allows. Adds append rows
(amortised growth); deletes move the last row into the hole, so neither ever
copies the whole matrix.

After the product has streamed the whole matrix through the CPU caches, what a
search touches next is a cache miss each; the layout keeps those few: a
candidate's importance and time sit side by side (one ``(n, 2)`` array), and a
row's payload (what the store keeps of it) hangs off the row, found without a
lookup by id. Only the best ``k`` become Python objects, each made at once into what
the caller returns (:meth:`VectorIndex.ranked`): nothing is built to be unpacked again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

from puppet_engine.memory.base import MEMORY_KINDS, RankingWeights

_KIND_CODE = {kind: code for code, kind in enumerate(MEMORY_KINDS)}
_IMPORTANCE, _CREATED = 0, 1  # the columns of VectorIndex._fields
T = TypeVar("T")


class IndexHit(NamedTuple):  # what search returns: a tuple, built in a fraction of a dataclass's time
    id: str
    score: float
    similarity: float
    importance: float
    created_at: float
    payload: Any  # what the caller attached to the row (None when nothing)


class VectorIndex:
    """Unit-length float32 vectors of one agent's memories, with importance, time, kind and a payload."""

    # Starts small and doubles: one index per agent is kept, and 10,000 agents' worth of
    # 256-row matrices (384 floats each) would be 1.9 GiB before anyone remembered much.
    def __init__(self, dim: int, weights: RankingWeights, capacity: int = 16) -> None:
        self.dim = dim
        self.weights = weights
        capacity = max(16, capacity)
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        # Importance and created_at, float64 as stored: the ranking adds exactly what the database holds.
        self._fields = np.zeros((capacity, 2), dtype=np.float64)
        self._kinds = np.zeros(capacity, dtype=np.int8)
        self._ids: list[str] = []
        self._payloads: list[Any] = []
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
        for name in ("_vectors", "_fields", "_kinds"):
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
        payloads: Sequence[Any] | None = None,
    ) -> None:
        """Append rows; ids already present are updated in place instead."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        payloads = payloads if payloads is not None else [None] * len(ids)
        fresh = [i for i, memory_id in enumerate(ids) if memory_id not in self._pos]
        for i, memory_id in enumerate(ids):
            if memory_id in self._pos:
                self.update(memory_id, vector=vectors[i], importance=importance[i], kind=kinds[i],
                            created_at=created_at[i], payload=payloads[i])
        if not fresh:
            return
        self._reserve(len(fresh))
        start = len(self._ids)
        stop = start + len(fresh)
        self._vectors[start:stop] = vectors[fresh]
        self._fields[start:stop, _IMPORTANCE] = [importance[i] for i in fresh]
        self._fields[start:stop, _CREATED] = [created_at[i] for i in fresh]
        self._kinds[start:stop] = [_KIND_CODE[kinds[i]] for i in fresh]
        for offset, i in enumerate(fresh):
            self._pos[ids[i]] = start + offset
            self._ids.append(ids[i])
            self._payloads.append(payloads[i])

    def update(
        self,
        memory_id: str,
        *,
        vector: np.ndarray | None = None,
        importance: float | None = None,
        kind: str | None = None,
        created_at: float | None = None,
        payload: Any = None,
    ) -> None:
        """Change what is given of one row (a None ``payload`` keeps the row's)."""
        row = self._pos.get(memory_id)
        if row is None:
            return
        if vector is not None:
            self._vectors[row] = vector
        if importance is not None:
            self._fields[row, _IMPORTANCE] = importance
        if created_at is not None:
            self._fields[row, _CREATED] = created_at
        if kind is not None:
            self._kinds[row] = _KIND_CODE[kind]
        if payload is not None:
            self._payloads[row] = payload

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
                self._fields[row] = self._fields[last]
                self._kinds[row] = self._kinds[last]
                self._ids[row] = moved
                self._payloads[row] = self._payloads[last]
                self._pos[moved] = row
            self._ids.pop()
            self._payloads.pop()

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        now: float,
        kinds: Sequence[str] | None = None,
    ) -> list[IndexHit]:
        """The best ``k``: the most similar candidates (exact), re-ranked with the bonus."""
        return self.ranked(query, k, IndexHit, now=now, kinds=kinds)

    def ranked(
        self,
        query: np.ndarray,
        k: int,
        build: Callable[[str, float, float, float, float, Any], T],
        *,
        now: float,
        kinds: Sequence[str] | None = None,
    ) -> list[T]:
        """:meth:`search`, each hit made by ``build(id, score, similarity, importance, created_at,
        payload)``: a caller that wants something else than an :class:`IndexHit` builds it at once."""
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        if query.dtype != np.float32 or query.shape != (self.dim,):
            query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        similarity = self._vectors[:n] @ query
        n_eligible = n
        if kinds:
            mask = np.isin(self._kinds[:n], [_KIND_CODE[kind] for kind in kinds])
            similarity[~mask] = -np.inf
            n_eligible = int(mask.sum())
        c = min(self.weights.candidates(k), n_eligible)
        if c == 0:
            return []
        # The c most similar sit after position n - c; with c <= the eligible rows, none is -inf.
        rows = similarity.argpartition(n - c)[n - c:] if c < n else np.arange(n)
        near = similarity[rows]
        fields = self._fields.take(rows, axis=0)
        scores = self.weights.bonus(fields[:, _IMPORTANCE], fields[:, _CREATED], now)
        scores += near  # float32 widened exactly: the same sums as near + bonus
        # Best first, and stable: equal scores keep the candidates' order. (Array methods, not the
        # np.* functions: those add a microsecond of dispatch each.)
        best = (-scores).argsort(kind="stable")[:k]
        importances, times = fields.take(best, axis=0).T.tolist()
        ids, payloads = self._ids, self._payloads
        return [
            build(ids[row], score, similar, importance, created_at, payloads[row])
            for row, score, similar, importance, created_at in zip(
                rows[best].tolist(), scores[best].tolist(), near[best].tolist(), importances, times, strict=True
            )
        ]
