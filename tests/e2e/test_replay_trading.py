"""Trading decisions replay on the recorded market and balances: the same holds and trades as
then; with a changed persona, the trades it would make now and the risk rules' verdict on them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.replay import ReplayRequest, replay
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage import Database
from puppet_engine.storage.repos.recordings import RecordCodec

LEDGER = Path(__file__).resolve().parents[2] / "agents" / "ledger.json"
START = 1_767_225_600.0
HOURS = 12


def ledger(**trading: Any) -> dict[str, Any]:
    data = json.loads(LEDGER.read_text())
    behavior = data["behavior"]["trading_behavior"]
    if "random_probability" in trading:
        behavior["trading_frequency"]["random_probability"] = trading.pop("random_probability")
    if "tokens" in trading:
        behavior["allowed_tokens"]["always_tradable"] += trading.pop("tokens")
    data["solana_integration"]["trade_safety"].update(trading)
    return data


@pytest.fixture(scope="module")
def trading_day(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('trading') / 'day.db'}"
    clock = VirtualClock()
    options = EngineOptions(agents=[parse_agent_config(ledger())], clock=clock, seed=7,
                            sandbox=Sandbox(SandboxConfig(seed=7, crowd_rate=0.05), clock=clock))
    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    asyncio.run(simulate(settings, options, HOURS))
    return url


async def replay_with(url: str, data: dict[str, Any], what_if: bool) -> Any:
    db = Database(url)
    try:
        request = ReplayRequest("ledger", START, START + HOURS * 3600, parse_agent_config(data), what_if=what_if,
                                llm="sandbox" if what_if else "exact")
        return await replay(db, RecordCodec(), request)
    finally:
        await db.close()


async def test_trade_checks_replay_exactly(trading_day: str) -> None:
    report = await replay_with(trading_day, ledger(), what_if=False)
    checks = [e for e in report.events if e.run.event.type == "trade.due"]
    assert checks and report.not_replayed == {} and report.differences == []
    assert all(e.now.result and e.now.result.get("decision") in ("hold", "trade") for e in checks)


async def test_what_if_shows_new_trades_and_the_risk_verdicts(trading_day: str) -> None:
    bolder = ledger(random_probability=1.0, tokens=["GLITCH", "WOOF", "STRNG", "PUPPET"])
    report = await replay_with(trading_day, bolder, what_if=True)
    trades = [e for e in report.differences if e.run.event.type == "trade.due"]
    assert trades and all(e.difference.startswith("trade now, not sent then") for e in trades), trades
    for e in trades:
        [checks] = e.now.risk
        assert checks and all(c["passed"] for c in checks), checks

    capped = ledger(random_probability=1.0, tokens=["GLITCH", "WOOF", "STRNG", "PUPPET"])
    capped.setdefault("agent_kit_integration", {}).setdefault("autonomy_rules", {})["max_daily_trades"] = 0
    report = await replay_with(trading_day, capped, what_if=True)
    refused = [e for e in report.differences if e.run.event.type == "trade.due"]
    assert refused and all("refused by risk rule max_daily_trades" in (e.now.verdict() or "") for e in refused)
