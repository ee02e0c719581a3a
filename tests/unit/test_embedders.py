"""Embedders: the hashing one's guarantees, the OpenAI one over its wire format, selection from settings."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx2
import numpy as np
import pytest

from puppet_engine.errors import (
    AuthError,
    ConfigError,
    ContentRejected,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.memory.embeddings import (
    EmbedderMismatch,
    HashingEmbedder,
    LocalEmbedder,
    build_embedder,
    local_embeddings_available,
)
from puppet_engine.memory.embeddings.openai import OpenAIEmbedder
from puppet_engine.settings import Settings

API_KEY = "sk-test-0123456789abcdef"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# ---------------------------------------------------------------------- hashing


async def test_hashing_embedder_is_deterministic_normalised_and_sized() -> None:
    embedder = HashingEmbedder()
    texts = ["SOL is pumping today", "", "The validator went down at noon"]
    first = await embedder.embed(texts)
    second = await HashingEmbedder().embed(texts)
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert np.allclose(np.linalg.norm(first[[0, 2]], axis=1), 1.0, atol=1e-6)
    assert not first[1].any()  # empty text: a zero vector, similar to nothing
    assert (await HashingEmbedder(dim=64).embed(["x y"])).shape == (1, 64)
    assert (await embedder.embed([])).shape == (0, 384)


def test_hashing_embedder_vectors_stay_those_already_stored() -> None:
    """Vectors kept in databases were made by earlier versions: the same texts still give the
    very same bytes (each word's features are hashed once and cached since)."""
    texts = ["I posted about the SOL price today and people liked it a lot, what a day for trading #solana @ben",
             "gm", "", "The the THE a an", "Ünïcödé wörds, emoji 🌱 and $SOL #tags @someone... repeated repeated repeated",
             "trade trading traded trader"]
    expected = {16: "5f27925ecb5f5228de73a75311cda1bdea88cde8442c3338dd9aa48f17074713",
                384: "1c7ec23a3ba1d022c93b1798d93926bd225faa41705db91d07b91ffc16f96264"}
    for dim, digest in expected.items():
        for _ in range(2):  # the second time from the cache
            assert hashlib.sha256(HashingEmbedder(dim).embed_sync(texts).tobytes()).hexdigest() == digest


async def test_hashing_embedder_scores_shared_words_and_word_pieces() -> None:
    embedder = HashingEmbedder()
    query, same_words, same_stem, unrelated = await embedder.embed(
        [
            "trading memecoins on Solana",
            "I was trading memecoins on Solana all night",
            "my trades of memecoin tokens",
            "the weather in Lisbon is lovely",
        ]
    )
    assert cosine(query, same_words) > cosine(query, same_stem) > cosine(query, unrelated)
    assert cosine(query, same_words) > 0.6 and abs(cosine(query, unrelated)) < 0.2


# ---------------------------------------------------------------------- OpenAI over its wire format


def embeddings_server(calls: list[dict], *, status: int = 200, headers: dict | None = None):
    """An OpenAI-compatible /v1/embeddings endpoint: deterministic vectors, base64 or float."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/embeddings"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        body = json.loads(request.content)
        calls.append(body)
        if status != 200:
            error = {
                "message": f"Incorrect API key provided: {API_KEY[:6]}***",
                "type": "invalid_request_error",
            }
            return httpx2.Response(status, json={"error": error}, headers=headers or {})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = body.get("dimensions", 8)
        data = []
        for i, text in enumerate(inputs):
            vec = np.arange(1, dim + 1, dtype=np.float32) * (len(text) + 1)
            encoded = (
                base64.b64encode(vec.astype("<f4").tobytes()).decode()
                if body.get("encoding_format") == "base64"
                else vec.tolist()
            )
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return httpx2.Response(
            200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    return handler


def openai_embedder(handler, **kwargs) -> OpenAIEmbedder:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return OpenAIEmbedder(
        api_key=API_KEY,
        model="test-embed",
        dim=8,
        base_url="http://emulator/v1",
        http_client=client,
        max_retries=0,
        **kwargs,
    )


async def test_openai_embedder_batches_and_normalises() -> None:
    calls: list[dict] = []
    embedder = openai_embedder(embeddings_server(calls), batch_size=2)
    vectors = await embedder.embed(["a", "bb", "ccc"])
    assert vectors.shape == (3, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert [len(c["input"]) for c in calls] == [2, 1]
    assert embedder.name == "openai:test-embed" and embedder.dim == 8
    assert API_KEY not in repr(embedder)


async def test_openai_embedder_translates_errors_without_leaking_the_key() -> None:
    with pytest.raises(AuthError) as caught:
        await openai_embedder(embeddings_server([], status=401)).embed(["x"])
    assert API_KEY[:6] not in str(caught.value) and caught.value.service == "openai-embeddings"
    with pytest.raises(RateLimited) as limited:
        await openai_embedder(
            embeddings_server([], status=429, headers={"retry-after-ms": "1500"})
        ).embed(["x"])
    assert limited.value.retry_after == pytest.approx(1.5)
    with pytest.raises(ServiceUnavailable):
        await openai_embedder(embeddings_server([], status=503)).embed(["x"])
    with pytest.raises(ContentRejected):
        await openai_embedder(embeddings_server([], status=400)).embed(["x"])

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(ServiceUnavailable, match="cannot connect"):
        await openai_embedder(refuse).embed(["x"])


async def test_openai_embedder_asks_for_shortened_vectors() -> None:
    calls: list[dict] = []
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(embeddings_server(calls)))
    embedder = OpenAIEmbedder(
        api_key=API_KEY,
        model="text-embedding-3-small",
        dimensions=16,
        base_url="http://emulator/v1",
        http_client=client,
        max_retries=0,
    )
    assert (await embedder.embed(["hello"])).shape == (1, 16)
    assert calls[0]["dimensions"] == 16 and embedder.name == "openai:text-embedding-3-small@16"


# ---------------------------------------------------------------------- selection and errors


def test_build_embedder_follows_the_setting() -> None:
    assert isinstance(build_embedder(Settings(embedder="hashing", _env_file=None)), HashingEmbedder)
    auto = build_embedder(Settings(embedder="auto", _env_file=None))
    assert isinstance(auto, LocalEmbedder if local_embeddings_available() else HashingEmbedder)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_embedder(Settings(embedder="openai", openai_api_key=None, _env_file=None))
    openai = build_embedder(
        Settings(
            embedder="openai",
            openai_api_key=API_KEY,
            openai_embedding_model="text-embedding-3-large",
            _env_file=None,
        )
    )
    assert isinstance(openai, OpenAIEmbedder) and openai.dim == 3072


def test_mismatch_error_names_agent_stored_and_current_embedders() -> None:
    err = EmbedderMismatch("coby", "hashing-v1 (dim 384)", "local:all-MiniLM-L6-v2 (dim 384)")
    assert isinstance(err, ConfigError)
    text = str(err)
    assert "'coby'" in text and "hashing-v1 (dim 384)" in text and "local:all-MiniLM-L6-v2" in text
    assert "reindex" in text


async def test_local_embedder_puts_similar_meanings_close(local_embedder) -> None:
    assert local_embedder.name == "local:all-MiniLM-L6-v2" and local_embedder.dim == 384
    vectors = await local_embedder.embed(
        [
            "The cat sat on the mat",
            "A kitten was resting on the rug",
            "Bitcoin fell ten percent today",
        ]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    again = await local_embedder.embed_one("The cat sat on the mat")
    assert np.allclose(again, vectors[0], atol=1e-5)


async def test_openai_embedder_against_the_sandbox_llm_api() -> None:
    from puppet_engine.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app)) as http:
        embedder = OpenAIEmbedder(
            api_key="sk-sandbox",
            base_url="http://sandbox/openai/v1",
            http_client=http,
            max_retries=0,
        )
        vectors = await embedder.embed(["SOL is pumping", "SOL is pumping today", "rainy Lisbon"])
        assert vectors.shape == (3, 1536) and embedder.name == "openai:text-embedding-3-small"
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
        wrong = OpenAIEmbedder(
            api_key="sk-wrong-key-123456",
            base_url="http://sandbox/openai/v1",
            http_client=http,
            max_retries=0,
        )
        with pytest.raises(AuthError) as caught:
            await wrong.embed(["x"])
        assert "sk-wrong" not in str(caught.value)
