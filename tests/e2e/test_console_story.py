"""The console of ``run`` tells what the agents do, one line each; JSON keeps every field.

The engine runs a few virtual hours against the in-process sandbox with logging set up as
``run`` sets it up, and the test reads what was printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.observability.logging import configure_logging
from puppet_engine.persona import parse_agent_config
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.serving import free_port
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate

STORY = re.compile(r"^\d\d:\d\d:\d\d  (?P<agent>\S+)\s+(?P<what>posted|replied|quoted|liked|traded|skipped|"
                   r"start failed|started|stopped)\s*(?P<detail>.*)$")


def persona(agent_id: str, **patterns: float) -> dict:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
        "personality": {"traits": ["curious"], "interests": ["validators", "tea", "old maps"],
                        "speaking_style": "plain"},
        "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 2},
                     "interaction_patterns": {"reply_probability": 1.0, **patterns}},
    }



async def _run(url: str, *agents: dict, hours: float = 4, budget: int = 0, fault: FaultSpec | None = None) -> None:
    clock = VirtualClock()
    box = Sandbox(SandboxConfig(seed=5, crowd_rate=0.3), clock=clock)
    if fault is not None:
        box.faults.add(fault)
    settings = Settings(database_url=url, embedder="hashing", llm_daily_token_budget=budget,
                        _env_file=None)  # type: ignore[call-arg]
    options = EngineOptions(agents=[parse_agent_config(a) for a in agents], clock=clock, seed=5, sandbox=box)
    await simulate(settings, options, hours)


async def test_console_shows_one_story_line_per_thing_done_and_no_library_chatter(sqlite_url, log_stream) -> None:
    configure_logging("INFO", "console", [], stream=log_stream)
    await _run(sqlite_url, persona("ada", like_probability=1.0, quote_tweet_probability=0.5), persona("bo"))
    out = log_stream.getvalue().splitlines()
    stories = [m for line in out if (m := STORY.match(line))]
    posted = [m for m in stories if m["what"] == "posted"]
    assert {m["agent"] for m in posted} == {"ada", "bo"}, out[:40]
    assert all(re.fullmatch(r'".+"( \(\+\d+ more in the thread\))?', m["detail"]) for m in posted), posted
    assert any(m["what"] == "replied" and m["detail"].startswith('"@') for m in stories)
    assert any(m["what"] == "liked" and m["agent"] == "ada" for m in stories)
    assert {m["agent"] for m in stories if m["what"] == "started"} == {"ada", "bo"}
    assert not [line for line in out if "alembic" in line or "HTTP Request" in line or "action_done" in line]


async def test_console_says_why_a_post_was_skipped_and_why_a_start_failed(sqlite_url, log_stream) -> None:
    configure_logging("INFO", "console", [], stream=log_stream)
    await _run(sqlite_url, persona("ada"), budget=1)
    skipped = [m for line in log_stream.getvalue().splitlines() if (m := STORY.match(line)) and m["what"] == "skipped"]
    assert skipped and all(m["agent"] == "ada" and "daily tokens" in m["detail"] for m in skipped), skipped

    log_stream.truncate(0)
    log_stream.seek(0)
    await _run(sqlite_url.replace("engine.db", "second.db"), persona("cy"), hours=1,
               fault=FaultSpec(service="x", method="POST", path="/sandbox/x/accounts", status=401, count=50))
    failed = [m for line in log_stream.getvalue().splitlines() if (m := STORY.match(line))
              and m["what"] == "start failed"]
    assert failed and failed[0]["agent"] == "cy" and "401" in failed[0]["detail"], log_stream.getvalue()
    assert "/sandbox/x/accounts" in failed[0]["detail"]


async def test_debug_brings_the_library_lines_back(sqlite_url, log_stream) -> None:
    configure_logging("DEBUG", "console", [], stream=log_stream)
    await _run(sqlite_url, persona("ada"), hours=0.5)
    out = log_stream.getvalue()
    assert "HTTP Request" in out and "action_done" in out


async def test_json_keeps_every_field_and_the_outbox_lines(sqlite_url, log_stream) -> None:
    configure_logging("INFO", "json", [], stream=log_stream)
    await _run(sqlite_url, persona("ada"), hours=3)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    posted = [x for x in lines if x["event"] == "posted"]
    assert posted, lines[:20]
    first = posted[0]
    assert first["logger"] == "puppet_engine.story" and first["agent_id"] == "ada" and first["text"]
    assert first["action_key"].startswith("post:ada:") and first["external_id"] and first["timestamp"]
    assert first["summary"] == f'"{first["text"]}"' or first["kind"] == "thread"
    done = {x["action_key"] for x in lines if x["event"] == "action_done"}
    assert first["action_key"] in done  # the collectors' line is still there, with all its fields
    assert not [x for x in lines if x.get("logger", "").startswith(("alembic", "httpx"))]


def test_run_prints_a_start_up_summary_then_the_story(tmp_path) -> None:
    """``puppet-engine run`` itself, as ``make run`` starts it, read from its console."""
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_KEYS"))}
    env.update(EMBEDDER="hashing", LOG_LEVEL="INFO", LOG_FORMAT="console", SANDBOX_CROWD_RATE="30")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "puppet_engine.cli", "run", "--agents", str(repo / "agents"), "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path / 'run.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and not any(
                (m := STORY.match(line.rstrip())) and m["what"] in ("posted", "replied") for line in list(out)):
            assert proc.poll() is None, "".join(out)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=5)
    lines = [line.rstrip("\n") for line in out]
    text = "\n".join(lines)
    assert "Puppet Engine: 3 of 3 agent(s) running: coby, ledger, nova" in text, text
    assert f"API and dashboard http://127.0.0.1:{port}" in text and str(tmp_path / ".puppet_api_key") in text
    assert "nothing leaves this machine" in text
    said = [m for line in lines if (m := STORY.match(line)) and m["what"] in ("posted", "replied")]
    assert said and said[0]["agent"] in {"coby", "ledger", "nova"} and said[0]["detail"].startswith('"'), text
    assert not [line for line in lines if "alembic" in line or "HTTP Request" in line or "action_done" in line
                or "Loading weights" in line], text
