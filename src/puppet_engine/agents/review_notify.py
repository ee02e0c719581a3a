"""Review notices: a signed JSON POST to ``REVIEW_WEBHOOK_URL`` for each item awaiting review.

The engine never waits for them: the gate only marks a new item's notice as due (in the same
transaction as the item), and :class:`ReviewNotifier`, a background task, claims due notices
from the database (``pending → sending``, so with several processes each notice goes out
once), posts them, retrying with exponential back-off and jitter, and records ``sent`` or,
after the last try, ``failed``. A receiver that is down costs this task its retries, nothing else.

Signature (as webhook senders do it): with ``REVIEW_WEBHOOK_SECRET`` set, each request carries
``X-Puppet-Timestamp: <unix seconds>`` and ``X-Puppet-Signature: sha256=<hex>``, the hex
HMAC-SHA256 with the secret as key over ``<timestamp>.<raw body>``. A receiver recomputes it,
compares in constant time and refuses timestamps more than five minutes old (replays).

The body has a ``text`` field (and ``content``, the same words) so a chat's incoming-webhook
URL (Slack, Mattermost, Discord, Teams connectors) shows it as a message; the other fields
are for programs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from typing import Any

import httpx2
import structlog

from puppet_engine.resilience import RetryPolicy
from puppet_engine.storage import Database
from puppet_engine.storage.repos import review as review_rows
from puppet_engine.tasks import cancel_and_wait

log = structlog.get_logger("puppet_engine.review.notify")

SIGNATURE_HEADER = "X-Puppet-Signature"
TIMESTAMP_HEADER = "X-Puppet-Timestamp"
PREVIEW_CHARS = 280


class ReceiverRefused(Exception):
    """The receiver answered with an error status (5xx and 429 are tried again)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"webhook answered HTTP {status}")
        self.status = status


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Puppet-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
           tolerance: float = 300.0) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        fresh = abs((now if now is not None else time.time()) - float(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def notice(item: dict[str, Any]) -> dict[str, Any]:
    """The JSON body for one review item."""
    payload = item.get("payload") or {}
    words = "\n\n".join(payload["parts"]) if payload.get("parts") else str(payload.get("text") or "")
    if item["kind"] == "trade":
        words = f"{payload.get('amount')} {payload.get('input')} → {payload.get('output')}"
    preview = words if len(words) <= PREVIEW_CHARS else words[:PREVIEW_CHARS - 1] + "…"
    reasons = list(item.get("reasons") or [])
    text = (f"[{item['agent_id']}] {item['category']} awaiting review (item {item['action_id']}): {preview}"
            + (f" — {'; '.join(reasons)}" if reasons else ""))
    return {"type": "review.awaiting", "id": item["action_id"], "agent_id": item["agent_id"],
            "kind": item["category"], "action_kind": item["kind"], "preview": preview, "reasons": reasons,
            "created_at": item["created_at"], "expires_at": item.get("expires_at"),
            "on_expire": item.get("on_expire"), "text": text, "content": text}


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ReceiverRefused):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, httpx2.HTTPError)


class ReviewNotifier:
    """Sends review notices in the background (see the module doc)."""

    def __init__(self, db: Database, url: str, secret: str | None = None, *,
                 http: httpx2.AsyncClient | None = None, retry: RetryPolicy | None = None,
                 poll_seconds: float = 1.0, timeout: float = 10.0) -> None:
        self.db = db
        self.url = url
        self._secret = secret
        self.retry = retry or RetryPolicy(attempts=5, backoff=1.0, max_backoff=60.0)
        self.poll_seconds = poll_seconds
        self._http = http or httpx2.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="review-notices")

    def wake(self) -> None:
        """Look for due notices now (an item was just held)."""
        self._wake.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._owns_http:
            await self._http.aclose()

    async def send_due(self) -> int:
        """Claim and send every due notice (concurrently); returns how many were claimed."""
        items = await review_rows.claim_notices(self.db)
        await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly busy: look again later
                log.warning("review_notices_failed", error=f"{type(exc).__name__}: {exc}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _deliver(self, item: dict[str, Any]) -> None:
        body = json.dumps(notice(item), separators=(",", ":"), ensure_ascii=False).encode()
        tries = 0

        async def post() -> None:
            nonlocal tries
            tries += 1
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       "User-Agent": "puppet-engine-review"}
            if self._secret:
                headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            response = await self._http.post(self.url, content=body, headers=headers)
            if response.status_code >= 300:
                raise ReceiverRefused(response.status_code)

        try:
            await self.retry.call(post, retry_on=_retryable)
        except (httpx2.HTTPError, ReceiverRefused) as exc:
            # The URL may hold a token (chat webhooks do): never log it, only the host's failure.
            log.warning("review_notice_failed", action_id=item["action_id"], attempts=tries,
                        error=type(exc).__name__ if isinstance(exc, httpx2.HTTPError) else str(exc))
            await review_rows.notice_done(self.db, item["action_id"], sent=False, attempts=tries)
            return
        await review_rows.notice_done(self.db, item["action_id"], sent=True, attempts=tries)
        log.info("review_notice_sent", action_id=item["action_id"], attempts=tries)
