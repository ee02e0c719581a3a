"""API keys and scopes: ``Authorization: Bearer <key>`` on everything except ``/health``.

Keys come from ``PUPPET_API_KEYS`` as comma-separated ``key:scope`` pairs; a scope is
``read`` (GET endpoints), ``control`` (agent actions, memory writes, news) or
``admin`` (configuration, system restart). ``admin`` implies ``control`` implies ``read``.

Keys are compared in constant time (``hmac.compare_digest``) against every configured
key, so the time taken says nothing about which key or how much of it matched.
Failed attempts are counted per client address, in the database (so every API process
shares the count): past ``max_failures`` within ``window_seconds`` a wrong key from that
address gets ``429``; a valid key is never refused for others' failures. The client
address is the connection's, or the forwarded one only when the connection comes from a
proxy listed in ``FORWARDED_ALLOW_IPS`` (uvicorn applies that, see ``serving.py``).

With ``PUPPET_API_KEYS`` unset, :func:`local_keyring` makes one admin key for the local
operator, keeps it in a ``0600`` file (``.puppet_api_key``) so the same key survives
restarts, and prints it to the console once, when it is created — never to the logs.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, TextIO

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from puppet_engine.api.deps import reject_unknown_query
from puppet_engine.api.errors import ApiError
from puppet_engine.errors import ConfigError
from puppet_engine.storage.auth_failures import auth_failures_of, record_auth_failure
from puppet_engine.storage.database import Database

Scope = Literal["read", "control", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "control", "admin")
_RANK = {"read": 1, "control": 2, "admin": 3}
KEY_FILE = ".puppet_api_key"


@dataclass(frozen=True)
class ApiKey:
    """One configured key and what it may do. ``key`` never appears in a repr."""

    key: str = field(repr=False)
    scope: Scope

    @property
    def label(self) -> str:
        """Safe to log: the scope and a short digest, never the key."""
        import hashlib

        return f"{self.scope}:{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


class KeyRing:
    """The set of accepted keys."""

    def __init__(self, keys: list[ApiKey]) -> None:
        if not keys:
            raise ConfigError("PUPPET_API_KEYS: no API key configured")
        self.keys = list(keys)

    def __repr__(self) -> str:
        return f"KeyRing({[k.label for k in self.keys]})"

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """``"k1:admin,k2:read"`` → a ring; a malformed entry is a ``ConfigError`` naming its position."""
        keys: list[ApiKey] = []
        for index, raw in enumerate(text.split(","), start=1):
            entry = raw.strip()
            if not entry:
                continue
            key, sep, scope = entry.rpartition(":")
            scope = scope.strip().lower()
            if not sep or not key.strip() or scope not in _RANK:
                raise ConfigError(f"PUPPET_API_KEYS: entry {index}: expected key:scope with scope read, "
                                  "control or admin")
            keys.append(ApiKey(key.strip(), scope))  # type: ignore[arg-type]
        return cls(keys)

    def match(self, token: str) -> ApiKey | None:
        """The key equal to ``token``; every key is compared, in constant time each."""
        found: ApiKey | None = None
        given = token.encode()
        for candidate in self.keys:
            if hmac.compare_digest(candidate.key.encode(), given) and found is None:
                found = candidate
        return found

    def secret_values(self) -> list[str]:
        return [k.key for k in self.keys]


class FailureLimiter:
    """Failed authentications per client address, counted in the database every API process shares.

    Only failures are limited: past ``max_failures`` within a ``window_seconds`` window a
    wrong key from that address gets ``429`` instead of ``401`` (and keeps counting); a
    valid key is always served, so a flood of bad keys from a shared address (a NAT, a
    proxy) cannot lock the operator out. Keys therefore have to be long and random: the
    limit slows down and flags a guesser, the key length is what defeats one.
    """

    def __init__(self, db: Database, max_failures: int = 10, window_seconds: float = 60.0, *,
                 now: Callable[[], float] = time.time, max_blocked: int = 10_000) -> None:
        self.db = db
        self.max_failures = max_failures
        self.window = window_seconds
        self.now = now  # wall time: the processes sharing the count share no other clock
        self.max_blocked = max_blocked
        # Sources this process saw past the limit, until when: a flood of wrong keys from
        # one address is answered without a database write each.
        self._blocked: dict[str, float] = {}

    async def record_failure(self, client: str) -> float | None:
        """Count a failure from ``client``; the seconds it must wait when it is past the limit, else None."""
        now = self.now()
        until = self._blocked.get(client)
        if until is not None and until > now:
            return max(1.0, until - now)
        count = await record_auth_failure(self.db, client, now=now, window=self.window,
                                          max_failures=self.max_failures)
        if count.failures <= self.max_failures:
            return None
        if len(self._blocked) >= self.max_blocked:
            self._blocked = {source: end for source, end in self._blocked.items() if end > now}
        if len(self._blocked) < self.max_blocked:
            self._blocked[client] = count.window_end
        return max(1.0, count.window_end - now)

    async def failures(self, client: str) -> int:
        """``client``'s failures in its current window."""
        return await auth_failures_of(self.db, client, now=self.now(), window=self.window)


@dataclass
class AuthConfig:
    keys: KeyRing
    limiter: FailureLimiter


_bearer = HTTPBearer(auto_error=False, description="An API key from PUPPET_API_KEYS (or .puppet_api_key)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Scope,
                       *, query_token: str | None = None) -> ApiKey:
    """The caller's key, or an :class:`ApiError` (401, 403 or 429).

    The request's query is checked against the endpoint's parameters only after the key
    is accepted, so a caller without one learns nothing about the endpoint.
    """
    auth: AuthConfig = request.app.state.auth
    token = credentials.credentials if credentials is not None else query_token
    if not token:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    key = auth.keys.match(token)
    if key is None:
        wait = await auth.limiter.record_failure(_client(request))
        if wait is not None:
            raise ApiError(429, f"too many failed authentication attempts; retry in {wait:.0f}s",
                           headers={"Retry-After": str(int(wait + 0.999))})
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not key.allows(needed):
        raise ApiError(403, f"this API key has scope {key.scope!r}; this endpoint needs {needed!r}",
                       details={"scope": key.scope, "needed": needed})
    reject_unknown_query(request)
    return key


def require(needed: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits keys with at least scope ``needed``."""

    async def dependency(request: Request, credentials: Bearer) -> ApiKey:
        return await authenticate(request, credentials, needed)

    dependency.__name__ = f"require_{needed}"
    return dependency


async def authorize(request: Request, needed: Scope) -> ApiKey:
    """What ``Depends(require(needed))`` does, for an endpoint outside FastAPI's dependency
    resolution (:class:`~puppet_engine.api.lean.LeanRoute`): the same header parsing, the same errors."""
    return await authenticate(request, await _bearer(request), needed)


def local_keyring(path: Path | str = KEY_FILE, *, announce: TextIO | None = None) -> KeyRing:
    """An admin key for a local run without ``PUPPET_API_KEYS``: reused from ``path``, else created there.

    The file is written with mode ``0600``. The key is printed to ``announce`` (stderr by
    default) only when it is created, for the operator to paste into the dashboard; a
    later start says where the key is kept, not the key, so it does not pile up in
    terminal scrollback and captured service output.
    """
    target = Path(path)
    key = _read_key_file(target)
    out = announce or sys.stderr
    if key is not None:
        with contextlib.suppress(OSError):  # not ours to change (a read-only mount): still usable
            os.chmod(target, 0o600)
        out.write(f"API key (admin): the one in {target.resolve()} (PUPPET_API_KEYS is unset)\n")
        out.flush()
        return KeyRing([ApiKey(key, "admin")])
    key = secrets.token_urlsafe(32)
    where = f"the key is kept in {target.resolve()}, mode 0600"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        os.chmod(target, 0o600)
    except OSError as exc:  # a read-only directory: the key still works for this run
        where = f"it could not be saved to {target.resolve()} ({exc.strerror or exc}) and lasts for this run only"
    out.write(f"API key (admin) for the dashboard and API: {key}\n  (PUPPET_API_KEYS is unset; {where})\n")
    out.flush()
    return KeyRing([ApiKey(key, "admin")])


def _read_key_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the local API key file: {exc.strerror or exc}") from None
    return text if len(text) >= 16 and "," not in text and ":" not in text else None


def keyring_from_settings(secret: str | None, *, key_file: Path | str = KEY_FILE,
                          announce: TextIO | None = None) -> KeyRing:
    """``PUPPET_API_KEYS`` when set, else the local admin key."""
    if secret and secret.strip():
        return KeyRing.parse(secret)
    return local_keyring(key_file, announce=announce)
