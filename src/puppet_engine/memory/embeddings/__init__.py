"""Embedders: text to vectors. Pick one with :func:`build_embedder` (``EMBEDDER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2

from puppet_engine.errors import ConfigError
from puppet_engine.memory.embeddings.base import Embedder, EmbedderMismatch, normalize_rows
from puppet_engine.memory.embeddings.hashing import HashingEmbedder
from puppet_engine.memory.embeddings.local import LocalEmbedder, local_embeddings_available

if TYPE_CHECKING:
    from puppet_engine.settings import Settings

__all__ = [
    "Embedder",
    "EmbedderMismatch",
    "HashingEmbedder",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
    "local_embeddings_available",
    "normalize_rows",
]


def build_embedder(
    settings: Settings,
    *,
    http_client: httpx2.AsyncClient | None = None,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
) -> Embedder:
    """The embedder ``EMBEDDER`` names.

    ``auto`` picks the local MiniLM model when sentence-transformers and the
    bundled model are installed, else the hashing embedder (never the network).
    ``openai`` uses ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` and
    ``OPENAI_EMBEDDING_MODEL``; the overrides let the engine point it at the sandbox.
    """
    choice = settings.embedder
    if choice == "auto":
        choice = "local" if local_embeddings_available() else "hashing"
    if choice == "hashing":
        return HashingEmbedder()
    if choice == "local":
        return LocalEmbedder()
    if choice == "openai":
        from puppet_engine.memory.embeddings.openai import OpenAIEmbedder

        key = openai_api_key or (
            settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        )
        if not key:
            raise ConfigError("EMBEDDER=openai needs OPENAI_API_KEY")
        return OpenAIEmbedder(
            api_key=key,
            model=settings.openai_embedding_model,
            base_url=openai_base_url or settings.openai_base_url,
            http_client=http_client,
        )
    raise ConfigError(f"EMBEDDER: unknown embedder {choice!r}; use auto, hashing, local or openai")


def __getattr__(name: str) -> object:
    # The openai SDK is imported only when its embedder is used.
    if name == "OpenAIEmbedder":
        from puppet_engine.memory.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder
    raise AttributeError(name)
