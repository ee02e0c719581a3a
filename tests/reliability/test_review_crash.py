"""kill -9 between a review approval and the send: each approved reply goes out exactly once.

A real engine process (``puppet-engine run --sandbox-url``) against a sandbox process, on a
SQLite file. Replies are held for review; the test approves them from its own process (as an
API process sharing the database would) and SIGKILLs the engine right after each approval (at
once, or a few hundred milliseconds later: before, during or after the send), restarts it,
and at the end counts the replies on the sandbox's X: one per approved item, none for the
item left waiting.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2

from puppet_engine.agents.review_desk import ReviewDesk
from puppet_engine.clock import WallClock
from puppet_engine.persona import parse_agent_config
from puppet_engine.storage import Database

BIN_NAME = "puppet-engine"
MENTIONS = 5


def _bin() -> str:
    import sys

    return str(Path(sys.executable).parent / BIN_NAME)


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITTER_", "SOLANA_PRIVATE_KEY", "REVIEW_"))}
    env.update({k: "" for k in ("OPENAI_API_KEY", "GROK_API_KEY", "JUPITER_API_KEY", "DATABASE_URL", "SANDBOX_URL",
                                "PUPPET_API_KEYS")})
    env.update(LOG_LEVEL="INFO", EMBEDDER="hashing", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


AGENT = {"id": "rev0", "name": "Rev", "llm_provider": "fake",
         "personality": {"interests": ["tea", "maps"], "speaking_style": "plain"},
         "behavior": {"post_frequency": {"min_hours_between_posts": 20, "max_hours_between_posts": 30},
                      "interaction_patterns": {"reply_probability": 1.0, "like_probability": 0.0,
                                               "quote_tweet_probability": 0.0},
                      "mention_poll_minutes": 0.05},
         "review": {"kinds": ["replies"]}}


class Rig:
    def __init__(self, workdir: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = workdir
        self.db_path = workdir / "engine.db"
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx2.Client(base_url=self.url, timeout=30)
        (workdir / "agents").mkdir()
        (workdir / "agents" / "rev0.json").write_text(json.dumps(AGENT))
        self.sandbox = subprocess.Popen([_bin(), "sandbox", "--port", str(self.port), "--crowd-rate", "0"],
                                        cwd=workdir, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: self._get_ok("/sandbox/health"), 30, "sandbox did not start")

    def _get_ok(self, path: str) -> bool:
        try:
            return self.http.get(path).status_code == 200
        except httpx2.TransportError:
            return False

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := check()):
            assert time.monotonic() < deadline, what
            time.sleep(0.05)
        return value

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, f"/sandbox/x{path}", **kw)
        response.raise_for_status()
        return response.json()

    def engine(self) -> subprocess.Popen[bytes]:
        log = open(self.dir / "engine.log", "ab")  # noqa: SIM115 - lives as long as the process
        log.write(b"\n--- launch\n")
        log.flush()
        return subprocess.Popen([_bin(), "run", "--sandbox-url", self.url, "--no-api", "--database-url",
                                 f"sqlite:///{self.db_path}", "--agents", str(self.dir / "agents")],
                                cwd=self.dir, env=_env(), stdout=log, stderr=log)

    def ready(self) -> bool:
        text = (self.dir / "engine.log").read_bytes()
        return b"Puppet Engine: " in text[text.rfind(b"--- launch"):]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.db_path.exists():
            return []
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as conn:
            try:
                return list(conn.execute(sql))
            except sqlite3.OperationalError:  # tables not there yet
                return []

    def replies(self) -> list[dict[str, Any]]:
        """The agent's replies on the sandbox's X (its own posts, not reviewed here, left out)."""
        return [t for t in self.admin("GET", "/tweets", params={"username": "rev0"})["data"]
                if any(r.get("type") == "replied_to" for r in t.get("referenced_tweets") or [])]

    def close(self) -> None:
        self.sandbox.send_signal(signal.SIGTERM)
        try:
            self.sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.sandbox.kill()
        self.http.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def test_sigkill_after_approval_sends_each_approved_reply_exactly_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rng = random.Random(18)
    proc: subprocess.Popen[bytes] | None = None
    db: Database | None = None
    try:
        proc = rig.engine()
        rig._wait(rig.ready, 60, "engine did not start")  # it has its sandbox account now
        for i in range(MENTIONS):
            rig.admin("POST", "/accounts", json={"username": f"asker{i}"})
            rig.admin("POST", "/tweets", json={"username": f"asker{i}", "text": f"@rev0 question {i}: tea or maps?"})
        held = rig._wait(lambda: (r := rig.rows("SELECT id FROM actions WHERE status = 'awaiting_review'"))
                         and len(r) >= MENTIONS and r, 60, "replies were not held for review")
        ids = sorted(r[0] for r in held)
        db = Database(f"sqlite:///{rig.db_path}")
        desk = ReviewDesk(db, WallClock())
        config = parse_agent_config(AGENT)
        approved = ids[:-1]  # the last one stays waiting: it must never go out
        after_kill: list[str] = []  # each approved action's status when its engine died
        for n, action_id in enumerate(approved):
            if n == 0:  # the engine is dead while the approval commits: nothing can have sent it
                kill(proc)
                await desk.approve(action_id, decided_by="control:test", config=config)
            else:
                await desk.approve(action_id, decided_by="control:test", config=config)
                time.sleep(rng.choice([0.0, 0.0, 0.05, 0.2, 0.5]))
                kill(proc)
            after_kill.append(rig.rows(f"SELECT status FROM actions WHERE id = {action_id}")[0][0])
            proc = rig.engine()
            rig._wait(rig.ready, 60, "engine did not restart")
        rig._wait(lambda: len(rig.rows("SELECT id FROM actions WHERE status = 'done'")) >= len(approved), 60,
                  "approved replies were not all sent")
        time.sleep(1.0)  # a chance for any duplicate to show up
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc = None

        texts = dict(rig.rows("SELECT id, json_extract(payload, '$.text') FROM actions"))
        sent = [t["text"] for t in rig.replies()]
        for action_id in approved:
            assert sent.count(texts[action_id]) == 1, (action_id, texts[action_id], sent)
        assert texts[ids[-1]] not in sent
        assert len(sent) == len(approved)
        assert after_kill[0] == "pending"  # approved, never sent when the engine died: sent after the restart
        statuses = dict(rig.rows("SELECT id, status FROM actions"))
        assert [statuses[a] for a in approved] == ["done"] * len(approved)
        assert statuses[ids[-1]] == "awaiting_review"
        audit = rig.rows("SELECT action_id, decision FROM review_decisions ORDER BY id")
        assert audit == [(a, "approved") for a in approved]
    finally:
        if proc is not None:
            kill(proc)
        if db is not None:
            await db.close()
        rig.close()
