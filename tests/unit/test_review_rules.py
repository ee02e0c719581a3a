"""Review rules: the agent file's ``review`` section (schema, validation errors), REVIEW_DEFAULT,
and the gate's decisions on each kind of action (trade size included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from puppet_engine.agents.review import ReviewGate, category_of, parse_default
from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.errors import ConfigError
from puppet_engine.events import ActionSpec, Event, HandlerResult
from puppet_engine.persona import agent_json_schema, check_files, parse_agent_config
from puppet_engine.persona.review import ReviewRules
from puppet_engine.storage import Database


def agent_file(tmp_path: Path, review: Any) -> Path:
    path = tmp_path / "zed.json"
    path.write_text(json.dumps({"id": "zed", "review": review}))
    return path


def test_the_schema_documents_the_review_section() -> None:
    schema = agent_json_schema()
    assert "review" in schema["properties"]
    rules = schema["$defs"]["ReviewRules"]["properties"]
    assert set(rules) >= {"kinds", "reply_conditions", "trade_above_sol", "first_posts", "expire_minutes", "on_expire"}
    assert rules["kinds"]["items"]["enum"] == ["posts", "replies", "quotes", "trade_announcements"]


@pytest.mark.parametrize(("review", "expected"), [
    ({"kinds": ["posts", "tweets"]}, 'review.kinds[1]'),
    ({"kinds": ["replies"], "on_expire": "send"}, 'on_expire "send" is only allowed for low-risk kinds'),
    ({"trade_above_sol": 1, "on_expire": "send"}, "trades (trade_above_sol)"),
    ({"trade_above_sol": -1}, "review.trade_above_sol"),
    ({"expire_minutes": 0}, "review.expire_minutes"),
    ({"reply_conditions": ["stranger"]}, 'reply_conditions apply only with "replies" in kinds'),
    ({"on_expire": "later"}, "review.on_expire"),
])
def test_agents_validate_names_each_wrong_review_field(tmp_path: Path, review: dict[str, Any], expected: str) -> None:
    problems, _ = check_files([agent_file(tmp_path, review)])
    assert problems and expected in problems[0], problems
    assert problems[0].startswith(str(tmp_path / "zed.json"))


def test_absent_review_means_nothing_waits_and_low_risk_send_is_allowed(tmp_path: Path) -> None:
    assert parse_agent_config({"id": "zed"}).review is None
    rules = parse_agent_config({"id": "zed", "review": {"kinds": ["posts", "trade_announcements"],
                                                       "expire_minutes": 60, "on_expire": "send"}}).review
    assert rules is not None and rules.on_expire == "send"


def test_review_default_is_parsed_with_errors_that_name_the_variable() -> None:
    assert parse_default("") is None
    rules = parse_default('{"kinds": ["posts", "replies"], "first_posts": 5}')
    assert rules is not None and rules.first_posts == 5
    with pytest.raises(ConfigError, match="REVIEW_DEFAULT: invalid JSON"):
        parse_default("{kinds: posts}")
    with pytest.raises(ConfigError, match=r"REVIEW_DEFAULT: first_posts"):
        parse_default('{"first_posts": -2}')


@pytest.mark.parametrize(("spec", "category"), [
    (ActionSpec("post:a:1", "a", "post", {"text": "hi"}), "posts"),
    (ActionSpec("post:a:2", "a", "thread", {"parts": ["a", "b"]}), "posts"),
    (ActionSpec("reply:a:9", "a", "reply", {"text": "hi", "reply_to": "9"}), "replies"),
    (ActionSpec("reply:a:8", "a", "thread", {"parts": ["a", "b"], "reply_to": "8"}), "replies"),
    (ActionSpec("quote:a:7", "a", "quote", {"text": "hi", "tweet_id": "7"}), "quotes"),
    (ActionSpec("tradepost:a:trade:a:1", "a", "post", {"text": "bought"}), "trade_announcements"),
    (ActionSpec("trade:a:1", "a", "trade", {"input": "SOL", "output": "BONK", "amount": 0.1}), "trades"),
    (ActionSpec("like:a:1", "a", "like", {"tweet_id": "1"}), None),
])
def test_every_action_has_its_review_category(spec: ActionSpec, category: str | None) -> None:
    assert category_of(spec) == category


@pytest.fixture
async def gate_and_agent(database: Database, virtual_clock: Any):
    def make(review: dict[str, Any] | None, default: dict[str, Any] | None = None) -> tuple[ReviewGate, AgentRuntime]:
        config = parse_agent_config({"id": "tess", **({"review": review} if review is not None else {})})
        agent = AgentRuntime(config=config, social=None, llm=None)  # type: ignore[arg-type]
        gate = ReviewGate(AgentServices(db=database, clock=virtual_clock),
                          ReviewRules.model_validate(default) if default else None)
        return gate, agent
    return make


def trade(amount: float, token_in: str = "SOL", **extra: Any) -> ActionSpec:
    return ActionSpec(f"trade:tess:{amount}", "tess", "trade",
                      {"input": token_in, "output": "BONK", "amount": amount, **extra})


async def held(gate: ReviewGate, agent: AgentRuntime, *specs: ActionSpec, event_type: str = "trade.due") -> list[str]:
    hr = await gate.apply(Event(event_type, "tess"), agent, HandlerResult(actions=list(specs)))
    return [a.key for a in hr.actions if a.review is not None]


async def test_trades_above_the_size_wait_smaller_ones_go(gate_and_agent: Any) -> None:
    gate, agent = gate_and_agent({"trade_above_sol": 0.5})
    assert await held(gate, agent, trade(0.4), trade(0.5), trade(0.6)) == ["trade:tess:0.6"]
    spec = trade(2.0, unit="sol", **{"input": "BONK"})
    assert await held(gate, agent, spec) == [spec.key]  # sized in SOL, whatever is sold
    assert spec.review is not None and spec.review["reasons"] == ["trade of 2 SOL above 0.5 SOL"]
    unknown = trade(1000.0, "BONK")  # no trader to value it: held, never waved through
    assert await held(gate, agent, unknown) == [unknown.key]
    assert await held(gate, agent, trade(5.0), event_type="trade.manual") == []  # an operator's own trade


async def test_kinds_not_listed_go_and_the_default_applies_only_without_a_section(gate_and_agent: Any) -> None:
    post = ActionSpec("post:tess:1", "tess", "post", {"text": "hello"})
    quote = ActionSpec("quote:tess:1", "tess", "quote", {"text": "look", "tweet_id": "5"})
    gate, agent = gate_and_agent({"kinds": ["quotes"]}, default={"kinds": ["posts"]})
    assert await held(gate, agent, post, quote, event_type="interact.due") == ["quote:tess:1"]
    gate, agent = gate_and_agent(None, default={"kinds": ["posts"]})
    post2 = ActionSpec("post:tess:2", "tess", "post", {"text": "hello"})
    assert await held(gate, agent, post2, event_type="post.due") == ["post:tess:2"]
    assert await held(gate, agent, ActionSpec("post:tess:3", "tess", "post", {"text": "x"}),
                      event_type="post.manual") == []
    gate, agent = gate_and_agent(None)
    assert await held(gate, agent, ActionSpec("post:tess:4", "tess", "post", {"text": "x"}),
                      event_type="post.due") == []  # no rules at all: today's behaviour
