"""Agent files in the original Puppet Engine format: loading, errors, warnings, secrets."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puppet_engine.errors import AgentConfigError, ConfigError
from puppet_engine.persona import (
    AgentConfig,
    agent_json_schema,
    load_agent_file,
    load_agents,
    load_agents_dir,
    parse_agent,
    parse_agent_config,
    validate_files,
)

AGENTS_DIR = Path(__file__).resolve().parents[2] / "agents"

# The shape of the original project's files: camelCase credentials, empty strings for
# unset secrets, an agent-kit block without "methods", no llm_config/timezone.
ORIGINAL = {
    "id": "orig-agent",
    "name": "Orig",
    "description": "an agent written for the original engine",
    "llm_provider": "OpenAI",
    "twitter_credentials": {"apiKey": "", "apiKeySecret": "", "accessToken": "", "accessTokenSecret": ""},
    "solana_integration": {
        "wallet_address": "", "private_key": "", "network": "mainnet-beta",
        "rpc_url": "https://api.mainnet-beta.solana.com",
        "trade_safety": {"max_trade_amount_sol": 0.1, "min_wallet_balance_sol": 0.05, "max_slippage_percent": 1},
        "trading_enabled": True,
    },
    "custom_system_prompt": "you are orig.\n" * 400,
    "personality": {"traits": ["Odd"], "values": ["Chaos"], "speaking_style": "short", "interests": ["Solana"]},
    "style_guide": {
        "voice": "raw", "tone": "jarring",
        "formatting": {"uses_hashtags": False, "hashtag_style": "None.", "uses_emojis": True,
                       "emoji_frequency": "Rare", "capitalization": "never", "sentence_length": "short",
                       "avoid_hyphens": True},
        "topics_to_avoid": ["Explanations"],
    },
    "initial_memory": {"core_memories": ["I exist"], "relationships": {}, "recent_events": []},
    "behavior": {
        "post_frequency": {"min_hours_between_posts": 0.25, "max_hours_between_posts": 0.5,
                           "peak_posting_hours": [3, 4, 12, 23]},
        "interaction_patterns": {"reply_probability": 1.0, "quote_tweet_probability": 0.2, "like_probability": 0.75},
        "content_preferences": {"max_thread_length": 1, "typical_post_length": 7, "max_post_length": 20,
                                "link_sharing_frequency": 0.01},
        "trading_behavior": {
            "trading_frequency": {"min_hours_between_trades": 0.05, "max_hours_between_trades": 0.2,
                                  "random_probability": 0.6},
            "trade_decision_factors": ["trending_tokens", "mood"],
            "trade_tweet_probability": 1.0,
            "max_trade_amount_per_transaction": 0.1,
            "allowed_tokens": {"always_tradable": ["So11111111111111111111111111111111111111112",
                                                   "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"],
                               "consider_trending": True, "blacklist": []},
        },
    },
    "agent_kit_integration": {
        "enabled": True,
        "autonomy_rules": {"ignore_human_trading_requests": True, "max_daily_trades": 5,
                           "max_single_trade_amount_sol": 0.1, "require_trending_validation": False},
    },
}


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def problems_for(data: object, tmp_path: Path, name: str = "coby.json") -> list[str]:
    path = write(tmp_path, name, data)
    with pytest.raises(AgentConfigError) as info:
        load_agent_file(path)
    return [p.replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_example_agents_load_with_distinct_personas():
    loaded = load_agents(AGENTS_DIR)
    assert len(loaded) >= 3
    assert all(agent.warnings == [] for agent in loaded)
    configs = {agent.config.id: agent.config for agent in loaded}
    assert len({c.personality.speaking_style for c in configs.values()}) == len(configs)
    traders = [c for c in configs.values() if c.trading_enabled]
    assert traders, "one example agent trades"
    trader = traders[0]
    assert {"SOL", "USDC"} <= set(trader.behavior.trading_behavior.allowed_tokens.always_tradable)
    assert trader.solana_integration is not None
    assert trader.solana_integration.trade_safety.max_trade_amount_sol <= 0.1
    for config in configs.values():
        gap = config.behavior.post_frequency
        assert 0.5 <= gap.min_hours_between_posts <= gap.max_hours_between_posts <= 24
        assert config.secret_values() == [], "examples ship no secrets"
    assert [c.id for c in load_agents_dir(AGENTS_DIR)] == [a.config.id for a in loaded]


def test_original_format_loads_unchanged():
    config = parse_agent_config(copy.deepcopy(ORIGINAL), "orig.json")
    assert config.llm_provider == "openai"
    assert config.trading_enabled
    assert config.behavior.post_frequency.min_hours_between_posts == 0.25
    assert config.behavior.post_frequency.peak_posting_hours == [3, 4, 12, 23]
    assert config.twitter_credentials is not None and config.twitter_credentials.api_key is None
    assert not config.twitter_credentials.has_user_context
    assert config.solana_integration is not None and config.solana_integration.private_key is None
    assert config.agent_kit_integration.autonomy_rules.max_daily_trades == 5
    assert config.agent_kit_integration.methods.autonomous_only == ["swapTokens"]
    assert len(config.custom_system_prompt or "") > 5000, "no length cap on prose"
    assert config.timezone == "UTC" and config.tz == ZoneInfo("UTC")


def test_minimal_file_gets_documented_defaults():
    config = parse_agent_config({"id": "mini"})
    assert config.name == "mini"
    assert config.llm_provider == "fake"
    assert not config.trading_enabled
    assert config.behavior.post_frequency.min_hours_between_posts == 3.0
    assert config.behavior.post_frequency.max_hours_between_posts == 12.0
    assert config.behavior.interaction_patterns.max_reply_depth == 3
    assert config.behavior.mention_poll_minutes is None
    for name, info in AgentConfig.model_fields.items():
        assert info.description, f"{name} is documented"


def test_zero_and_false_are_honoured():
    data = {
        "id": "zero",
        "style_guide": {"formatting": {"uses_hashtags": False, "uses_emojis": False}},
        "behavior": {
            "post_frequency": {"min_hours_between_posts": 0, "max_hours_between_posts": 0},
            "interaction_patterns": {"reply_probability": 0, "quote_tweet_probability": 0.0,
                                     "like_probability": 0, "max_reply_depth": 0},
            "content_preferences": {"link_sharing_frequency": 0},
            "trading_behavior": {"trade_tweet_probability": 0, "max_trade_amount_per_transaction": 0,
                                 "trading_frequency": {"random_probability": 0}},
        },
        "solana_integration": {"trading_enabled": False, "trade_safety": {"max_trade_amount_sol": 0,
                                                                          "min_wallet_balance_sol": 0}},
        "agent_kit_integration": {"autonomy_rules": {"max_daily_trades": 0,
                                                     "ignore_human_trading_requests": False}},
        "llm_config": {"temperature": 0},
    }
    c = parse_agent_config(data)
    b = c.behavior
    assert b.post_frequency.min_hours_between_posts == 0 and b.post_frequency.max_hours_between_posts == 0
    assert b.interaction_patterns.reply_probability == 0 and b.interaction_patterns.like_probability == 0
    assert b.interaction_patterns.quote_tweet_probability == 0 and b.interaction_patterns.max_reply_depth == 0
    assert b.content_preferences.link_sharing_frequency == 0
    assert b.trading_behavior.trade_tweet_probability == 0
    assert b.trading_behavior.max_trade_amount_per_transaction == 0
    assert b.trading_behavior.trading_frequency.random_probability == 0
    assert c.solana_integration is not None and c.solana_integration.trade_safety.max_trade_amount_sol == 0
    assert c.agent_kit_integration.autonomy_rules.max_daily_trades == 0
    assert c.llm_config.temperature == 0
    assert c.trading_enabled is False


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": "coby", "behavior": {"post_frequency": {"min_hours_between_posts": "soon"}}},
         'coby.json: behavior.post_frequency.min_hours_between_posts: expected a number ≥ 0, got "soon"'),
        ({"id": "coby", "behavior": {"post_frequency": {"min_hours_between_posts": 5, "max_hours_between_posts": 2}}},
         "coby.json: behavior.post_frequency: expected min_hours_between_posts ≤ max_hours_between_posts, got 5 > 2"),
        ({"id": "coby", "behavior": {"trading_behavior": {"trading_frequency": {
            "min_hours_between_trades": 9, "max_hours_between_trades": 1.5}}}},
         "coby.json: behavior.trading_behavior.trading_frequency: expected min_hours_between_trades ≤ "
         "max_hours_between_trades, got 9 > 1.5"),
        ({"id": "coby", "behavior": {"interaction_patterns": {"like_probability": 1.2}}},
         "coby.json: behavior.interaction_patterns.like_probability: expected a number between 0 and 1, got 1.2"),
        ({"id": "coby", "behavior": {"interaction_patterns": {"reply_probability": -0.1}}},
         "coby.json: behavior.interaction_patterns.reply_probability: expected a number between 0 and 1, got -0.1"),
        ({"id": "coby", "behavior": {"post_frequency": {"peak_posting_hours": [9, 24]}}},
         "coby.json: behavior.post_frequency.peak_posting_hours[1]: expected an integer between 0 and 23, got 24"),
        ({"id": "coby", "timezone": "Mars/Olympus"},
         'coby.json: timezone: expected an IANA time zone such as "UTC" or "America/New_York", got "Mars/Olympus"'),
        ({"id": "coby", "llm_provider": "claude"},
         'coby.json: llm_provider: expected one of "openai", "grok", "openai-compatible", "fake", got "claude"'),
        ({"id": "coby", "style_guide": {"formatting": {"uses_emojis": "sometimes"}}},
         'coby.json: style_guide.formatting.uses_emojis: expected true or false, got "sometimes"'),
        ({"id": "coby", "initial_memory": {"relationships": {"nova": {"trust": 3}}}},
         "coby.json: initial_memory.relationships.nova.trust: expected a number between 0 and 1, got 3"),
        ({"id": "coby", "solana_integration": {"trading_mode": "yolo"}},
         'coby.json: solana_integration.trading_mode: expected one of "live", "dry-run", got "yolo"'),
        ({"id": "coby", "personality": {"traits": "witty"}},
         'coby.json: personality.traits: expected a list of strings, got "witty"'),
        ({"name": "no id"}, "coby.json: id: required field is missing (expected a string)"),
        ([1, 2], "coby.json: expected a JSON object, got a list"),
        ({"id": "has space"},
         "coby.json: id: expected an id of letters, digits, '-' or '_' (1-64 characters, starting with a "
         'letter or digit), got "has space"'),
    ],
)
def test_error_names_file_path_and_expectation(tmp_path, data, expected):
    assert expected in problems_for(data, tmp_path)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    data = {"id": "coby", "behavior": {"post_frequency": {"min_hours_between_posts": "soon"},
                                       "interaction_patterns": {"reply_probability": 2}}}
    assert len(problems_for(data, tmp_path)) == 2


def test_invalid_json_reports_line_and_column(tmp_path):
    problems = problems_for('{\n  "id": "coby",\n  "name": "Coby"\n  "description": "x"\n}', tmp_path)
    assert problems == ["coby.json: invalid JSON at line 4, column 3: Expecting ',' delimiter"]


def test_unknown_fields_warn_and_are_dropped(tmp_path):
    data = {"id": "coby", "mood": "sunny",
            "behavior": {"post_frequncy": {"min_hours_between_posts": 1}},
            "initial_memory": {"relationships": {"nova": {"trust": 0.5, "vibe": "good"}}}}
    loaded = load_agent_file(write(tmp_path, "coby.json", data))
    warnings = [w.replace(str(tmp_path) + "/", "") for w in loaded.warnings]
    assert "coby.json: mood: unknown field, ignored" in warnings
    assert 'coby.json: behavior.post_frequncy: unknown field, ignored (did you mean "post_frequency"?)' in warnings
    assert "coby.json: initial_memory.relationships.nova.vibe: unknown field, ignored" in warnings
    assert "mood" not in loaded.config.public_dict()
    assert loaded.config.behavior.post_frequency.min_hours_between_posts == 3.0


def test_secrets_never_echoed():
    data = {"id": "sec", "twitter_credentials": {"apiKey": "ck-AAAA", "apiKeySecret": "cs-BBBB",
                                                 "accessToken": "at-CCCC", "accessTokenSecret": "as-DDDD",
                                                 "bearerToken": "bt-EEEE"},
            "solana_integration": {"private_key": "pk-FFFF", "trading_enabled": True}}
    loaded = parse_agent(data)
    config = loaded.config
    secrets = ["ck-AAAA", "cs-BBBB", "at-CCCC", "as-DDDD", "bt-EEEE", "pk-FFFF"]
    public = json.dumps(config.public_dict())
    for text in (repr(config), str(config), public, config.model_dump_json(), "\n".join(loaded.warnings)):
        assert not any(s in text for s in secrets), text
    assert config.public_dict()["twitter_credentials"]["apiKey"] == "***"
    assert config.public_dict()["solana_integration"]["private_key"] == "***"
    assert sorted(config.secret_values()) == sorted(secrets)
    assert config.twitter_credentials is not None and config.twitter_credentials.has_user_context


def test_wrongly_typed_secret_is_described_not_echoed(tmp_path):
    problems = problems_for({"id": "coby", "solana_integration": {"private_key": 123456789}}, tmp_path)
    assert problems == ["coby.json: solana_integration.private_key: expected a string, got a number"]


def test_public_dict_round_trips_keeping_secrets():
    first = parse_agent_config({"id": "rt", "solana_integration": {"private_key": "pk-SECRET"},
                                "twitter_credentials": {"apiKey": "k-SECRET"}})
    again = parse_agent_config(first.public_dict(), previous=first)
    assert again.secret_values() == first.secret_values()
    assert parse_agent_config(first.public_dict()).secret_values() == []


def test_keypair_as_byte_array_is_accepted():
    config = parse_agent_config({"id": "kp", "solana_integration": {"private_key": list(range(64))}})
    assert config.solana_integration is not None and config.solana_integration.private_key is not None
    assert json.loads(config.solana_integration.private_key.get_secret_value()) == list(range(64))


def test_duplicate_ids_across_files(tmp_path):
    write(tmp_path, "a.json", {"id": "twin"})
    write(tmp_path, "b.json", {"id": "twin", "name": "Other"})
    write(tmp_path, "c.json", {"id": "ok", "behavior": {"interaction_patterns": {"like_probability": 9}}})
    with pytest.raises(AgentConfigError) as info:
        load_agents_dir(tmp_path)
    problems = info.value.problems
    assert f'{tmp_path}/b.json: id: duplicate agent id "twin", already defined in {tmp_path}/a.json' in problems
    assert any(p.startswith(f"{tmp_path}/c.json: behavior.interaction_patterns.like_probability") for p in problems)
    assert isinstance(info.value, ConfigError)


def test_validate_files_lists_problems_and_empty_when_valid(tmp_path):
    good = write(tmp_path, "good.json", {"id": "good"})
    bad = write(tmp_path, "bad.json", "{nope")
    assert validate_files([good]) == []
    assert validate_files([good, bad]) == [f"{bad}: invalid JSON at line 1, column 2: "
                                           "Expecting property name enclosed in double quotes"]
    assert validate_files([tmp_path / "missing.json"])[0].startswith(f"{tmp_path}/missing.json: cannot read file")


def test_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(AgentConfigError, match="agents directory not found"):
        load_agents_dir(tmp_path / "nope")


def test_json_schema_for_editors_uses_file_names():
    schema = agent_json_schema()
    assert schema["required"] == ["id"]
    assert "behavior" in schema["properties"]
    creds = schema["$defs"]["TwitterCredentials"]["properties"]
    assert {"apiKey", "accessTokenSecret", "bearerToken"} <= set(creds)
    freq = schema["$defs"]["PostFrequency"]["properties"]["min_hours_between_posts"]
    assert freq["minimum"] == 0 and "default 3" in freq["description"]
    json.dumps(schema)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
_json = st.recursive(_json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=20)
_known_keys = st.sampled_from([*ORIGINAL, "llm_config", "timezone", "rotating_system_prompts"])


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_ORIGINAL_PATHS = [p for p in _paths(ORIGINAL) if p]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, st.dictionaries(_known_keys, _json, max_size=6)))
def test_arbitrary_json_raises_only_agent_config_error(data):
    try:
        parse_agent_config(data, "fuzz.json")
    except AgentConfigError as exc:
        assert all(p.startswith("fuzz.json: ") for p in exc.problems)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_ORIGINAL_PATHS), _json)
def test_mutating_any_field_raises_only_agent_config_error(path, value):
    data = copy.deepcopy(ORIGINAL)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    try:
        config = parse_agent_config(data, "fuzz.json")
    except AgentConfigError as exc:
        assert exc.problems and all(p.startswith("fuzz.json: ") for p in exc.problems)
    else:
        json.dumps(config.public_dict(), allow_nan=False)
