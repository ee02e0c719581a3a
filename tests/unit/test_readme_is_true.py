"""The README documents every setting and every command the CLI offers."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from puppet_engine.cli import app
from puppet_engine.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_environment_variable_is_documented() -> None:
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def test_every_cli_command_is_mentioned() -> None:
    root = get_command(app)
    names = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        names += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    missing = [n for n in names if f"puppet-engine {n}" not in README]
    assert missing == []


def test_the_two_commands_lead() -> None:
    head = README[: README.index("## What you see")]
    assert "make run" in head and "make test" in head
