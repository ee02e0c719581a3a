"""Crash-recovery soak: SIGKILL the engine at random moments while a busy crowd mentions it.

The sandbox runs as its own process (``puppet-engine sandbox --crowd-rate N``), the
engine as another (``puppet-engine run --sandbox-url … --no-api``) on a SQLite file,
with agents that post every few seconds, poll mentions every 3 s and answer everything.
The engine is killed with SIGKILL at a random moment (during start-up, in a handler,
between the outbox's ``sending`` and ``done``), restarted, killed again … then run once
more with the crowd quiet, and stopped cleanly. The sandbox's record and the database
are then checked:

- no duplicate post or reply: every done action maps to exactly one tweet, every agent
  tweet to exactly one action, no crowd tweet got two replies from an agent;
- every crowd mention has a ``mentions`` row with a decision, ``reply`` ones exactly one
  reply tweet, skipped ones none;
- no event lost: nothing left ``running`` or ``sending``, each agent has exactly one live
  ``post.due`` and one ``mentions.poll`` chain;
- the database is consistent (``PRAGMA integrity_check``, actions point at events).

Trading is not covered: the Solana trading behaviour (``trade.due``) has not landed yet.

    python bench/soak.py [--kills 200] [--agents 3] [--crowd-rate 60] [--seed 1] [--workdir DIR] [--json]

A crowd faster than the agents can answer between kills builds a backlog; the final run
works it off (until done, or no progress for 45 s).

The test suite runs the same code with 20 kills (tests/reliability/test_crash_soak.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "puppet-engine"
POST_KINDS = ("post", "reply", "quote", "thread")
TRADER = "soaktrader"
OPEN_TRADES = ("pending", "sent")
# Credentials must be absent so every service is the sandbox's.
CLEARED = ("OPENAI_API_KEY", "GROK_API_KEY", "TWITTER_API_KEY", "TWITTER_API_SECRET", "TWITTER_ACCESS_TOKEN",
           "TWITTER_ACCESS_TOKEN_SECRET", "TWITTER_BEARER_TOKEN", "JUPITER_API_KEY", "DATABASE_URL",
           "SANDBOX_URL", "PUPPET_API_KEYS")


@dataclass
class SoakConfig:
    kills: int = 20
    agents: int = 3
    trader: bool = True  # one more agent that trades on the sandbox chain every few seconds
    crowd_rate: float = 150.0  # mentions per minute across all agents
    seed: int = 1
    startup_kill_share: float = 0.2  # this share of kills lands during start-up (migrate, recover …)
    max_alive: float = 2.0  # other kills land up to this many seconds after the engine is ready
    send_latency_ms: int = 250  # widens the sending → done window the kills aim at
    settle_timeout: float = 900.0  # final clean run: the backlog is worked off until done or this
    stall_timeout: float = 45.0  # … or until no mention was decided for this long
    workdir: Path | None = None


@dataclass
class SoakReport:
    kills: int = 0
    kills_before_ready: int = 0
    seconds: float = 0.0
    mean_startup_seconds: float = 0.0  # launch → event loop running
    final_run_seconds: float = 0.0  # the clean run that works off the backlog
    stop_seconds: float = 0.0  # SIGTERM → exit of that run
    crowd_mentions: int = 0
    mentions_recorded: int = 0
    replies: int = 0
    skipped: int = 0
    posts: int = 0
    actions_done: int = 0
    actions_reconciled: int = 0
    events: int = 0
    events_retried: int = 0
    duplicates: int = 0
    trades: dict[str, int] = field(default_factory=dict)  # trades rows by status
    trades_landed: int = 0  # signatures the chain knows
    problems: list[str] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITTER_", "SOLANA_PRIVATE_KEY"))}
    env.update({name: "" for name in CLEARED})
    env.update(LOG_LEVEL="WARNING", EMBEDDER="hashing", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def write_agents(directory: Path, count: int, traders: bool = True) -> list[str]:
    """Agents that post every 11–22 s, poll mentions every 3 s and answer every mention (plus a trader)."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(count):
        agent_id = f"soak{i}"
        ids.append(agent_id)
        config = {
            "id": agent_id, "name": f"Soak {i}", "llm_provider": "openai",
            "personality": {"traits": ["curious", "patient"], "interests": ["tea", "maps", "validators", "rain"],
                            "speaking_style": "plain"},
            "behavior": {
                "post_frequency": {"min_hours_between_posts": 0.003, "max_hours_between_posts": 0.006},
                "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0,
                                         "quote_tweet_probability": 0.0},
                "content_preferences": {"max_thread_length": 1},
                "mention_poll_minutes": 0.05,
            },
        }
        (directory / f"{agent_id}.json").write_text(json.dumps(config))
    if traders:
        ids.append(TRADER)
        (directory / f"{TRADER}.json").write_text(json.dumps(trader_config()))
    return ids


def trader_config() -> dict[str, Any]:
    """A sandbox trader that looks at the market every 4–7 s and always finds something to buy."""
    return {
        "id": TRADER, "name": "Soak Trader", "llm_provider": "openai",
        "personality": {"traits": ["careful"], "interests": ["markets", "tea"]},
        "solana_integration": {"trading_enabled": True, "network": "sandbox",
                               "trade_safety": {"max_trade_amount_sol": 0.01, "min_wallet_balance_sol": 0.5,
                                                "max_slippage_percent": 5.0}},
        "agent_kit_integration": {"enabled": True, "autonomy_rules": {"max_daily_trades": 100_000,
                                                                      "max_single_trade_amount_sol": 0.01}},
        "behavior": {
            "post_frequency": {"min_hours_between_posts": 0.003, "max_hours_between_posts": 0.006},
            "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0, "quote_tweet_probability": 0.0},
            "content_preferences": {"max_thread_length": 1},
            "mention_poll_minutes": 0.05,
            "trading_behavior": {
                "trading_frequency": {"min_hours_between_trades": 0.001, "max_hours_between_trades": 0.002,
                                      "random_probability": 1.0},
                "trade_decision_factors": ["trending_tokens", "top_gainers", "random_selection"],
                "trade_tweet_probability": 0.5,
                "allowed_tokens": {"always_tradable": ["SOL", "USDC", "PUPPET", "STRNG", "WOOF", "GLITCH"]},
            },
        },
    }


class Soak:
    """The two processes, the kill loop and the final checks."""

    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.dir = workdir
        self.rng = random.Random(config.seed)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = workdir / "soak.db"
        self.agent_ids = write_agents(workdir / "agents", config.agents, config.trader)
        self.http = httpx2.Client(base_url=self.url, timeout=30)
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.report = SoakReport()
        self.startups: list[float] = []

    # -- processes ---------------------------------------------------------------------

    def start_sandbox(self) -> None:
        log = open(self.dir / "sandbox.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.sandbox = subprocess.Popen(
            [str(BIN), "sandbox", "--port", str(self.port), "--crowd-rate", "0", "--seed", str(self.config.seed)],
            cwd=self.dir, env=process_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/sandbox/health").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if self.sandbox.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start; see {self.dir / 'sandbox.log'}")
            time.sleep(0.1)

    def engine(self) -> subprocess.Popen[bytes]:
        log = open(self.dir / "engine.log", "ab")  # noqa: SIM115
        log.write(f"\n--- launch {time.time():.3f}\n".encode())
        log.flush()
        return subprocess.Popen(
            [str(BIN), "run", "--sandbox-url", self.url, "--no-api", "--database-url", f"sqlite:///{self.db_path}",
             "--agents", str(self.dir / "agents")],
            cwd=self.dir, env=process_env(), stdout=log, stderr=log)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.send_signal(signal.SIGTERM)
            try:
                self.sandbox.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sandbox.kill()
                self.sandbox.wait()
        self.http.close()

    # -- the run -------------------------------------------------------------------------

    def run(self) -> SoakReport:
        started = time.monotonic()
        self.start_sandbox()
        # The crowd (crowd_rate mentions a minute onto a few accounts that answer everything) is far past
        # X's 100 posts per account per 15 minutes: an agent that reached it would wait out the window in
        # the final run. This soak is about crashes, not rate limits (tests/unit/test_x_ratelimit.py).
        self.admin("POST", "/sandbox/x/rate-limits", json={"profile": "payg", "limits": {
            "POST /2/tweets": {"user": 100_000, "app": 100_000}}})
        self.admin("POST", "/sandbox/crowd/rate", json={"rate": self.config.crowd_rate, "hostile_share": 0.2})
        if self.config.send_latency_ms:
            for service, path in (("x", "/2/tweets"), ("openai", "/v1/chat/completions")):
                self.admin("POST", "/sandbox/faults", json={
                    "service": service, "path": path, "method": "POST", "kind": "latency",
                    "latency_ms": self.config.send_latency_ms, "count": 1_000_000})
        for _ in range(self.config.kills):
            self.kill_once()
        self.admin("POST", "/sandbox/crowd/rate", json={"rate": 0})
        self.admin("DELETE", "/sandbox/faults")
        final = time.monotonic()
        self.final_run()
        self.report.final_run_seconds = round(time.monotonic() - final, 1)
        self.report.mean_startup_seconds = round(sum(self.startups) / max(1, len(self.startups)), 2)
        self.check()
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def kill_once(self) -> None:
        proc = self.engine()
        launched = time.monotonic()
        during_startup = self.rng.random() < self.config.startup_kill_share
        deadline = launched + self.rng.uniform(0.3, 3.0) if during_startup else None
        while True:
            if proc.poll() is not None:
                self.report.problems.append(f"engine exited on its own with code {proc.returncode} "
                                            f"(kill {self.report.kills + 1}); see engine.log")
                return
            now = time.monotonic()
            if deadline is None and self._ready():
                self.startups.append(now - launched)
                deadline = now + self.rng.uniform(0.0, self.config.max_alive)
            if (deadline is not None and now >= deadline) or now - launched > 60:
                break
            time.sleep(0.02)
        if not self._ready():
            self.report.kills_before_ready += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.report.kills += 1

    def _ready(self) -> bool:
        """Whether the process has reached its event loop (it printed its start-up summary)."""
        text = (self.dir / "engine.log").read_bytes()
        return b"Puppet Engine: " in text[text.rfind(b"--- launch"):]

    def final_run(self) -> None:
        """A clean run with a quiet crowd until the backlog is answered, then SIGTERM."""
        expected = {m["tweet_id"] for m in self.crowd_messages()}
        proc = self.engine()
        deadline = time.monotonic() + self.config.settle_timeout
        ready_at: float | None = None
        progress, progress_at = -1, time.monotonic()
        while time.monotonic() < deadline and proc.poll() is None:
            if ready_at is None and self._ready():
                ready_at = time.monotonic()
            settled, decided = self._settled(expected)
            if decided != progress:
                progress, progress_at = decided, time.monotonic()
            if ready_at is not None and time.monotonic() - ready_at > 1.0 and settled:
                break
            if time.monotonic() - progress_at > self.config.stall_timeout:
                self.report.problems.append(f"final run stalled: no mention decided for "
                                            f"{self.config.stall_timeout:.0f} s")
                break
            time.sleep(0.25)
        if proc.poll() is not None:
            self.report.problems.append(f"final engine run exited on its own with code {proc.returncode}")
            return
        proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.report.problems.append("engine did not stop within 60 s of SIGTERM")
            return
        self.report.stop_seconds = round(time.monotonic() - stopping, 1)
        if code != 0:
            self.report.problems.append(f"engine exited with code {code} after SIGTERM")

    def _settled(self, expected: set[str]) -> tuple[bool, int]:
        """Whether the backlog is worked off, and how many mentions are decided so far."""
        with self.db() as db:
            decided = {r[0] for r in db.execute("SELECT tweet_id FROM mentions WHERE decision IS NOT NULL")}
            busy = db.execute("SELECT COUNT(*) FROM actions WHERE status IN ('pending','sending')").fetchone()[0]
            running = db.execute("SELECT COUNT(*) FROM events WHERE status = 'running'").fetchone()[0]
        return expected <= decided and busy == 0 and running == 0, len(decided)

    def crowd_messages(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "/sandbox/crowd/messages")["messages"])

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    # -- the checks ----------------------------------------------------------------------

    def check(self) -> None:
        r, problems = self.report, self.report.problems
        usernames = {a["username"].lower(): a["username"] for a in self.admin("GET", "/sandbox/x/accounts")["accounts"]}
        tweets: dict[str, list[dict[str, Any]]] = {}
        for agent_id in self.agent_ids:
            name = usernames.get(agent_id.lower(), agent_id)
            tweets[agent_id] = self.admin("GET", "/sandbox/x/tweets", params={"username": name})["data"]
        with self.db() as db:
            actions = [dict(row) for row in db.execute("SELECT * FROM actions")]
            mention_rows = {(row["agent_id"], row["tweet_id"]): row["decision"]
                            for row in db.execute("SELECT agent_id, tweet_id, decision FROM mentions")}
            events = [dict(row) for row in db.execute("SELECT id, key, type, agent_id, status, attempts FROM events")]
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            trade_rows = [dict(row) for row in db.execute("SELECT key, status, signature, error FROM trades")]
        if integrity != "ok":
            problems.append(f"sqlite integrity_check: {integrity}")
        self._check_actions(actions, tweets)
        self._check_mentions(mention_rows, tweets)
        self._check_events(events, actions)
        self._check_trades(trade_rows, actions)
        r.mentions_recorded = len(mention_rows)
        r.decisions = dict(Counter(d or "undecided" for d in mention_rows.values()))

    def _check_actions(self, actions: list[dict[str, Any]], tweets: dict[str, list[dict[str, Any]]]) -> None:
        r, problems = self.report, self.report.problems
        owner: dict[str, list[str]] = {}  # tweet id → action keys that claim it
        for a in actions:
            result = json.loads(a["result"]) if a["result"] else {}
            if a["status"] != "done":
                problems.append(f"action {a['key']} ({a['kind']}) left {a['status']}: {a['error']}")
                continue
            r.actions_done += 1
            r.actions_reconciled += bool(result.get("reconciled"))
            if a["kind"] not in POST_KINDS:
                continue
            ids = result.get("posted") if a["kind"] == "thread" else [a["external_id"]]
            for tweet_id in ids or [None]:
                owner.setdefault(str(tweet_id), []).append(a["key"])
        for tweet_id, keys in owner.items():
            if len(keys) > 1:
                r.duplicates += 1
                problems.append(f"tweet {tweet_id} claimed by several actions: {keys}")
        for agent_id, rows in tweets.items():
            for t in rows:
                if any(ref["type"] == "retweeted" for ref in t.get("referenced_tweets", [])):
                    continue
                replied = any(ref["type"] == "replied_to" for ref in t.get("referenced_tweets", []))
                r.replies += replied
                r.posts += not replied
                if t["id"] not in owner:
                    r.duplicates += 1
                    problems.append(f"{agent_id} tweet {t['id']} has no action (a duplicate send?): {t['text'][:60]!r}")
            known = {t["id"] for t in rows}
            for tweet_id, keys in owner.items():
                if keys[0].split(":")[1:2] == [agent_id] and tweet_id not in known:
                    problems.append(f"action {keys[0]} says tweet {tweet_id} but {agent_id} has no such tweet")

    def _check_mentions(self, rows: dict[tuple[str, str], str | None], tweets: dict[str, list[dict[str, Any]]]) -> None:
        r, problems = self.report, self.report.problems
        by_username = {a.lower(): a for a in self.agent_ids}
        messages = self.crowd_messages()
        r.crowd_mentions = len(messages)
        for m in messages:
            agent_id = by_username.get(m["target"].lower())
            if agent_id is None:
                continue
            replies = [t for t in tweets[agent_id]
                       if {"type": "replied_to", "id": m["tweet_id"]} in t.get("referenced_tweets", [])]
            if len(replies) > 1:
                r.duplicates += 1
                problems.append(f"crowd tweet {m['tweet_id']} got {len(replies)} replies from {agent_id}")
            key = (agent_id, m["tweet_id"])
            if key not in rows:
                problems.append(f"crowd mention {m['tweet_id']} of {agent_id} was never recorded (lost)")
                continue
            decision = rows[key]
            if decision is None:
                problems.append(f"mention {m['tweet_id']} of {agent_id} has no decision")
            elif decision == "reply" and len(replies) != 1:
                problems.append(f"mention {m['tweet_id']} of {agent_id} decided reply but has {len(replies)} replies")
            elif decision != "reply":
                r.skipped += 1
                if replies:
                    problems.append(f"mention {m['tweet_id']} of {agent_id} skipped ({decision}) yet answered")

    def _check_events(self, events: list[dict[str, Any]], actions: list[dict[str, Any]]) -> None:
        r, problems = self.report, self.report.problems
        r.events = len(events)
        r.events_retried = sum(e["attempts"] > 1 for e in events)
        ids = {e["id"] for e in events}
        for e in events:
            if e["status"] == "running":
                problems.append(f"event {e['key'] or e['id']} ({e['type']}) still running after a clean stop")
            elif e["status"] == "failed":
                problems.append(f"event {e['key'] or e['id']} ({e['type']}) failed")
        for a in actions:
            if a["event_id"] is not None and a["event_id"] not in ids:
                problems.append(f"action {a['key']} points at a missing event {a['event_id']}")
        for agent_id in self.agent_ids:
            for chain in ("post.due", "mentions.poll"):
                live = sum(e["agent_id"] == agent_id and e["type"] == chain and e["status"] in ("pending", "running")
                           for e in events)
                if live != 1:
                    problems.append(f"{agent_id} has {live} live {chain} events (expected one chain)")


    def _check_trades(self, rows: list[dict[str, Any]], actions: list[dict[str, Any]]) -> None:
        """One trades row per trade action, one signature per row, and the chain agrees with each status."""
        r, problems = self.report, self.report.problems
        r.trades = dict(Counter(row["status"] for row in rows))
        by_key = {row["key"]: row for row in rows}
        for a in actions:
            if a["kind"] == "trade" and a["status"] == "done" and a["key"] not in by_key:
                problems.append(f"trade action {a['key']} is done without a trades row")
        signatures = Counter(row["signature"] for row in rows if row["signature"])
        for signature, count in signatures.items():
            if count > 1:
                r.duplicates += 1
                problems.append(f"signature {signature} recorded by {count} trades")
        signed = [row for row in rows if row["signature"]]
        landed = self.signature_statuses([row["signature"] for row in signed])
        for row, status in zip(signed, landed, strict=True):
            on_chain_ok = status is not None and status.get("err") is None
            r.trades_landed += status is not None
            if row["status"] in OPEN_TRADES:
                problems.append(f"trade {row['key']} left {row['status']} after a clean run")
            elif row["status"] == "confirmed" and not on_chain_ok:
                problems.append(f"trade {row['key']} confirmed but the chain says {status}")
            elif row["status"] != "confirmed" and on_chain_ok:
                problems.append(f"trade {row['key']} is {row['status']} ({row['error']}) but landed on chain")

    def signature_statuses(self, signatures: list[str]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for start in range(0, len(signatures), 256):
            body = self.admin("POST", "/solana", json={
                "jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
                "params": [signatures[start:start + 256], {"searchTransactionHistory": True}]})
            out.extend(body["result"]["value"])
        return out


def run_soak(config: SoakConfig) -> SoakReport:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = config.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        soak = Soak(config, workdir)
        try:
            return soak.run()
        finally:
            soak.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--crowd-rate", type=float, default=60.0, help="crowd mentions per minute")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-alive", type=float, default=2.0, help="seconds alive after start-up, at most")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and the database here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run_soak(SoakConfig(kills=args.kills, agents=args.agents, crowd_rate=args.crowd_rate, seed=args.seed,
                                 max_alive=args.max_alive, workdir=args.workdir))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for name, value in report.to_dict().items():
            if name != "problems":
                print(f"{name:>20}: {value}")
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        print("OK: no duplicate, nothing lost" if not report.problems else f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
