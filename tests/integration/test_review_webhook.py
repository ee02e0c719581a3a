"""Review notices to a real HTTP receiver on loopback: signed (HMAC-SHA256 over timestamp and
body), retried with back-off, given up when the receiver stays down — never holding up the engine."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from puppet_engine.agents.review_notify import ReviewNotifier, verify
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.resilience import RetryPolicy
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.settings import Settings
from puppet_engine.storage.tables import review_items

SECRET = "whsec-4b1e7d0c9a"
HOUR = 3600.0


class Receiver:
    """A webhook receiver: answers the next ``failures`` requests with 503, then 200."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 503 if receiver.failures > 0 else 200
                receiver.failures -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/review"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def make_engine(url: str, clock: VirtualClock, webhook: str, **settings: Any) -> Engine:
    agent = {"id": "kai", "llm_provider": "fake", "personality": {"interests": ["tea"]},
             "behavior": {"post_frequency": {"min_hours_between_posts": 1, "max_hours_between_posts": 1.5}},
             "review": {"kinds": ["posts"]}}
    base = Settings(database_url=url, embedder="hashing", _env_file=None, review_webhook_url=webhook,  # type: ignore[call-arg]
                    review_webhook_secret=SECRET, **settings)
    return Engine(base, EngineOptions(agents=[parse_agent_config(agent)], clock=clock, seed=4,
                                      sandbox=Sandbox(SandboxConfig(), clock=clock)))


async def notice_states(engine: Engine) -> list[tuple[str, int]]:
    async with engine.db.connect() as conn:
        q = sa.select(review_items.c.notice, review_items.c.notice_attempts).order_by(review_items.c.action_id)
        return [(n, a) for n, a in await conn.execute(q)]


async def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


async def test_each_new_item_is_posted_signed_with_a_text_for_chat(sqlite_url: str, receiver: Receiver) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, receiver.url)
    await engine.start()
    await engine.run_until(clock.now() + 3 * HOUR)
    held = len(await notice_states(engine))
    assert held >= 2
    await until(lambda: _all_sent(engine))
    assert len(receiver.requests) == held  # one notice per item, none twice
    headers, body = receiver.requests[0]
    timestamp, signature = headers["x-puppet-timestamp"], headers["x-puppet-signature"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert abs(int(timestamp) - time.time()) < 60
    assert verify(SECRET, timestamp, body, signature)
    assert not verify(SECRET, timestamp, body + b" ", signature)  # a changed body fails
    assert not verify(SECRET, str(int(timestamp) - 3600), body, signature)  # an old timestamp fails
    notice = json.loads(body)
    assert notice["type"] == "review.awaiting" and notice["agent_id"] == "kai" and notice["kind"] == "posts"
    assert notice["text"].startswith("[kai] posts awaiting review") and notice["preview"] in notice["text"]
    assert SECRET not in body.decode()
    await engine.stop()


async def _all_sent(engine: Engine) -> bool:
    states = await notice_states(engine)
    return bool(states) and all(n == "sent" for n, _ in states)


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(database: Any) -> None:
    flaky = Receiver(failures=2)
    try:
        clock = VirtualClock()
        from puppet_engine.storage.repos import review as review_rows
        from puppet_engine.storage.tables import actions
        async with database.transaction() as conn:
            action_id = (await conn.execute(actions.insert().values(
                key="post:x:1", agent_id="x", kind="post", payload={"text": "hello"}, status="awaiting_review",
                attempts=0, not_before=0.0, created_at=clock.now(), updated_at=clock.now()))).inserted_primary_key[0]
            await review_rows.insert_item(conn, action_id, "x", {"category": "posts", "reasons": ["posts need approval"],
                                                                 "notify": True}, clock.now())
        notifier = ReviewNotifier(database, flaky.url, SECRET, retry=RetryPolicy(attempts=4, backoff=0.05))
        started = time.monotonic()
        assert await notifier.send_due() == 1
        assert time.monotonic() - started >= 0.05  # it waited between tries
        assert len(flaky.requests) == 3
        assert len({h["x-puppet-signature"] for h, _ in flaky.requests}) >= 1  # each try signed
        assert all(verify(SECRET, h["x-puppet-timestamp"], b, h["x-puppet-signature"]) for h, b in flaky.requests)
        async with database.connect() as conn:
            row = (await conn.execute(sa.select(review_items.c.notice, review_items.c.notice_attempts))).one()
        assert tuple(row) == ("sent", 3)
        assert await notifier.send_due() == 0  # sent once, not again
        await notifier.stop()
    finally:
        flaky.close()


async def test_a_receiver_that_is_down_never_holds_up_the_engine(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, closed_port_url())
    assert engine.review_notices is not None
    engine.review_notices.retry = RetryPolicy(attempts=3, backoff=2.0)  # 3 to 6 s of retrying per notice
    await engine.start()
    await engine.run_until(clock.now() + 12 * HOUR)  # a dozen posts held meanwhile
    states = await notice_states(engine)
    assert len(states) >= 6
    assert any(n in ("pending", "sending") for n, _ in states)  # the engine got here while notices still retry
    states = await until(lambda: _all_given_up(engine), timeout=30)
    assert all(attempts == 3 for _, attempts in states)
    await engine.stop()


async def _all_given_up(engine: Engine) -> list[tuple[str, int]] | None:
    states = await notice_states(engine)
    return states if states and all(n == "failed" for n, _ in states) else None
