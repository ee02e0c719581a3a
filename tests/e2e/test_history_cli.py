"""``puppet-engine history``: the state at a moment and the timeline of a simulated stretch, from its database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from puppet_engine.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_history_at_a_moment_and_between_two_of_a_simulated_morning(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'day.db'}"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(EMBEDDER="hashing")
    subprocess.run([sys.executable, "-m", "puppet_engine.cli", "simulate", "--agents", str(REPO / "agents"),
                    "--hours", "6", "--seed", "5", "--json", "--database-url", url],
                   capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=True)
    monkeypatch.setenv("EMBEDDER", "hashing")  # the CLI below runs in this process
    runner = CliRunner()
    text = runner.invoke(app, ["history", "nova", "--at", "2026-01-01T03:12", "--database-url", url])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == "nova at 2026-01-01T03:12:00Z"
    assert any(line.startswith("  mood ") for line in lines) and any("next post" in line for line in lines)
    assert any(line.startswith("  config      version 1 (file") for line in lines)

    as_json = runner.invoke(app, ["history", "nova", "--at", "2026-01-01T03:12:00+00:00", "--query", "tea",
                                  "--json", "--database-url", url])
    then = json.loads(as_json.output)
    assert then["known"] and then["at"] == "2026-01-01T03:12:00Z"
    assert then["memories"]["count"] > 0 and len(then["memories"]["found"]) == min(5, then["memories"]["count"])
    assert then["state"]["mood"] and then["schedule"]["next_post_at"] > then["at"]

    story = runner.invoke(app, ["history", "nova", "--from", "2026-01-01T00:00", "--to", "2026-01-01T06:00",
                                "--database-url", url])
    assert story.exit_code == 0, story.output
    kinds = {line.split()[1] for line in story.output.splitlines()[1:] if line.strip()}
    assert {"received", "decided", "sent", "changed"} <= kinds, story.output[:2000]
    assert all(line[:20].endswith("Z") for line in story.output.splitlines()[1:] if line.strip())
    story_json = json.loads(runner.invoke(app, ["history", "nova", "--from", "2026-01-01T00:00", "--to",
                                                "2026-01-01T06:00", "--json", "--database-url", url]).output)
    assert len(story_json["entries"]) == len(story.output.splitlines()) - 1

    bad = runner.invoke(app, ["history", "nova", "--at", "tomorrow-ish", "--database-url", url])
    assert bad.exit_code == 1 and "--at" in bad.output and "tomorrow-ish" in bad.output
    both = runner.invoke(app, ["history", "nova", "--database-url", url])
    assert both.exit_code == 1 and "--at" in both.output and "--from" in both.output
