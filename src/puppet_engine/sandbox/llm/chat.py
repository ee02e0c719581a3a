"""Chat completions and embeddings of the emulator, as pure functions of the request body.

Text comes from :mod:`puppet_engine.llm.textgen` (the generator ``FakeProvider``
uses), so a persona prompt built by ``build_messages`` gets a reply in that
persona's voice, deterministic for the same messages and ``seed``. Structured
requests (``response_format`` json_schema, tools) get a valid instance of their
schema; ``json_object`` gets a JSON object.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from puppet_engine.llm.messages import estimate_tokens
from puppet_engine.llm.schema_fill import instance_for
from puppet_engine.llm.textgen import generate
from puppet_engine.persona.block import parse_messages
from puppet_engine.sandbox.llm.obedient import obey
from puppet_engine.sandbox.llm.problems import (
    OpenAIProblem,
    invalid_param,
    missing_param,
    model_not_found,
)

CHAT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "gpt-5-mini", "gpt-5", "o4-mini",
               "grok-4-1-fast-non-reasoning", "grok-4-1-fast-reasoning", "grok-3-mini", "grok-4", "llama3.2",
               "fake-persona-1")
EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
CHAT_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4", "grok-", "llama", "qwen", "mistral", "gemma", "phi",
                 "deepseek", "fake-")
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")

Ids = Callable[[str], str]


def is_chat_model(model: str) -> bool:
    return model in CHAT_MODELS or model.startswith(CHAT_PREFIXES)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def prompt_token_count(messages: list[dict[str, Any]]) -> int:
    return 3 + sum(4 + estimate_tokens(_text_of(m.get("content"))) for m in messages)


def _check(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    model = body.get("model")
    if not model:
        raise missing_param("model")
    if not isinstance(model, str) or not is_chat_model(model):
        raise model_not_found(str(model))
    messages = body.get("messages")
    if messages is None:
        raise missing_param("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_param("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                            "but got an empty array instead.", "empty_array")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise invalid_param(f"messages[{i}].role", f"Invalid value: '{m.get('role') if isinstance(m, dict) else m}'. "
                                f"Supported values are: {', '.join(repr(r) for r in ROLES[:5])}.")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        raise invalid_param("temperature", f"Invalid 'temperature': expected a value between 0 and 2, but got "
                            f"{temperature} instead.", "decimal_above_max_value")
    if body.get("max_tokens") is not None and model.startswith(REASONING_PREFIXES):
        raise invalid_param("max_tokens", "Unsupported parameter: 'max_tokens' is not supported with this model. "
                            "Use 'max_completion_tokens' instead.", "unsupported_parameter")
    return model, messages


def _seed(body: dict[str, Any], messages: list[dict[str, Any]]) -> int:
    if isinstance(body.get("seed"), int):
        return int(body["seed"])
    return zlib.crc32(json.dumps(messages, sort_keys=True, default=str).encode())


def _tool_to_call(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        named = [t for t in tools if t["function"].get("name") == wanted]
        if not named:
            raise invalid_param("tool_choice", f"Invalid value for 'tool_choice': no function named '{wanted}' "
                                "was specified in the 'tools' parameter.")
        return named[0]["function"]
    if choice == "auto" and messages and messages[-1].get("role") == "tool":
        return None  # the tool answered; now reply in words
    return tools[0]["function"]


def _response_format(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    fmt = body.get("response_format") or {"type": "text"}
    kind = fmt.get("type", "text") if isinstance(fmt, dict) else "text"
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        if not isinstance(spec.get("schema"), dict):
            raise missing_param("response_format.json_schema.schema")
        return kind, spec["schema"]
    if kind not in ("text", "json_object"):
        raise invalid_param("response_format.type", f"Invalid value: '{kind}'. Supported values are: 'json_object', "
                            "'json_schema', and 'text'.")
    return kind, None


def _cut(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Apply ``stop`` sequences and the token limit; returns (text, finish_reason)."""
    stops = body.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
        return text[: limit * 4], "length"
    return text, "stop"


def chat_completion(body: dict[str, Any], *, created: int, ids: Ids, obedient: bool = False) -> dict[str, Any]:
    """The ``chat.completion`` object answering ``body`` (raises ``OpenAIProblem`` when invalid).

    ``obedient``: text answers follow any instructions in the prompt (:mod:`.obedient`).
    """
    model, messages = _check(body)
    orders = obey(messages) if obedient else None
    kind, schema = _response_format(body)
    tool = _tool_to_call(body, messages)
    facts = parse_messages(messages)
    seed = _seed(body, messages)
    n = int(body.get("n") or 1)
    if not 1 <= n <= 8:
        raise invalid_param("n", f"Invalid 'n': integer above maximum value. Expected a value <= 8, but got {n}.")
    choices, completion_tokens = [], 0
    for index in range(n):
        s = seed + index * 7919
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if tool is not None:
            arguments = json.dumps(instance_for(tool.get("parameters") or {"type": "object"}, facts, s))
            message["tool_calls"] = [{"id": ids("call_"), "type": "function",
                                      "function": {"name": tool.get("name", "tool"), "arguments": arguments}}]
            finish, completion_tokens = "tool_calls", completion_tokens + estimate_tokens(arguments)
        else:
            if schema is not None:
                text = json.dumps(instance_for(schema, facts, s))
            elif kind == "json_object":
                text = json.dumps({"response": generate(facts, s)})
            else:
                text = orders or generate(facts, s)
            text, finish = _cut(text, body)
            message["content"] = text
            completion_tokens += estimate_tokens(text)
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
    prompt_tokens = prompt_token_count(messages)
    return {
        "id": ids("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "system_fingerprint": "fp_sandbox", "service_tier": "default",
    }


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` sequence equivalent to ``completion`` (first choice's words)."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": completion["system_fingerprint"]}
    chunks: list[dict[str, Any]] = []
    for choice in completion["choices"]:
        i, message = choice["index"], choice["message"]
        chunks.append({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]})
        if message.get("tool_calls"):
            calls = [{"index": 0, **message["tool_calls"][0]}]
            chunks.append({**base, "choices": [{"index": i, "delta": {"tool_calls": calls}, "logprobs": None,
                                                 "finish_reason": None}]})
        else:
            words = (message["content"] or "").split(" ")
            for w, word in enumerate(words):
                piece = word if w == 0 else " " + word
                chunks.append({**base, "choices": [{"index": i, "delta": {"content": piece}, "logprobs": None,
                                                     "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                             "finish_reason": choice["finish_reason"]}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """The ``list`` of embeddings for ``body``: hashing vectors, float or base64 float32."""
    from puppet_engine.memory.embeddings.hashing import HashingEmbedder

    model = body.get("model")
    if not model:
        raise missing_param("model")
    if model not in EMBEDDING_DIMS:
        raise model_not_found(str(model))
    raw = body.get("input")
    if raw is None:
        raise missing_param("input")
    items = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
    if not isinstance(items, list) or not items:
        raise invalid_param("input", "'$.input' is invalid. Please check the API reference: "
                            "https://platform.openai.com/docs/api-reference.")
    texts = [" ".join(map(str, i)) if isinstance(i, list) else str(i) for i in items]
    if any(not t.strip() for t in texts):
        raise invalid_param("input", "'$.input' is invalid. Please check the API reference: "
                            "https://platform.openai.com/docs/api-reference.")
    dims = body.get("dimensions")
    if dims is not None:
        if model == "text-embedding-ada-002":
            raise invalid_param("dimensions", "This model does not support specifying dimensions.")
        if not isinstance(dims, int) or not 1 <= dims <= EMBEDDING_DIMS[model]:
            raise invalid_param("dimensions", f"Invalid 'dimensions': expected 1 to {EMBEDDING_DIMS[model]}.")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise invalid_param("encoding_format", f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.")
    vectors = HashingEmbedder(dims or EMBEDDING_DIMS[model]).embed_sync(texts).astype(np.float32)
    data = []
    for index, vector in enumerate(vectors):
        value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode() if fmt == "base64" else \
            [float(x) for x in vector]
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(estimate_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_list(created: int) -> dict[str, Any]:
    owners = {"grok": "xai", "llama": "meta", "fake": "puppet-engine"}
    ids = [*CHAT_MODELS, *EMBEDDING_DIMS]
    return {"object": "list", "data": [
        {"id": m, "object": "model", "created": created,
         "owned_by": next((o for p, o in owners.items() if m.startswith(p)), "system")} for m in ids]}


__all__ = ["OpenAIProblem", "chat_completion", "embeddings", "model_list", "stream_chunks"]
