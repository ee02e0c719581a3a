"""``simulate`` says why an agent did less than its file asks: skipped posts and unanswered
mentions with their most common reasons, and the error of a start that failed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from puppet_engine.cli import app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage.skips import skip_reason

COUNT_KEYS = {"posts", "replies", "trades", "events", "failed_events", "quotes", "likes"}


def persona(agent_id: str, reply_probability: float = 0.0) -> dict:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
        "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2},
                     "interaction_patterns": {"reply_probability": reply_probability}},
    }


def test_reasons_are_grouped_by_kind() -> None:
    assert skip_reason("attempt 1: too long: 57 weighted characters, the limit is 20; "
                       "attempt 2: too long: 61 weighted characters, the limit is 20"
                       ) == "too long: N weighted characters, the limit is N"
    assert skip_reason("fake: agent ada used 523 of its 100 daily tokens") == "fake: agent ada used N of its N daily tokens"
    assert skip_reason("not chosen (reply_probability)") == "not chosen (reply_probability)"


async def test_simulate_reports_skipped_posts_and_replies_with_reasons(sqlite_url: str) -> None:
    clock = VirtualClock()
    # A daily budget of one token: the first post spends it, every later one is skipped.
    settings = Settings(database_url=sqlite_url, embedder="hashing", llm_daily_token_budget=1,
                        _env_file=None)  # type: ignore[call-arg]
    options = EngineOptions(agents=[parse_agent_config(persona("ada"))], clock=clock, seed=3,
                            sandbox=Sandbox(SandboxConfig(seed=3, crowd_rate=0.2), clock=clock))
    report = (await simulate(settings, options, 12)).to_dict()
    ada = report["agents"]["ada"]
    assert set(ada) >= COUNT_KEYS and all(isinstance(ada[k], int) for k in COUNT_KEYS)
    assert ada["start_error"] is None
    assert ada["posts"] >= 1 and ada["posts_skipped"] >= 4, ada
    [top, *_] = ada["post_skip_reasons"]
    assert top["reason"] == "fake: agent ada used N of its N daily tokens" and top["count"] == ada["posts_skipped"]
    assert top["example"].startswith("fake: agent ada used ") and top["example"].endswith(" of its 1 daily tokens")
    assert ada["mentions"] >= ada["replies_skipped"] > 0, ada
    assert sum(r["count"] for r in ada["reply_skip_reasons"]) <= ada["replies_skipped"]
    assert {r["reason"] for r in ada["reply_skip_reasons"]} & {"not chosen (reply_probability)",
                                                               "fake: agent ada used N of its N daily tokens"}
    json.dumps(report)  # what --json prints


async def test_simulate_reports_a_failed_start_with_its_error(sqlite_url: str) -> None:
    clock = VirtualClock()
    box = Sandbox(SandboxConfig(seed=3), clock=clock)
    # The sandbox refuses to issue bea's X account at every try (the first start and its retries).
    box.faults.add(FaultSpec(service="x", method="POST", path="/sandbox/x/accounts", status=401, count=50))
    settings = Settings(database_url=sqlite_url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    options = EngineOptions(agents=[parse_agent_config(persona("bea"))], clock=clock, seed=3, sandbox=box)
    bea = (await simulate(settings, options, 2)).to_dict()["agents"]["bea"]
    assert "'bea'" in bea["start_error"] and "POST /sandbox/x/accounts answered 401" in bea["start_error"], bea
    assert (bea["posts"], bea["posts_skipped"], bea["post_skip_reasons"]) == (0, 0, [])
    [refusal] = box.faults.describe()
    assert refusal["hits"] > 1  # retried while the simulation ran


def test_cli_text_output_names_the_reasons(tmp_path: Path, monkeypatch) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "ada.json").write_text(json.dumps(persona("ada")))
    monkeypatch.setenv("LLM_DAILY_TOKEN_BUDGET", "1")
    monkeypatch.setenv("EMBEDDER", "hashing")
    monkeypatch.setenv("COLUMNS", "200")  # the table on one line per row
    result = CliRunner().invoke(app, ["simulate", "--agents", str(agents), "--hours", "8", "--seed", "3",
                                      "--database-url", f"sqlite:///{tmp_path / 'sim.db'}"])
    assert result.exit_code == 0, result.output
    assert "posts skipped" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("ada: ") and "scheduled post" in x)
    assert "fake: agent ada used N of its N daily tokens ×" in line and "(e.g. fake: agent ada used " in line, line
