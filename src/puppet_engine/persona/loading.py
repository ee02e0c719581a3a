"""Loading agent files: JSON text or a dict in, a validated :class:`LoadedAgent` (or every problem) out.

Problems are collected across files (duplicate ids included) and raised together as one
:class:`~puppet_engine.errors.AgentConfigError`; warnings (unknown fields, advice about
credentials) never fail a file. A secret sent back as ``"***"`` keeps the value it had.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from puppet_engine.errors import AgentConfigError
from puppet_engine.persona.model import AgentConfig
from puppet_engine.persona.problems import (
    PLACEHOLDER,
    json_error_problem,
    translate_validation_error,
    unknown_field_warnings,
)
from puppet_engine.persona.sections import LLMConfig, SolanaIntegration, TwitterCredentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedAgent:
    """A validated agent file: its config, where it came from, and any warnings."""

    config: AgentConfig
    source: str
    warnings: list[str] = field(default_factory=list)
    sha: str | None = None  # sha256 of the file's bytes (an edit of the file changes it)


def _restore_placeholders(data: dict[str, Any], previous: AgentConfig | None) -> dict[str, Any]:
    """``"***"`` (as sent back by the API) means "keep the secret already configured"."""
    data = dict(data)
    for block, model in (("twitter_credentials", TwitterCredentials), ("solana_integration", SolanaIntegration),
                         ("llm_config", LLMConfig)):
        section = data.get(block)
        if not isinstance(section, dict):
            continue
        section = dict(section)
        old = getattr(previous, block, None) if previous is not None else None
        for name, info in model.model_fields.items():
            if "SecretStr" not in str(info.annotation):
                continue
            key = info.alias or name
            if section.get(key) == PLACEHOLDER or section.get(name) == PLACEHOLDER:
                kept = getattr(old, name, None) if old is not None else None
                if block == "llm_config" and not _same_url(section.get("base_url"), getattr(old, "base_url", None)):
                    kept = None  # a kept LLM key never follows a new base_url: it must be given again
                section.pop(name, None)
                section[key] = kept.get_secret_value() if isinstance(kept, SecretStr) else None
        data[block] = section
    return data


def _same_url(new: Any, old: str | None) -> bool:
    return (new.strip() if isinstance(new, str) and new.strip() else None) == old


def _validate(data: Any, source: str) -> LoadedAgent:
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise AgentConfigError(translate_validation_error(exc, source, AgentConfig)) from None
    config._source = source
    warnings = unknown_field_warnings(config, source)
    warnings += _advice(config, source)
    return LoadedAgent(config=config, source=source, warnings=warnings)


def _advice(config: AgentConfig, source: str) -> list[str]:
    notes = []
    creds = config.twitter_credentials
    if creds is not None and creds.password_login:
        notes.append(f"{source}: twitter_credentials.username/password: logging in with a password is not "
                     "supported (X suspends accounts that log in with a password automatically), so these "
                     "fields are ignored; give the agent API keys instead (twitter_credentials.apiKey, "
                     "apiKeySecret, accessToken, accessTokenSecret, or TWITTER_*_<ID>). Under simulate and "
                     "--sandbox-url the agent gets a sandbox account")
    if creds is not None:
        given = [creds.api_key, creds.api_key_secret, creds.access_token, creds.access_token_secret]
        if any(given) and not all(given):
            notes.append(f"{source}: twitter_credentials: only some of apiKey, apiKeySecret, accessToken, "
                         "accessTokenSecret are set; the agent cannot post with them")
    sol = config.solana_integration
    if sol is not None and sol.private_key is not None:
        notes.append(f"{source}: solana_integration.private_key: a key in the file works, but an environment "
                     "variable (SOLANA_PRIVATE_KEY_<ID>) keeps it out of version control")
    return notes


def parse_agent(data: Any, source: str = "<api>", previous: AgentConfig | None = None) -> LoadedAgent:
    """Validate a config dict (e.g. from the API's PUT), keeping the warnings.

    A secret sent as ``"***"`` (what :meth:`AgentConfig.public_dict` shows) keeps the
    value ``previous`` had, so a config can round-trip through the API unchanged.
    """
    if isinstance(data, dict):
        data = _restore_placeholders(data, previous)
    return _validate(data, source)


def parse_agent_config(data: Any, source: str = "<api>", previous: AgentConfig | None = None) -> AgentConfig:
    """:func:`parse_agent` without the warnings (they are logged)."""
    loaded = parse_agent(data, source, previous)
    for warning in loaded.warnings:
        log.warning("agent config: %s", warning)
    return loaded.config


def _read(path: Path) -> LoadedAgent:
    source = str(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgentConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise AgentConfigError([f"{source}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentConfigError([json_error_problem(source, exc)]) from None
    except RecursionError:
        raise AgentConfigError([f"{source}: invalid JSON: nested too deeply"]) from None
    return dataclasses.replace(_validate(data, source), sha=hashlib.sha256(raw).hexdigest())


def load_agent_file(path: str | Path) -> LoadedAgent:
    """Load and validate one agent file; raises ``AgentConfigError`` listing every problem."""
    return _read(Path(path))


def _load_many(paths: Iterable[Path]) -> tuple[list[LoadedAgent], list[str]]:
    loaded: list[LoadedAgent] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            agent = _read(path)
        except AgentConfigError as exc:
            problems += exc.problems
            continue
        first = seen.get(agent.config.id)
        if first is not None:
            problems.append(f'{agent.source}: id: duplicate agent id "{agent.config.id}", already defined in {first}')
            continue
        seen[agent.config.id] = agent.source
        loaded.append(agent)
    return loaded, problems


def load_agents(directory: str | Path) -> list[LoadedAgent]:
    """Load every ``*.json`` in ``directory`` (sorted), collecting all problems before raising."""
    root = Path(directory)
    if not root.is_dir():
        raise AgentConfigError([f"{root}: agents directory not found"])
    loaded, problems = _load_many(sorted(root.glob("*.json")))
    if problems:
        raise AgentConfigError(problems)
    for agent in loaded:
        for warning in agent.warnings:
            log.warning("agent config: %s", warning)
    return loaded


def load_agents_dir(directory: str | Path) -> list[AgentConfig]:
    """Configs of every ``*.json`` in ``directory``; warnings are dropped (use :func:`load_agents`)."""
    return [agent.config for agent in load_agents(directory)]


def validate_files(paths: Iterable[str | Path]) -> list[str]:
    """Problems found in these files (duplicate ids included); an empty list means all valid."""
    return _load_many(Path(p) for p in paths)[1]


def check_files(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of these files: problems make a file invalid, warnings do not."""
    loaded, problems = _load_many(Path(p) for p in paths)
    return problems, [warning for agent in loaded for warning in agent.warnings]


def agent_json_schema() -> dict[str, Any]:
    """JSON Schema of an agent file, for editor completion (``"$schema"`` in the file)."""
    schema = AgentConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Puppet Engine agent"
    return schema
