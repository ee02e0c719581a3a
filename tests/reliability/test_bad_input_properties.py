"""Property tests over everything that takes outside input: never an unhandled exception.

- the agent-file loader, on arbitrary JSON values, mutated real agent files and raw bytes:
  a config, or one ``AgentConfigError`` that names the file;
- the tweet text rules, on any string (lone surrogates, control characters, emoji, URLs):
  numbers and strings that keep their promises (``fit_tweet`` fits, thread parts fit);
- the API's request models, on arbitrary JSON: a model or a ``ValidationError``;
- the API itself, on random bodies for every write endpoint: a 2xx or a 4xx in the one
  error shape, never a 500.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from puppet_engine.api import KeyRing, create_app, schemas
from puppet_engine.errors import AgentConfigError, ConfigError
from puppet_engine.persona import LoadedAgent, load_agent_file, parse_agent
from puppet_engine.twitter import text as tt

from .helpers import persona, rig

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "agents" / "ledger.json").read_text())
SOURCE = "fuzz/agent.json"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=20), inner, max_size=5), max_leaves=25)
any_text = st.text(alphabet=st.characters(codec=None, categories=None), max_size=400)
tweetish = st.lists(st.sampled_from(["tea ", "$SOL ", "$BONK ", "@ana ", "https://x.co/abc ", "例", "👩‍👩‍👧",
                                     "e\u0301", "\u200b", "\n", ". ", "#tag ", "www.example.com/" + "a" * 30,
                                     "\ud800", "\x00", "word" * 20]), max_size=80).map("".join)


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [prefix, *(p for k, v in value.items() for p in leaf_paths(v, (*prefix, k)))]
    if isinstance(value, list):
        return [prefix, *(p for i, v in enumerate(value) for p in leaf_paths(v, (*prefix, i)))]
    return [prefix]


PATHS = [p for p in leaf_paths(EXAMPLE) if p]


def mutate(data: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    target = copy
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return copy


def loads_or_explains(data: Any) -> LoadedAgent | None:
    try:
        return parse_agent(data, source=SOURCE)
    except AgentConfigError as exc:
        assert exc.problems and all(SOURCE in problem for problem in exc.problems), exc.problems
        return None


# -- the agent-file loader -----------------------------------------------------------------------


@FAST
@given(json_values)
def test_any_json_value_is_an_agent_or_a_clear_error(data: Any) -> None:
    loads_or_explains(data)


@FAST
@given(st.sampled_from(PATHS), json_values, st.booleans())
def test_a_real_agent_file_with_any_field_broken_is_an_agent_or_a_clear_error(path: tuple[Any, ...], value: Any,
                                                                                delete: bool) -> None:
    loaded = loads_or_explains(mutate(EXAMPLE, path, value, delete))
    if loaded is not None:  # what loads must round-trip through its public form
        public = loaded.config.public_dict()
        assert parse_agent(public, source=SOURCE, previous=loaded.config).config.id == loaded.config.id


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_file_content_is_an_agent_or_an_error_naming_the_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.json"
        path.write_bytes(raw)
        try:
            load_agent_file(path)
        except ConfigError as exc:
            assert str(path) in str(exc) or path.name in str(exc), str(exc)


# -- the text rules -----------------------------------------------------------------------------


@FAST
@given(any_text | tweetish)
def test_text_rules_never_raise_and_keep_their_promises(text: str) -> None:
    length = tt.parse_tweet(text)
    assert isinstance(length.weighted_length, int) and length.weighted_length >= 0
    assert tt.is_valid_tweet(text) == length.valid
    assert tt.count_cashtags(text) == len(tt.extract_cashtags(text)) >= 0
    assert all(isinstance(u, str) and u for u in tt.extract_urls(text))
    assert all(isinstance(m, str) and m for m in tt.extract_mentions(text))
    fitted = tt.fit_tweet(text)
    assert tt.weighted_length(fitted) <= tt.MAX_WEIGHT
    if length.valid:
        assert tt.normalize(text).strip() == fitted


@FAST
@given(any_text | tweetish, st.integers(1, 6), st.integers(30, 280), st.booleans())
def test_every_thread_part_fits(text: str, max_parts: int, max_weight: int, numbered: bool) -> None:
    # (below 23 a URL, which always weighs 23 and is never cut, cannot fit at all)
    parts = tt.split_thread(text, max_parts=max_parts, max_weight=max_weight, numbered=numbered)
    assert len(parts) <= max_parts
    for part in parts:
        assert tt.weighted_length(part) <= max_weight, (part, max_weight)


# -- the API's request models -------------------------------------------------------------------

REQUEST_MODELS: list[type[BaseModel]] = [
    schemas.PostRequest, schemas.TradeRequest, schemas.MemoryCreate, schemas.MemorySearch, schemas.ClearRequest,
    schemas.SettingsUpdate, schemas.NewsRequest,
]


@FAST
@given(st.sampled_from(REQUEST_MODELS), json_values)
def test_request_models_accept_or_explain(model: type[BaseModel], data: Any) -> None:
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        assert exc.errors()  # a list of field problems the API turns into its error shape
        return
    model.model_validate_json(parsed.model_dump_json())  # what was accepted serialises and parses again


# -- the API over the wire -----------------------------------------------------------------------

ADMIN = "property-admin-key-9a8b7c6d"
WRITES = [("POST", "/agents/pip/post"), ("POST", "/agents/pip/trade"), ("PUT", "/agents/pip/config"),
          ("POST", "/news"), ("POST", "/memory/pip"), ("POST", "/memory/pip/search"), ("DELETE", "/memory/pip"),
          ("PUT", "/config"), ("POST", "/agents/nobody/post"), ("POST", "/memory/pip/../pip/search")]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 10**400 // 10**399])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-320, 3.0])
    if kind in (4, 5):
        return "".join(rng.choice(["a", "é", "\u0000", "👩‍👩‍👧", " ", "'", '"', "\\", "{", "%s", "\ud800"[:0]])
                       for _ in range(rng.randrange(0, 30)))
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["text", "topic", "amount", "output", "input", "query", "content", "kind", "limit", "log_level",
            "agents", "id", "name", "behavior", "llm_provider", "importance", "confirm", "reasoning"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


async def test_random_bodies_on_every_write_endpoint_are_answered_without_a_500(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    async with rig(tmp_path, persona("pip")) as r:
        app = create_app(r.engine, keys=KeyRing.parse(f"{ADMIN}:admin"), auth_failures_per_minute=10_000)
        auth = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api") as api:
            seen: dict[int, int] = {}
            for round_ in range(400):
                method, path = WRITES[round_ % len(WRITES)]
                body = random_json(rng)
                if round_ % 7 == 0:  # now and then a body that is not JSON at all
                    response = await api.request(method, path, headers={**auth, "Content-Type": "application/json"},
                                                 content=rng.choice([b"{", b"\xff\xfe", b"[1,", b"nul", b""]))
                else:
                    response = await api.request(method, path, headers=auth, json=body)
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (method, path, body, response.text[:300])
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert error["code"] and error["message"], response.text
        assert any(400 <= status < 500 for status in seen) and any(status < 300 for status in seen), seen
