"""A dependency-free embedder: signed feature hashing of words, word pairs and character trigrams.

It knows nothing about meaning, only about shared words and word pieces, so it
finds lexical matches ("SOL price" finds memories about the SOL price) and is
fully deterministic across processes and machines. It is the offline default
when sentence-transformers is not installed.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache

import numpy as np

from puppet_engine.memory.embeddings.base import Embedder, normalize_rows

_WORD = re.compile(r"[\w$#@]+", re.UNICODE)

# Words that say little about what a memory is about; they still count inside bigrams.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "had",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)

_UNIGRAM_WEIGHT = 1.0
_BIGRAM_WEIGHT = 0.7
_TRIGRAM_WEIGHT = 0.35


class HashingEmbedder(Embedder):
    """Hashes features into ``dim`` buckets with a sign bit, then L2-normalises.

    Features: lower-cased word unigrams (minus a few stop words), adjacent word
    bigrams, and character trigrams of each word padded with spaces (so
    ``trading`` and ``trade`` share ``" tr"``, ``"tra"``, ``"rad"``).
    """

    name = "hashing-v1"

    def __init__(self, dim: int = 384) -> None:
        if dim < 16:
            raise ValueError("HashingEmbedder: dim must be at least 16")
        self.dim = dim

    async def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_sync(texts)

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """The same as :meth:`embed`, without an event loop (benchmarks, scripts)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            indices, values = self._features(text)
            if indices:
                np.add.at(
                    out[row],
                    np.asarray(indices, dtype=np.int64),
                    np.asarray(values, dtype=np.float32),
                )
        return normalize_rows(out)

    def _features(self, text: str) -> tuple[list[int], list[float]]:
        words = _WORD.findall(text.lower())
        indices: list[int] = []
        values: list[float] = []
        dim = self.dim
        for i, word in enumerate(words):
            if word not in _STOPWORDS:
                word_indices, word_values = _word_features(word, dim)
                indices += word_indices
                values += word_values
            if i + 1 < len(words):
                index, value = _feature(f"b:{word} {words[i + 1]}", _BIGRAM_WEIGHT, dim)
                indices.append(index)
                values.append(value)
        return indices, values


def _feature(feature: str, weight: float, dim: int) -> tuple[int, float]:
    h = zlib.crc32(feature.encode("utf-8"))
    return h % dim, weight if h & 0x80000000 else -weight


@lru_cache(maxsize=1 << 15)
def _word_features(word: str, dim: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """A word's unigram, then its character trigrams (words recur: each is hashed once)."""
    padded = f" {word} "
    found = [_feature("w:" + word, _UNIGRAM_WEIGHT, dim),
             *(_feature("c:" + padded[j: j + 3], _TRIGRAM_WEIGHT, dim) for j in range(len(padded) - 2))]
    return tuple(i for i, _ in found), tuple(v for _, v in found)
