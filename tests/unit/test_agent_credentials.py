"""``twitter_credentials`` as the original format's users wrote it: API keys, placeholders,
and the scraper login (username/password) that is not supported and said so once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from puppet_engine.cli import app
from puppet_engine.persona import load_agents, parse_agent

SCRAPER = {"id": "scraper", "name": "Scraper",
           "twitter_credentials": {"username": "scraper_bot", "password": "hunter2-secret", "email": "s@example.com"}}


def test_a_password_login_is_one_clear_warning_and_never_kept() -> None:
    loaded = parse_agent(SCRAPER, source="agents/scraper.json")
    [warning] = loaded.warnings
    assert warning.startswith("agents/scraper.json: twitter_credentials.username/password: ")
    assert "password is not supported" in warning and "suspends" in warning and "apiKey" in warning
    assert "unknown field" not in warning and "hunter2" not in warning
    creds = loaded.config.twitter_credentials
    assert creds is not None and creds.password_login and not creds.has_user_context
    public = json.dumps(loaded.config.public_dict())
    assert "hunter2" not in public and "scraper_bot" not in public and "hunter2" not in repr(loaded.config)


def test_api_keys_beside_a_login_are_used_and_the_login_still_warned() -> None:
    keys = {"apiKey": "k", "apiKeySecret": "ks", "accessToken": "1-t", "accessTokenSecret": "ts"}
    loaded = parse_agent({"id": "both", "twitter_credentials": {**keys, "username": "u", "password": "p"}})
    assert loaded.config.twitter_credentials is not None and loaded.config.twitter_credentials.has_user_context
    assert len(loaded.warnings) == 1 and "password" in loaded.warnings[0]
    assert not parse_agent({"id": "plain", "twitter_credentials": keys}).warnings


def test_the_source_of_a_config_is_kept_for_error_messages(tmp_path: Path) -> None:
    (tmp_path / "scraper.json").write_text(json.dumps(SCRAPER))
    [agent] = load_agents(tmp_path)
    assert agent.config.source == str(tmp_path / "scraper.json")
    assert parse_agent({"id": "x"}, source="PUT /agents/x/config").config.source == "PUT /agents/x/config"


def test_validate_and_load_print_the_warning_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "scraper.json"
    path.write_text(json.dumps(SCRAPER))
    result = CliRunner().invoke(app, ["agents", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning:") == 1 and "password is not supported" in result.output
    assert "hunter2" not in result.output and "1 agent file(s) valid" in result.output
    with caplog.at_level(logging.WARNING):
        load_agents(tmp_path)
    assert [r.getMessage().count("password is not supported") for r in caplog.records] == [1]
