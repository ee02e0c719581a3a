"""The sandbox LLM API on a loopback port, driven by the official openai SDK and by our providers."""

from __future__ import annotations

import base64
import json

import httpx2
import numpy as np
import openai
import pytest
from pydantic import BaseModel

from puppet_engine.content import PromptContext, build_messages, generate_validated
from puppet_engine.errors import AuthError, ContentRejected, RateLimited, ServiceUnavailable
from puppet_engine.llm.base import ChatMessage, CompletionRequest
from puppet_engine.llm.grok import GrokProvider
from puppet_engine.llm.openai import OpenAIProvider
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer

KEY = "sk-sandbox"


@pytest.fixture
async def server():
    srv = BackgroundServer(Sandbox(SandboxConfig(openai_key=KEY)).app)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: BackgroundServer):
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=f"{server.url}/openai/v1")
    yield sdk
    await sdk.close()


async def inject(server: BackgroundServer, **fault: object) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{server.url}/sandbox/faults", json={"service": "openai", **fault})
        assert response.status_code == 201


def persona() -> object:
    return parse_agent_config({
        "id": "tess", "name": "Tess", "description": "a gardener",
        "personality": {"traits": ["calm"], "interests": ["Compost", "Heirloom tomatoes"]},
        "style_guide": {"formatting": {"uses_hashtags": False, "uses_emojis": False},
                        "vocabulary": {"key_terms": ["soil"]}},
    })


class Decision(BaseModel):
    should_reply: bool
    reason: str
    mood: str


async def test_chat_completion_answers_in_the_persona_voice_with_usage(client: openai.AsyncOpenAI) -> None:
    messages = [{"role": m.role, "content": m.content} for m in build_messages(persona(), PromptContext(seed=4))]
    first = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, seed=4)
    again = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, seed=4)
    other = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, seed=5)
    text = first.choices[0].message.content
    assert text == again.choices[0].message.content != other.choices[0].message.content
    assert any(w in text.lower() for w in ("compost", "heirloom tomatoes", "soil"))
    assert first.choices[0].finish_reason == "stop"
    assert first.usage.prompt_tokens > 50 and first.usage.total_tokens > first.usage.prompt_tokens
    assert first.id.startswith("chatcmpl-")


async def test_structured_output_parses_into_the_pydantic_model(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Should you answer @sam?"}],
        response_format=Decision)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Decision) and parsed.reason


async def test_tool_calls_carry_arguments_matching_the_parameters(client: openai.AsyncOpenAI) -> None:
    tool = {"type": "function", "function": {"name": "set_mood", "parameters": {
        "type": "object", "properties": {"mood": {"type": "string", "enum": ["calm", "giddy"]},
                                         "level": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["mood", "level"], "additionalProperties": False}}}
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "how are you?"}], tools=[tool])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    args = json.loads(call.function.arguments)
    assert call.function.name == "set_mood" and args["mood"] in ("calm", "giddy") and 1 <= args["level"] <= 5


async def test_streaming_yields_the_same_text_and_usage(client: openai.AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": "say something"}]
    whole = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, seed=9)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, seed=9, stream=True,
                                                  stream_options={"include_usage": True})
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.total_tokens == whole.usage.total_tokens


async def test_embeddings_in_float_and_base64_agree(client: openai.AsyncOpenAI) -> None:
    texts = ["compost keeps the soil warm", "compost keeps soil warm", "validators and blockspace"]
    default = await client.embeddings.create(model="text-embedding-3-small", input=texts)  # SDK asks base64
    floats = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=texts,
                                                              encoding_format="float")
    raw = floats.http_response.json()["data"]
    assert isinstance(raw[0]["embedding"], list)
    a = np.array([d.embedding for d in default.data])
    b = np.array([d["embedding"] for d in raw])
    assert a.shape == (3, 1536) and np.allclose(a, b, atol=1e-6)
    assert a[0] @ a[1] > a[0] @ a[2]
    small = await client.embeddings.create(model="text-embedding-3-small", input="soil", dimensions=256)
    assert len(small.data[0].embedding) == 256
    b64 = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="soil",
                                                           encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(b64.http_response.json()["data"][0]["embedding"]), dtype="<f4")
    assert decoded.shape == (1536,) and default.usage.total_tokens > 0


async def test_sdk_retries_through_an_injected_429_and_500(server: BackgroundServer,
                                                           client: openai.AsyncOpenAI) -> None:
    await inject(server, path="/v1/chat/completions", status=429, count=1)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert raw.retries_taken == 1 and raw.parse().choices[0].message.content
    await inject(server, path="/v1/chat/completions", status=500, count=1)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert raw.retries_taken == 1
    assert raw.headers["x-ratelimit-limit-requests"] and raw.headers["x-request-id"].startswith("req_")


async def test_bad_key_and_unknown_model_get_openais_errors(server: BackgroundServer,
                                                            client: openai.AsyncOpenAI) -> None:
    bad = openai.AsyncOpenAI(api_key="sk-not-the-sandbox-key", base_url=f"{server.url}/openai/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "invalid_api_key" and "sk-not***" in info.value.message
    assert "sk-not-the-sandbox-key" not in info.value.message
    await bad.close()
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as unsupported:
        await client.chat.completions.create(model="o4-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert unsupported.value.code == "unsupported_parameter"


async def test_openai_provider_maps_sandbox_errors(server: BackgroundServer) -> None:
    base = f"{server.url}/openai/v1"
    request = CompletionRequest(messages=[ChatMessage("user", "hello")])
    provider = OpenAIProvider(KEY, base_url=base, max_retries=0)
    assert (await provider.complete(request)).usage.total_tokens > 0
    await inject(server, path="/v1/chat/completions", status=429)
    with pytest.raises(RateLimited) as limited:
        await provider.complete(request)
    assert limited.value.retry_after == pytest.approx(0.001)
    await inject(server, path="/v1/chat/completions", status=503)
    with pytest.raises(ServiceUnavailable):
        await provider.complete(request)
    await inject(server, path="/v1/chat/completions", status=400,
                 body={"error": {"message": "too long", "type": "invalid_request_error", "param": "messages",
                                 "code": "context_length_exceeded"}})
    with pytest.raises(ContentRejected):
        await provider.complete(request)
    with pytest.raises(AuthError) as auth:
        await OpenAIProvider("sk-wrong-key-000000", base_url=base, max_retries=0).complete(request)
    assert "sk-wrong-key-000000" not in str(auth.value) and "sk-wrong" not in repr(provider)
    await provider.aclose()


async def test_grok_provider_understands_xais_flat_errors(server: BackgroundServer) -> None:
    grok = GrokProvider("xai-sandbox", base_url=f"{server.url}/openai/v1", max_retries=0)
    await inject(server, path="/v1/chat/completions", status=400, body={
        "code": "Client specified an invalid argument",
        "error": "Incorrect API key provided: xa***ox. You can obtain an API key from https://console.x.ai."})
    with pytest.raises(AuthError, match="Incorrect API key"):
        await grok.complete(CompletionRequest(messages=[ChatMessage("user", "hi")]))
    await grok.aclose()


async def test_validated_posts_through_the_sandbox_with_the_real_sdk(server: BackgroundServer) -> None:
    provider = OpenAIProvider(KEY, base_url=f"{server.url}/openai/v1", max_retries=0)
    agent, recent = persona(), []
    for seed in range(5):
        result = await generate_validated(provider, agent, PromptContext(recent_posts=recent, seed=seed), recent)
        recent.insert(0, result.text)
    assert len(set(recent)) == 5
    reply = await generate_validated(provider, agent, PromptContext(
        purpose="reply", thread=[("sam", "@tess do you like compost?")], replying_to="sam", seed=1), recent)
    assert reply.text.startswith("@sam ")
    await provider.aclose()
