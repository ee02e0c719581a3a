"""OpenAI's embeddings endpoint (or any OpenAI-compatible one, such as the sandbox's).

Uses the official SDK over an injectable ``httpx2.AsyncClient``. SDK errors are
translated here, once, into :mod:`puppet_engine.errors`.
"""

from __future__ import annotations

from typing import Any

import httpx2
import numpy as np

from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ContentRejected,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.memory.embeddings.base import Embedder, normalize_rows
from puppet_engine.observability.upstream import upstream

SERVICE = "openai-embeddings"

# Known output sizes; any other model needs ``dim`` (or ``dimensions``) passed in.
MODEL_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder(Embedder):
    """Embeds through ``POST {base_url}/embeddings``, ``batch_size`` texts per request.

    ``dimensions`` asks text-embedding-3 models for shorter vectors (it is part of
    the embedder's name, since a shortened vector is another embedding space).
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "text-embedding-3-small",
        base_url: str = "https://api.openai.com/v1",
        dimensions: int | None = None,
        dim: int | None = None,
        batch_size: int = 256,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 2,
    ) -> None:
        import openai

        self.model = model
        self.dimensions = dimensions
        resolved = dimensions or dim or MODEL_DIMS.get(model)
        if resolved is None:
            raise ValueError(f"OpenAIEmbedder: unknown output size of model {model!r}; pass dim=")
        self.dim = resolved
        self.name = f"openai:{model}" + (f"@{dimensions}" if dimensions else "")
        self.batch_size = batch_size
        self._owns_client = http_client is None
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, http_client=http_client, max_retries=max_retries
        )

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEmbedder(model={self.model!r}, dim={self.dim})"

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            await self._batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return normalize_rows(np.vstack(parts))

    async def _batch(self, texts: list[str]) -> np.ndarray:
        import openai

        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.dimensions else {}
        try:
            with upstream("llm"):
                response = await self._client.embeddings.create(model=self.model, input=texts, **extra)
        except openai.APIStatusError as exc:
            raise _translate_status(exc) from exc
        except openai.APITimeoutError as exc:
            raise ServiceUnavailable("request timed out", service=SERVICE) from exc
        except openai.APIConnectionError as exc:
            raise ServiceUnavailable(
                f"cannot connect: {exc.__class__.__name__}", service=SERVICE
            ) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise BadResponse(f"unexpected embeddings response: {exc}", service=SERVICE) from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise BadResponse(
                f"asked for {len(texts)} embeddings, got {len(rows)}", service=SERVICE
            )
        matrix = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if matrix.shape[1] != self.dim:
            raise BadResponse(
                f"model {self.model} returned vectors of size {matrix.shape[1]}, expected {self.dim}",
                service=SERVICE,
            )
        return matrix

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()


def _translate_status(exc: Any) -> ProviderError:
    status = exc.status_code
    message = _message(exc)
    if status == 429:
        headers = exc.response.headers
        retry_after = _retry_after(headers.get("retry-after-ms"), headers.get("retry-after"))
        return RateLimited(message, service=SERVICE, retry_after=retry_after)
    if status in (401, 403):
        # The body quotes part of the key; it stays out of the message.
        return AuthError(f"HTTP {status}: credentials rejected", service=SERVICE, status=status)
    if status >= 500 or status == 408:
        return ServiceUnavailable(message, service=SERVICE, status=status)
    if status in (400, 413, 422):
        return ContentRejected(message, service=SERVICE, status=status)
    return ProviderError(message, service=SERVICE, status=status)


def _message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"HTTP {exc.status_code}: {body['message']}"
    return f"HTTP {exc.status_code}"


def _retry_after(ms: str | None, seconds: str | None) -> float:
    for value, scale in ((ms, 0.001), (seconds, 1.0)):
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return 20.0
