"""Exact and what-if replays of a simulated day: the current code, fed what the agents read and
were answered, decides the same; a changed config or code says where it decides otherwise; a
what-if writes new text offline and sends nothing anywhere."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from puppet_engine.agents.behaviors import PostingBehavior, default_behaviors
from puppet_engine.agents.runtime import AgentRuntime, AgentServices
from puppet_engine.cli import app
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.errors import ConfigError
from puppet_engine.events import Event, HandlerResult
from puppet_engine.persona import parse_agent_config
from puppet_engine.replay import ReplayRequest, replay
from puppet_engine.replay.command import DIFFERENCES_EXIT
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage import Database
from puppet_engine.storage.repos import recordings
from puppet_engine.storage.repos.recordings import RecordCodec

START = 1_767_225_600.0  # the virtual clock's first moment
DAY = 24 * 3600.0
SECRET = "replay-test-encryption-key-0123456789"


def persona(agent_id: str, **behavior: Any) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
            "personality": {"traits": ["curious"], "interests": ["validators", "tea"], "speaking_style": "plain"},
            "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2},
                         "interaction_patterns": {"reply_probability": 0.5, **behavior}}}


def simulate_into(path: Path, hours: float, agents: list[str], **settings: Any) -> str:
    url = f"sqlite:///{path}"
    clock = VirtualClock()
    options = EngineOptions(agents=[parse_agent_config(persona(a)) for a in agents], clock=clock, seed=3,
                            sandbox=Sandbox(SandboxConfig(seed=3, crowd_rate=0.2), clock=clock))
    config = Settings(database_url=url, embedder="hashing", _env_file=None, **settings)  # type: ignore[call-arg]
    asyncio.run(simulate(config, options, hours))
    return url


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated day of two agents talking with the crowd and each other, recorded."""
    path = tmp_path_factory.mktemp("replay") / "day.db"
    simulate_into(path, 24, ["ada", "bob"])
    return path


@pytest.fixture
def day_url(day: Path, tmp_path: Path) -> str:
    """A copy of the day for one test (some change it)."""
    copy = tmp_path / "day.db"
    shutil.copy(day, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket connection and name lookup fails: whatever tries to reach a server breaks."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("the network is refused in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def run_cli(args: list[str], url: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(app, ["replay", *args])


async def counts(url: str) -> tuple[int, int]:
    """(outbox rows, recordings) of a database: what a replay must leave as it found it."""
    db = Database(url)
    try:
        async with db.connect() as conn:
            actions = (await conn.exec_driver_sql("SELECT count(*) FROM actions")).scalar()
            recorded = (await conn.exec_driver_sql("SELECT count(*) FROM recordings")).scalar()
        return int(actions or 0), int(recorded or 0)
    finally:
        await db.close()


def test_exact_replay_of_a_simulated_day_reports_no_differences(day_url: str, no_network: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(["ada", "--from", str(START), "--to", str(START + DAY), "--json"], day_url, monkeypatch)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["differences"] == [] and report["events"] > 300, {k: report[k] for k in ("events", "llm")}
    sent = report["side_by_side"]
    kinds = {a["kind"] for e in sent for a in e["then"]["actions"]}
    assert {"post", "reply"} <= kinds and all(e["then"] == e["now"] for e in sent)
    assert report["llm"]["recorded"] == report["llm"]["calls"] > 20 and report["llm"]["missing"] == 0
    assert report["llm"]["changed_requests"] == 0  # the same prompts, recalled memories included
    assert report["virtual_hours"] > 23 and report["not_replayed"] == {}
    # The same persona with --llm recorded: every request matches a recorded one.
    result = run_cli(["ada", "--from", str(START), "--to", str(START + DAY), "--llm", "recorded", "--json"],
                     day_url, monkeypatch)
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["what_if"] and again["llm"]["generated"] == 0 and again["llm"]["recorded"] == report["llm"]["calls"]


def test_a_config_change_is_reported(day_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_reply_unless_asked() -> None:
        db = Database(day_url)
        stored = await recordings.stored_config(db, "ada")
        assert stored is not None
        stored["behavior"]["interaction_patterns"]["reply_probability"] = 0.0
        async with db.transaction() as conn:
            await conn.exec_driver_sql("UPDATE agents SET config = ? WHERE id = 'ada'", (json.dumps(stored),))
        await db.close()

    asyncio.run(never_reply_unless_asked())
    result = run_cli(["ada", "--from", "2026-01-01T00:00", "--to", "2026-01-02T00:00"], day_url, monkeypatch)
    assert result.exit_code == DIFFERENCES_EXIT, result.output
    diffs = [line for line in result.stdout.splitlines() if line.startswith("DIFF ")]
    not_chosen = [d for d in diffs if " mention.received " in d and d.endswith(
        "reply sent then, not now (skip:probability)")]
    # Fewer replies also change what later repeat checks compare with (the last 20 posts reach
    # further back), so a few later drafts are refused too; nothing new is ever sent.
    assert len(not_chosen) >= len(diffs) / 2, diffs
    assert not any("now, not sent then" in d for d in diffs), diffs


async def test_an_injected_code_change_is_reported(day_url: str) -> None:
    class Silent(PostingBehavior):
        """A regression: scheduled posts are skipped."""

        async def on_post_due(self, event: Event, agent: AgentRuntime) -> HandlerResult:
            hr = await super().on_post_due(event, agent)
            return HandlerResult(result={"skipped": "a bug"}, follow_ups=hr.follow_ups, state=hr.state)

    def behaviors(services: AgentServices) -> list:
        return [Silent(services) if isinstance(b, PostingBehavior) else b for b in default_behaviors(services)]

    db = Database(day_url)
    try:
        config = parse_agent_config(persona("bob"))
        report = await replay(db, RecordCodec(), ReplayRequest("bob", START, START + DAY, config, behaviors=behaviors))
    finally:
        await db.close()
    diffs = report.differences
    assert diffs and {d.run.event.type for d in diffs} == {"post.due"}, [
        (d.run.event.type, d.difference) for d in diffs if d.run.event.type != "post.due"]
    assert all(d.difference == "post sent then, not now (skipped: a bug)" for d in diffs)
    posts_then = sum(1 for e in report.events if e.run.event.type == "post.due" and e.then.actions)
    assert len(diffs) == posts_then > 5


def test_what_if_runs_offline_and_sends_nothing(day_url: str, tmp_path: Path, no_network: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    changed = persona("ada", reply_probability=1.0)
    changed["personality"]["interests"] = ["sourdough", "rivers"]
    changed["style_guide"] = {"topics_to_avoid": ["validators"]}
    path = tmp_path / "ada-changed.json"
    path.write_text(json.dumps(changed))
    before = asyncio.run(counts(day_url))
    for llm in ("sandbox", "recorded"):
        result = run_cli(["ada", "--from", str(START), "--to", str(START + 12 * 3600), "--agent-file", str(path),
                          "--llm", llm, "--json"], day_url, monkeypatch)
        assert result.exit_code == DIFFERENCES_EXIT, result.output
        report = json.loads(result.stdout)
        assert report["what_if"] and report["llm"]["mode"] == llm
        posts_now = [a["payload"] for e in report["side_by_side"] for a in e["now"]["actions"] if a["kind"] == "post"]
        assert posts_now and not any("validators" in p["text"].lower() for p in posts_now)
        replies_now = sum(1 for e in report["side_by_side"] if any(a["kind"] == "reply" for a in e["now"]["actions"]))
        replies_then = sum(1 for e in report["side_by_side"] if any(a["kind"] == "reply" for a in e["then"]["actions"]))
        assert replies_now > replies_then  # answers every mention now
        assert report["llm"]["generated"] > 0
    assert asyncio.run(counts(day_url)) == before  # nothing queued, sent or recorded


def test_live_llm_shows_the_cost_first_and_stops_at_max_calls(day_url: str, tmp_path: Path, no_network: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ada.json"
    path.write_text(json.dumps(persona("ada")))  # llm_provider "fake": the live provider needs no server
    result = run_cli(["ada", "--from", str(START), "--to", str(START + 6 * 3600), "--agent-file", str(path),
                      "--llm", "live", "--max-calls", "2", "--yes", "--json"], day_url, monkeypatch)
    assert "--llm live: up to 2 provider calls, estimated $" in result.stderr
    report = json.loads(result.stdout)
    assert report["llm"]["generated"] == 2
    skipped = [e for e in report["side_by_side"] if "max-calls 2 reached" in (e["now"]["verdict"] or "")]
    assert skipped, report["side_by_side"][:3]
    refused = run_cli(["ada", "--from", str(START), "--to", str(START + 3600), "--agent-file", str(path),
                       "--llm", "live"], day_url, monkeypatch)
    assert refused.exit_code == 1 and "estimated $" in refused.stderr  # declined at the prompt: nothing ran


def test_recorded_prompts_are_encrypted_at_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.db"
    url = simulate_into(path, 4, ["ada"], memory_encryption_key=SECRET)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("secret.db*"))
    assert raw.count(b"opinions of its own") == 0  # words of every system prompt
    assert b"## Persona" not in raw
    plain = asyncio.run(counts(url))[1]
    assert plain > 10
    result = run_cli(["ada", "--from", str(START), "--to", str(START + DAY)], url, monkeypatch,
                     {"MEMORY_ENCRYPTION_KEY": ""})
    assert result.exit_code == 1 and "encrypted: set MEMORY_ENCRYPTION_KEY" in result.stderr
    result = run_cli(["ada", "--from", str(START), "--to", str(START + DAY)], url, monkeypatch,
                     {"MEMORY_ENCRYPTION_KEY": "another-key-of-the-right-length"})
    assert result.exit_code == 1 and "does not open with this MEMORY_ENCRYPTION_KEY" in result.stderr
    result = run_cli(["ada", "--from", str(START), "--to", str(START + DAY)], url, monkeypatch,
                     {"MEMORY_ENCRYPTION_KEY": SECRET})
    assert result.exit_code == 0, result.output
    assert "0 decision(s) differ" in result.stdout


async def test_prune_recordings_keeps_the_recent_ones(day_url: str) -> None:
    db = Database(day_url)
    try:
        before = await recordings.size_by_agent(db)
        cut = START + 12 * 3600
        removed = await recordings.prune_recordings(db, cut)
        after = await recordings.size_by_agent(db)
        assert removed > 0 and sum(n for n, _ in after.values()) == sum(n for n, _ in before.values()) - removed
        first = await recordings.first_event_at(db, "ada")
        assert first is not None and first >= cut
        with pytest.raises(ConfigError, match="oldest kept recording starts at"):
            await replay(db, RecordCodec(), ReplayRequest("ada", START, cut - 1, parse_agent_config(persona("ada"))))
        late = await replay(db, RecordCodec(), ReplayRequest("ada", cut, START + DAY, parse_agent_config(persona("ada"))))
        assert late.events and late.differences == []
    finally:
        await db.close()


def test_bad_requests_say_what_is_wrong(day_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli(["ada", "--from", "yesterday", "--to", str(START)], day_url, monkeypatch)
    assert result.exit_code == 1 and "--from: 'yesterday' is not a time" in result.stderr
    result = run_cli(["ada", "--from", str(START + 10), "--to", str(START)], day_url, monkeypatch)
    assert result.exit_code == 1 and "must be after --from" in result.stderr
    result = run_cli(["ada", "--from", str(START), "--to", str(START + 9), "--llm", "psychic"], day_url, monkeypatch)
    assert result.exit_code == 1 and "expected one of live, recorded, sandbox" in result.stderr
    result = run_cli(["zed", "--from", str(START), "--to", str(START + 9)], day_url, monkeypatch)
    assert result.exit_code == 1 and "no agent 'zed'" in result.stderr
