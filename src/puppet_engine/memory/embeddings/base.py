"""The embedding seam: text in, L2-normalised float32 vectors out.

Every memory is stored with the vector its embedder produced, plus the
embedder's :attr:`Embedder.name` and :attr:`Embedder.dim`. Two embedders with
the same name and dimension must produce comparable vectors; anything else is
a different embedding space and the stores refuse to mix them
(:class:`EmbedderMismatch`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from puppet_engine.errors import ConfigError


class EmbedderMismatch(ConfigError):
    """Stored memories were embedded by another model or dimension than the current embedder.

    Searching them with the current embedder would compare vectors from two
    different spaces, so the store stops and says how to fix it: set
    ``EMBEDDER`` back, or run ``puppet-engine memory reindex``.
    """

    def __init__(self, agent_id: str, stored: str, current: str) -> None:
        self.agent_id = agent_id
        self.stored = stored
        self.current = current
        super().__init__(
            f"agent {agent_id!r}: its memories were embedded with {stored}, but the current "
            f"embedder is {current}; set EMBEDDER back or run "
            f"`puppet-engine memory reindex {agent_id}` to re-embed them"
        )


class Embedder(ABC):
    """Turns texts into vectors. Implementations must be safe to call concurrently."""

    #: Identifies the embedding space, e.g. ``hashing-v1`` or ``openai:text-embedding-3-small``.
    name: str
    #: Length of every vector.
    dim: int

    @abstractmethod
    async def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``: a ``(len(texts), dim)`` float32 array, each row of unit length."""

    async def embed_one(self, text: str) -> np.ndarray:
        """Embed a single text: a ``(dim,)`` float32 vector."""
        return (await self.embed([text]))[0]

    @property
    def ready(self) -> bool:
        """False while a model the embedder needs is not loaded yet (``embed`` would wait for it)."""
        return True

    @property
    def load_error(self) -> str | None:
        """Why the last load failed, or None."""
        return None

    async def ensure_loaded(self) -> None:  # noqa: B027 - optional hook, most embedders load nothing
        """Load what :meth:`embed` needs now, off the event loop (a model); ``embed`` also loads on first use."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release clients or models held by the embedder."""

    def describe(self) -> str:
        """``name (dim N)``: how the embedder is named in errors and logs."""
        return f"{self.name} (dim {self.dim})"


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
