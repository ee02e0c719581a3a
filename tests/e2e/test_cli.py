"""The command line: agent validation exit codes and a simulated day of the example agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from puppet_engine.cli import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "agents").glob("*.json"))


def test_validate_accepts_the_examples_and_names_every_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["agents", "validate", *map(str, EXAMPLES)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.json"
    data = json.loads(EXAMPLES[0].read_text())
    data["behavior"]["post_frequency"]["min_hours_between_posts"] = "soon"
    data["behavior"]["interaction_patterns"]["reply_probability"] = 1.5
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["agents", "validate", str(bad)])
    assert result.exit_code == 1
    assert f'{bad}: behavior.post_frequency.min_hours_between_posts: expected a number ≥ 0, got "soon"' in result.output
    assert "behavior.interaction_patterns.reply_probability" in result.output


def test_schema_is_json_schema() -> None:
    result = CliRunner().invoke(app, ["agents", "schema"])
    schema = json.loads(result.output)
    assert schema["type"] == "object" and "behavior" in schema["properties"]


def test_simulated_day_of_the_examples_matches_their_gaps(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(EMBEDDER="hashing", DATABASE_URL=f"sqlite:///{tmp_path / 'unused.db'}")
    out = subprocess.run(
        [sys.executable, "-m", "puppet_engine.cli", "simulate", "--agents", str(REPO / "agents"),
         "--hours", "24", "--seed", "5", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["virtual_hours"] == 24
    gaps = {}
    for path in EXAMPLES:
        data = json.loads(path.read_text())
        freq = data["behavior"]["post_frequency"]
        gaps[data["id"]] = (freq["min_hours_between_posts"], freq["max_hours_between_posts"])
    assert set(report["agents"]) == set(gaps)
    for agent_id, (lo, hi) in gaps.items():
        counts = report["agents"][agent_id]
        assert int(24 // hi) <= counts["posts"] <= int(24 // lo) + 1, (agent_id, counts)
        assert counts["failed_events"] == 0
        assert set(counts) >= {"posts", "replies", "trades", "events", "failed_events"}
