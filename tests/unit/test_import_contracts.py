"""The import contracts in pyproject.toml hold on the real tree, and a back-edge breaks them.

``lint-imports`` runs in a subprocess with ``PYTHONPATH`` set to the tree under test, so it
reads that tree's files (grimp parses them; nothing is imported). A back-edge is shown by
copying the package to a temporary directory, adding one import, and checking the run fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def lint_imports(src: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``src`` (only ``contracts`` when given)."""
    args = ["--config", str(PYPROJECT), "--no-cache"]
    for contract in contracts:
        args += ["--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=src, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package to add back-edges to."""
    shutil.copytree(REPO / "src" / "puppet_engine", tmp_path / "puppet_engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def add_import(tree: Path, module: str, statement: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("contract", "edges"), [
    # storage reaching up into the agents
    ("layers", [("puppet_engine.storage.leases", "from puppet_engine.agents import AgentManager")]),
    # the wiring holding the engine again (the back-reference the composition root dropped)
    ("layers", [("puppet_engine.wiring", "from puppet_engine.engine import Engine")]),
    # observability reading events by import instead of through hooks
    ("layers", [("puppet_engine.observability.engine_hooks", "from puppet_engine.events import Event")]),
    # the persona model reading an agent (it is the bottom every layer reads)
    ("layers", [("puppet_engine.persona.model", "from puppet_engine.agents import AgentManager")]),
    # the persona model reaching a service of the bottom layer beside it
    ("persona", [("puppet_engine.persona.loading", "import puppet_engine.resilience")]),
    # a provider building persona prompts again (LLMProvider.generate_tweet before the content package)
    ("layers", [("puppet_engine.llm.base", "from puppet_engine.content.prompts import build_messages")]),
    # a behaviour reaching the sandbox directly
    ("sandbox", [("puppet_engine.agents.manager", "import puppet_engine.sandbox")]),
    # two sibling services importing each other (the layers contract allows either direction)
    ("acyclic", [("puppet_engine.solana.risk", "import puppet_engine.twitter.text"),
                 ("puppet_engine.twitter.text", "import puppet_engine.solana.risk")]),
    # a module circle inside one package
    ("acyclic", [("puppet_engine.storage.migrate", "from puppet_engine.storage.database import Database")]),
])
def test_a_back_edge_breaks_its_contract(tree: Path, contract: str, edges: list[tuple[str, str]]) -> None:
    assert lint_imports(tree, contract).returncode == 0  # the copy keeps it before the edit
    for module, statement in edges:
        add_import(tree, module, statement)
    result = lint_imports(tree, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout


def test_nothing_is_ignored() -> None:
    for contract in CONTRACTS:
        assert not contract.get("ignore_imports"), (contract["id"], contract.get("ignore_imports"))
    assert {c["id"] for c in CONTRACTS} == {"layers", "sandbox", "persona", "acyclic"}
