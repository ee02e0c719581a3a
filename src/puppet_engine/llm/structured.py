"""Structured output: ask for JSON that satisfies a pydantic model, validate it, retry if not.

The JSON Schema sent to the provider is derived from the model and made "strict"
in OpenAI's sense (every property required, ``additionalProperties: false``,
references inlined), so ``response_format: json_schema`` with ``strict: true`` is
accepted by OpenAI, xAI and the sandbox alike. Whatever comes back is parsed and
validated here, never trusted: code fences and prose around the JSON are tolerated,
and an answer that still does not validate is asked for again (up to ``attempts``).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from puppet_engine.errors import BadResponse
from puppet_engine.llm.messages import ChatMessage, Completion, CompletionRequest


class Completer(Protocol):
    """What :func:`decide` needs of a provider (any ``LLMProvider``)."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...


T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(node, dict):
        if "$ref" in node and depth < 20:
            target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline(merged, defs, depth + 1)
        return {k: _inline(v, defs, depth) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs, depth) for v in node]
    return node


def _strictify(node: Any, properties: bool = False) -> Any:
    # ``properties`` marks a name → schema mapping, whose keys are field names, not keywords.
    if isinstance(node, dict):
        out = {k: _strictify(v, properties=(k == "properties" and not properties)) for k, v in node.items()
               if properties or k not in ("default", "title")}
        if not properties and (out.get("type") == "object" or "properties" in out):
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    return node


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema in the strict form structured-output APIs accept."""
    schema = copy.deepcopy(model.model_json_schema())
    defs = schema.get("$defs", {})
    return _strictify(_inline(schema, defs))


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: bare, in a code fence, or the first ``{...}`` span."""
    text = _FENCE.sub("", text.strip())
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            return json.loads(text[start:end + 1])
        raise


def schema_name(model: type[BaseModel]) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", model.__name__)[:64] or "decision"


async def decide(provider: Completer, schema: type[T], messages: list[ChatMessage], *,
                 agent_id: str | None = None, attempts: int = 3, seed: int | None = None) -> T:
    """Ask ``provider`` for a ``schema`` instance; retry on invalid JSON, raise ``BadResponse`` at the end."""
    json_schema = strict_schema(schema)
    problems: list[str] = []
    convo = list(messages)
    for attempt in range(max(1, attempts)):
        request = CompletionRequest(
            messages=convo, json_schema=json_schema, schema_name=schema_name(schema), purpose="decision",
            agent_id=agent_id, seed=None if seed is None else seed + attempt, temperature=0.2,
        )
        completion = await provider.complete(request)
        try:
            return schema.model_validate(extract_json(completion.text))
        except (json.JSONDecodeError, ValidationError) as exc:
            problem = str(exc).splitlines()[0][:200] if isinstance(exc, json.JSONDecodeError) else \
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            problems.append(f"attempt {attempt + 1}: {problem}")
            convo = [*messages, ChatMessage("assistant", completion.text[:2000]),
                     ChatMessage("user", f"That was not valid JSON for the schema ({problem}). "
                                         "Answer again with only the JSON object.")]
    raise BadResponse(f"no valid {schema.__name__} after {attempts} attempts: {' | '.join(problems)}",
                      service=provider.name)
