"""A valid instance of a JSON Schema, for offline structured output.

``FakeProvider`` and the sandbox's ``response_format: json_schema`` / tool calls
answer with :func:`instance_for`: every required property present, enums and
constants respected, numbers inside their bounds, strings within their lengths.
Text-like fields (``text``, ``reply``, ``reason`` …) are written in the persona's
voice by the offline generator; booleans and choices are seeded, so a decision is
deterministic for a given prompt and seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from puppet_engine.llm.textgen import generate
from puppet_engine.persona.block import PromptFacts

TEXT_FIELDS = ("text", "tweet", "reply", "content", "post", "message", "response", "answer", "comment", "body")
REASON_FIELDS = ("reason", "reasoning", "rationale", "explanation", "why", "thought", "summary", "notes")
MAX_DEPTH = 8


def instance_for(schema: Mapping[str, Any], facts: PromptFacts | None = None, seed: int = 0) -> Any:
    """A value that validates against ``schema`` (a JSON Schema object, ``$defs`` resolved)."""
    filler = _Filler(dict(schema), facts or PromptFacts(), random.Random(seed), seed)
    return filler.value(schema, "", 0)


class _Filler:
    def __init__(self, root: dict[str, Any], facts: PromptFacts, rng: random.Random, seed: int) -> None:
        self.root, self.facts, self.rng, self.seed = root, facts, rng, seed

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < MAX_DEPTH:
            ref = str(schema["$ref"])
            node: Any = self.root
            for part in ref.lstrip("#/").split("/"):
                if part:
                    node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def value(self, schema: Mapping[str, Any] | bool, name: str, depth: int) -> Any:
        if schema is True or schema is False or not isinstance(schema, Mapping):
            return None if schema is False else "ok"
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [self.resolve(o) for o in schema[key] if isinstance(o, Mapping)]
                non_null = [o for o in options if o.get("type") != "null"]
                return self.value((non_null or options)[0], name, depth)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.value(merged, name, depth)
        if "default" in schema and depth > 0 and self.rng.random() < 0.3:
            return schema["default"]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, f"_{kind}", self._string)(schema, name, depth)

    def _object(self, schema: Mapping[str, Any], name: str, depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties") or {}
        if depth >= MAX_DEPTH:
            return {}
        return {key: self.value(sub, key, depth + 1) for key, sub in props.items()}

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 1 if depth < MAX_DEPTH else 0))
        high = int(schema.get("maxItems", max(low, 3)))
        count = self.rng.randint(low, max(low, min(high, low + 2)))
        items = schema.get("items") or {"type": "string"}
        if isinstance(schema.get("prefixItems"), list):
            return [self.value(s, name, depth + 1) for s in schema["prefixItems"]]
        return [self.value(items, name, depth + 1) for _ in range(count)]

    def _boolean(self, schema: Mapping[str, Any], name: str, depth: int) -> bool:
        return self.rng.random() < 0.6

    def _null(self, schema: Mapping[str, Any], name: str, depth: int) -> None:
        return None

    def _integer(self, schema: Mapping[str, Any], name: str, depth: int) -> int:
        low, high = self._bounds(schema, 0, 10)
        low_i, high_i = int(-(-low // 1)), int(high // 1)
        if "exclusiveMinimum" in schema and low_i <= schema["exclusiveMinimum"]:
            low_i += 1
        if "exclusiveMaximum" in schema and high_i >= schema["exclusiveMaximum"]:
            high_i -= 1
        return self.rng.randint(low_i, max(low_i, high_i))

    def _number(self, schema: Mapping[str, Any], name: str, depth: int) -> float:
        low, high = self._bounds(schema, 0.0, 1.0)
        value = round(self.rng.uniform(low, high), 4)
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value = (low + high) / 2
        return min(max(value, low), high)

    @staticmethod
    def _bounds(schema: Mapping[str, Any], low: float, high: float) -> tuple[float, float]:
        lo = schema.get("minimum", schema.get("exclusiveMinimum", low))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", max(high, lo)))
        if "minimum" not in schema and "exclusiveMinimum" not in schema and hi < lo:
            lo = hi
        return float(lo), float(max(lo, hi))

    def _string(self, schema: Mapping[str, Any], name: str, depth: int) -> str:
        lowered = name.lower()
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        if fmt == "date":
            return "2026-01-01"
        if fmt in ("uri", "url"):
            return "https://example.com/"
        if fmt == "email":
            return "agent@example.com"
        if any(lowered.endswith(f) or lowered == f for f in TEXT_FIELDS):
            text = generate(self.facts, self.seed + depth)
        elif any(f in lowered for f in REASON_FIELDS):
            text = self._reason()
        elif lowered in ("token", "symbol", "mint", "ticker"):
            text = "SOL"
        elif lowered in ("topic", "subject", "interest"):
            text = self.rng.choice(self.facts.interests or ["the timeline"])
        else:
            text = self.rng.choice(self.facts.key_terms or self.facts.interests or ["ok"])
        low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
        while len(text) < low:
            text = f"{text} {text}".strip() or "x" * low
        return text[:high]

    def _reason(self) -> str:
        f = self.facts
        value = self.rng.choice(f.values).lower() if f.values else "it fits who i am"
        topic = self.rng.choice(f.interests).lower() if f.interests else "the timeline"
        return f"{value}; it connects to {topic}."
