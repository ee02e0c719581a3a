"""Real users' agent files do what their authors wrote, for a simulated day.

tests/data/agents-corpus holds the original Puppet Engine's public agent files, unchanged, and
files written like users write them (fractional hours, tiny and long length settings, mints
instead of symbols, placeholder keys, a scraper login, missing sections, agent_kit_integration,
Grok agents). The whole corpus runs together for 24 virtual hours against the in-process
sandbox with a crowd mentioning the agents; then, for each file:

- it loads without "unknown field" noise for the original format's own fields, and a scraper
  login (username/password) gets one clear message;
- it starts (it polls its mentions);
- its scheduled posts are as many as its ``post_frequency`` gaps allow, never closer than the
  minimum gap (the first post comes within two minutes, each next one min..max hours later);
- with ``reply_probability`` >= 0.9 it answers most of the crowd's mentions;
- its confirmed trades stay within ``max_daily_trades`` (none when trading is off);

and nothing leaves the machine: every connection and name lookup during the run is to loopback.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from puppet_engine.engine import EngineOptions
from puppet_engine.persona import AgentConfig, load_agent_file
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, events, mentions, trades

CORPUS = Path(__file__).resolve().parents[1] / "data" / "agents-corpus"
FILES = sorted(CORPUS.glob("*.json"))
HOURS = 24.0
FIRST_POST_HOURS = 1 / 30  # next_post_at: a new agent posts within two minutes (capped by its max gap)
CROWD_RATE = 0.1  # mentions per virtual minute, as `puppet-engine simulate` does by default
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "testserver", "sandbox.local"}
# Credentials in the environment would send the run to real services: the corpus runs without them.
CREDENTIAL_PREFIXES = ("TWITTER_", "OPENAI_", "GROK_", "SOLANA_", "JUPITER_", "SANDBOX_URL", "DATABASE_URL",
                       "EMBEDDER", "MEMORY_ENCRYPTION_KEY", "LLM_FALLBACK")


@contextmanager
def no_network() -> Iterator[list[str]]:
    """Refuse, and record, every name lookup and connection to anything but loopback."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def local(host: Any) -> bool:
        host = host.decode() if isinstance(host, bytes) else str(host)
        return host in LOCAL_HOSTS or host.startswith("127.") or host.startswith("/")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not local(host):
            attempts.append(f"lookup {host}")
            raise OSError(f"the corpus test refuses network access ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not local(address[0]):
            attempts.append(f"connect {address[0]}:{address[1]}")
            raise OSError(f"the corpus test refuses network access ({address[0]})")
        return real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        yield attempts


@dataclass
class Day:
    report: dict[str, dict[str, int]]
    db_url: str
    seconds: float
    cpu_seconds: float
    network: list[str]
    guard_works: bool
    start_failures: dict[str, str]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    import asyncio

    db_url = f"sqlite:///{tmp_path_factory.mktemp('corpus') / 'corpus.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(CREDENTIAL_PREFIXES):
                mp.delenv(name)
        settings = Settings(database_url=db_url, embedder="hashing", log_level="WARNING",  # type: ignore[call-arg]
                            _env_file=None)
        with no_network() as attempts:
            with contextlib.suppress(OSError):  # the guard itself is checked, so "nothing left" is not vacuous
                socket.create_connection(("api.x.com", 443), timeout=1)
            guard_works = attempts == ["lookup api.x.com"]
            attempts.clear()
            started, cpu = time.perf_counter(), time.process_time()
            with structlog.testing.capture_logs() as logs:
                report = asyncio.run(simulate(settings, EngineOptions(agents_dir=CORPUS, seed=5), HOURS,
                                              crowd_rate=CROWD_RATE))
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    failures = {e["agent_id"]: e.get("error", "") for e in logs if e.get("event") == "agent_start_failed"}
    print(f"\ncorpus: {len(FILES)} agents, {HOURS:g} virtual hours in {seconds:.1f} s ({cpu_seconds:.1f} s CPU)")
    return Day(report.agents, db_url, seconds, cpu_seconds, list(attempts), guard_works, failures)


async def _rows(db_url: str, query: Any) -> list[Any]:
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            return list((await conn.execute(query)).all())
    finally:
        await db.close()


def rows(day: Day, query: Any) -> list[Any]:
    import asyncio

    return asyncio.run(_rows(day.db_url, query))


def post_bounds(config: AgentConfig) -> tuple[int, int, float]:
    """(fewest, most) scheduled posts in HOURS, and the minimum gap in seconds, from the file's gaps."""
    freq = config.behavior.post_frequency
    lo_gap, hi_gap = freq.min_hours_between_posts, max(freq.min_hours_between_posts, freq.max_hours_between_posts)
    first = min(FIRST_POST_HOURS, hi_gap)
    fewest = 1 + math.floor((HOURS - first) / hi_gap)
    most = 1 + (math.floor(HOURS / lo_gap) if lo_gap > 0 else 10**6)
    return fewest, most, lo_gap * 3600.0


def test_nothing_leaves_the_machine(day: Day) -> None:
    assert day.guard_works, "the network guard did not catch a lookup of api.x.com"
    assert day.network == [], f"the simulation tried to reach the network: {sorted(set(day.network))}"
    assert set(day.report) == {load_agent_file(f).config.id for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_file_loads_as_its_author_wrote_it(path: Path) -> None:
    loaded = load_agent_file(path)
    unknown = [w for w in loaded.warnings if "unknown field" in w]
    assert unknown == [], f"fields of the original format reported as unknown: {unknown}"
    raw = path.read_text()
    if '"password"' in raw:  # a scraper login: one clear message, not field-by-field noise
        about = [w for w in loaded.warnings if "password" in w.lower()]
        assert len(about) == 1, loaded.warnings


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_agent_behaves_as_its_author_asked(day: Day, path: Path) -> None:
    config = load_agent_file(path).config
    agent = config.id
    polls = rows(day, sa.select(sa.func.count()).select_from(events).where(
        events.c.agent_id == agent, events.c.type == "mentions.poll", events.c.status == "done"))[0][0]
    assert polls > 0, f"{agent} never started: {day.start_failures.get(agent, 'no start failure logged')}"
    # Every broken promise is listed, not only the first.
    problems = post_problems(day, config) + reply_problems(day, config) + trade_problems(day, config)
    assert problems == [], "\n".join(problems)


def post_problems(day: Day, config: AgentConfig) -> list[str]:
    """Scheduled posts: as many as the gaps allow, never closer than the minimum gap."""
    agent = config.id
    fewest, most, min_gap = post_bounds(config)
    posted = [r[0] for r in rows(day, sa.select(actions.c.created_at).where(
        actions.c.agent_id == agent, actions.c.key.like(f"post:{agent}:%"), actions.c.status == "done")
        .order_by(actions.c.created_at))]
    skipped = [r[0].get("skipped") for r in rows(day, sa.select(events.c.result).where(
        events.c.agent_id == agent, events.c.type == "post.due", events.c.status == "done")) if r[0]]
    problems = []
    if not fewest <= len(posted) <= most:
        reasons = sorted({s for s in skipped if s})[:2]
        problems.append(f"{agent}: {len(posted)} posts in {HOURS:g} h, its gaps allow {fewest}..{most}; "
                        f"{len([s for s in skipped if s])} skipped, e.g. {reasons}")
    close = [round(b - a) for a, b in itertools.pairwise(posted) if b - a < min_gap - 60]
    if close:
        problems.append(f"{agent}: posts closer than {min_gap / 3600:g} h apart: {close} s")
    return problems


def reply_problems(day: Day, config: AgentConfig) -> list[str]:
    """An author who asked for (almost) always answering gets most crowd mentions answered."""
    agent = config.id
    if config.behavior.interaction_patterns.reply_probability < 0.9:
        return []
    crowd = rows(day, sa.select(mentions.c.tweet_id, mentions.c.decision).where(
        mentions.c.agent_id == agent, mentions.c.author_username.like("crowd\\_%", escape="\\")))
    answered = {r[0] for r in rows(day, sa.select(actions.c.key).where(
        actions.c.agent_id == agent, actions.c.kind.in_(("reply", "thread")), actions.c.status == "done",
        actions.c.key.like(f"reply:{agent}:%")))}
    replied = [t for t, _ in crowd if f"reply:{agent}:{t}" in answered]
    if len(crowd) < 3:
        return [f"{agent}: the crowd mentioned it only {len(crowd)} times"]
    if len(replied) < 0.75 * len(crowd):
        decisions = sorted({d or "undecided" for _, d in crowd if d != "reply"})
        return [f"{agent}: answered {len(replied)} of {len(crowd)} crowd mentions; other decisions: {decisions}"]
    return []


def trade_problems(day: Day, config: AgentConfig) -> list[str]:
    """Confirmed trades stay within the daily cap; none when trading is off."""
    agent = config.id
    confirmed = rows(day, sa.select(sa.func.count()).select_from(trades).where(
        trades.c.agent_id == agent, trades.c.status == "confirmed"))[0][0]
    assert confirmed == day.report[agent]["trades"]
    if not config.trading_enabled:
        return [f"{agent}: trading is off in its file, yet it traded {confirmed} times"] if confirmed else []
    cap = config.agent_kit_integration.autonomy_rules.max_daily_trades
    return [f"{agent}: {confirmed} trades in one day, max_daily_trades is {cap}"] if confirmed > cap else []
