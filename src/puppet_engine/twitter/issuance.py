"""X accounts issued by the sandbox (``POST /sandbox/x/accounts`` and ``…/batch``), over HTTP.

A rehearsal (``simulate``, ``--sandbox-url``) or an engine without X keys gives every agent
an account on the sandbox's X. The answer names the account (id and username), so an agent
whose keys were just issued starts without asking X who it is (``GET /2/users/me``).

When many agents start together, :meth:`SandboxAccounts.prefetch` issues their accounts in
a few batch calls; each agent then takes its own with :meth:`SandboxAccounts.issue`, which
asks the sandbox alone for an account not issued ahead. A refusal (an injected fault: X down,
a 401), an unreachable sandbox or a garbled answer is a :class:`ProviderError` naming the
agent: its start fails, says why, and is retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog

from puppet_engine.errors import AuthError, BadResponse, ProviderError, ServiceUnavailable
from puppet_engine.social.base import Account
from puppet_engine.twitter.credentials import TwitterCredentials

log = structlog.get_logger("puppet_engine.twitter")

ISSUANCE = "/sandbox/x/accounts"
BATCH = 500  # accounts per batch call (the sandbox takes up to 1,000)


def sandbox_username(agent_id: str) -> str:
    """The agent's username on the sandbox's X (X's rules: 15 letters, digits or underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", agent_id)[:15]


@dataclass(frozen=True)
class Issued:
    """An account's keys and who they are on X."""

    credentials: TwitterCredentials
    account: Account


@dataclass(frozen=True)
class _Refused:
    status: int
    detail: str


class SandboxAccounts:
    """The sandbox's account issuance at ``base_url``, one account or a batch at a time."""

    def __init__(self, http: httpx2.AsyncClient, base_url: str) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + ISSUANCE
        self._ahead: dict[str, Issued | _Refused] = {}  # username → issued (or refused) by prefetch

    async def prefetch(self, wanted: Mapping[str, str]) -> None:
        """Issue the accounts ``wanted`` (username → display name) ahead, :data:`BATCH` per call.

        An account refused ahead is refused once, at its :meth:`issue` (a retry asks again);
        a batch call that fails as a whole leaves its accounts to be asked for one at a time.
        """
        names = [u for u in wanted if u not in self._ahead]
        for start in range(0, len(names), BATCH):
            chunk = names[start:start + BATCH]
            body = {"accounts": [{"username": u, "name": wanted[u]} for u in chunk]}
            try:
                response = await self.http.post(self.url + "/batch", json=body)
                response.raise_for_status()
                entries = response.json()["accounts"]
                ahead = [_entry(e) for e in entries]
            except (httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.info("sandbox_accounts_one_at_a_time", accounts=len(chunk), reason=type(exc).__name__)
                continue
            for username, entry in zip(chunk, ahead, strict=False):
                self._ahead[username] = entry

    def forget(self) -> None:
        """Drop what :meth:`prefetch` issued and no agent took (keys may be rotated later)."""
        self._ahead.clear()

    async def issue(self, agent_id: str, name: str) -> Issued:
        """The agent's account: issued ahead, else asked for now (the same account at every start)."""
        username = sandbox_username(agent_id)
        ahead = self._ahead.pop(username, None)
        if isinstance(ahead, Issued):
            return ahead
        if ahead is not None:
            raise _refusal(agent_id, username, ahead)
        try:
            response = await self.http.post(self.url, json={"username": username, "name": name})
        except httpx2.TransportError as exc:
            raise ServiceUnavailable(f"agent {agent_id!r}: the sandbox did not issue its X account {username!r} "
                                     f"(POST {ISSUANCE}: {type(exc).__name__})", service="x") from None
        if response.status_code >= 400:
            raise _refusal(agent_id, username, _Refused(response.status_code, response.text))
        try:
            return _issued(response.json())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadResponse(f"agent {agent_id!r}: the sandbox's answer to POST {ISSUANCE} for {username!r} "
                              "is not an account", service="x") from None


def _issued(body: Mapping[str, Any]) -> Issued:
    """An account from the sandbox's answer (KeyError, TypeError: not an account)."""
    creds = TwitterCredentials.of(api_key=body["consumer_key"], api_secret=body["consumer_secret"],
                                  access_token=body["access_token"], access_token_secret=body["access_token_secret"],
                                  bearer_token=body["bearer_token"])
    if not creds.has_user_context or creds.user_id != str(body["user_id"]):
        raise KeyError("user_id")
    return Issued(creds, Account(creds.user_id, str(body["username"])))


def _entry(body: Mapping[str, Any]) -> Issued | _Refused:
    """One account of a batch answer: issued, or refused with its status and X's error body."""
    if "error" in body:
        return _Refused(int(body["status"]), json.dumps(body["error"]))
    return _issued(body)


def _refusal(agent_id: str, username: str, refused: _Refused) -> ProviderError:
    """The error of a start whose sandbox account was not issued, of the class its status means."""
    status = refused.status
    cls = AuthError if status in (401, 403) else ServiceUnavailable if status >= 500 else ProviderError
    return cls(f"agent {agent_id!r}: the sandbox did not issue its X account {username!r} "
               f"(POST {ISSUANCE} answered {status}: {refused.detail[:200]})", service="x", status=status)
