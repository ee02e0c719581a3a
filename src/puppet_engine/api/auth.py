"""API keys and scopes: ``Authorization: Bearer <key>`` on everything except ``/health``.

Keys come from ``PUPPET_API_KEYS`` as comma-separated ``key:scope`` pairs; a scope is
``read`` (GET endpoints), ``control`` (agent actions, memory writes, news) or
``admin`` (configuration, system restart). ``admin`` implies ``control`` implies ``read``.

Keys are compared in constant time (``hmac.compare_digest``) against every configured
key, so the time taken says nothing about which key or how much of it matched.
Failed attempts are counted per client address: past ``max_failures`` within
``window_seconds`` that address gets ``429`` until the window has passed.

With ``PUPPET_API_KEYS`` unset, :func:`local_keyring` makes one admin key for the local
operator, keeps it in a ``0600`` file (``.puppet_api_key``) so the same key survives
restarts, and prints it once to the console — never to the logs.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, TextIO

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from puppet_engine.api.errors import ApiError
from puppet_engine.errors import ConfigError

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
    """Counts failed authentications per client address in a sliding window."""

    def __init__(self, max_failures: int = 10, window_seconds: float = 60.0, *,
                 now: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.now = now
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.get(client)
        if times is None:
            return deque()
        cutoff = self.now() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it is not blocked."""
        times = self._recent(client)
        if len(times) < self.max_failures:
            return None
        return max(1.0, times[0] + self.window - self.now())

    def record_failure(self, client: str) -> None:
        times = self._failures.setdefault(client, deque())
        self._failures.move_to_end(client)
        times.append(self.now())
        while len(times) > self.max_failures:
            times.popleft()
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


@dataclass
class AuthConfig:
    keys: KeyRing
    limiter: FailureLimiter = field(default_factory=FailureLimiter)


_bearer = HTTPBearer(auto_error=False, description="An API key from PUPPET_API_KEYS (or .puppet_api_key)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Scope,
                 *, query_token: str | None = None) -> ApiKey:
    """The caller's key, or an :class:`ApiError` (401, 403 or 429)."""
    auth: AuthConfig = request.app.state.auth
    client = _client(request)
    wait = auth.limiter.retry_after(client)
    if wait is not None:
        raise ApiError(429, f"too many failed authentication attempts; retry in {wait:.0f}s",
                       headers={"Retry-After": str(int(wait + 0.999))})
    token = credentials.credentials if credentials is not None else query_token
    if not token:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    key = auth.keys.match(token)
    if key is None:
        auth.limiter.record_failure(client)
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not key.allows(needed):
        raise ApiError(403, f"this API key has scope {key.scope!r}; this endpoint needs {needed!r}",
                       details={"scope": key.scope, "needed": needed})
    return key


def require(needed: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits keys with at least scope ``needed``."""

    async def dependency(request: Request, credentials: Bearer) -> ApiKey:
        return authenticate(request, credentials, needed)

    dependency.__name__ = f"require_{needed}"
    return dependency


def local_keyring(path: Path | str = KEY_FILE, *, announce: TextIO | None = None) -> KeyRing:
    """An admin key for a local run without ``PUPPET_API_KEYS``: reused from ``path``, else created there.

    The file is written with mode ``0600``. The key is printed once to ``announce``
    (stderr by default) for the operator to paste into the dashboard.
    """
    target = Path(path)
    key = _read_key_file(target)
    where = f"the key is kept in {target.resolve()}, mode 0600"
    try:
        if key is None:
            key = secrets.token_urlsafe(32)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key + "\n")
        os.chmod(target, 0o600)
    except OSError as exc:  # a read-only directory: the key still works for this run
        key = key or secrets.token_urlsafe(32)
        where = f"it could not be saved to {target.resolve()} ({exc.strerror or exc}) and lasts for this run only"
    out = announce or sys.stderr
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
