"""X API v2 failures translated, once, into :mod:`puppet_engine.errors`.

=====================================  ==================================
X answers                              raised
=====================================  ==================================
401, 403 unsupported-authentication,   ``AuthError``
403 client-not-enrolled
403 duplicate content                  ``DuplicateContent``
other 403 (reply not allowed, …)       ``ContentRejected``
400 on a post (too long, bad text)     ``ContentRejected``
other 400                              ``BadResponse`` (our request and X disagree)
402 credits depleted                   ``BudgetExceeded``
404                                    ``ContentRejected`` (the target is gone)
429                                    ``RateLimited`` (``retry_after`` from ``x-rate-limit-reset``)
5xx, timeout, connection error         ``ServiceUnavailable``
unparsable body                        ``BadResponse``
=====================================  ==================================

Messages name the call and X's own words (``detail`` / ``errors[].message``); they never
include credentials, headers or request bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from puppet_engine.errors import (
    AuthError,
    BadResponse,
    BudgetExceeded,
    ContentRejected,
    DuplicateContent,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)

SERVICE = "x"
DEFAULT_RETRY_AFTER = 60.0


def parse_body(content: bytes, where: str, status: int) -> Any:
    """The JSON body, or :class:`BadResponse` naming the call."""
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadResponse(f"{where}: HTTP {status} with a body that is not JSON ({len(content)} bytes)",
                          service=SERVICE, status=status) from None


def describe(body: Any) -> str:
    """X's explanation, as tweepy builds it: ``errors[].message`` (with codes), else ``detail``."""
    if not isinstance(body, dict):
        return ""
    parts = []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or ""
            code = error.get("code")
            parts.append(f"{code} - {message}" if code is not None and message else str(message))
    text = "\n".join(p for p in parts if p)
    return text or str(body.get("detail") or body.get("title") or "")


def error_for(status: int, content: bytes, headers: Mapping[str, str], *, where: str, now: float,
              posting: bool = False) -> ProviderError:
    """The exception for a non-2xx answer to ``where`` (e.g. ``POST /2/tweets``)."""
    try:
        body: Any = json.loads(content) if content else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    detail = describe(body) or f"HTTP {status}"
    message = f"{where}: {status} {detail}"
    kind = str(body.get("type", "")) if isinstance(body, dict) else ""
    if status == 429:
        return RateLimited(message, service=SERVICE, retry_after=retry_after(headers, now))
    if status >= 500:
        return ServiceUnavailable(message, service=SERVICE, status=status)
    if body is None:
        return BadResponse(f"{where}: HTTP {status} with a body that is not JSON", service=SERVICE, status=status)
    if status == 401:
        return AuthError(f"{where}: 401 unauthorized: the X credentials were refused", service=SERVICE, status=401)
    if status == 402:
        return BudgetExceeded(message, service=SERVICE, status=402)
    if status == 403:
        if "duplicate content" in detail.lower():
            return DuplicateContent(message, service=SERVICE, status=403)
        if kind.endswith(("unsupported-authentication", "client-forbidden")) or "reason" in (body or {}):
            return AuthError(message, service=SERVICE, status=403)
        return ContentRejected(message, service=SERVICE, status=403)
    if status == 404:
        return ContentRejected(message, service=SERVICE, status=404)
    if status == 400 and posting:
        return ContentRejected(message, service=SERVICE, status=400)
    return BadResponse(message, service=SERVICE, status=status)


def retry_after(headers: Mapping[str, str], now: float) -> float:
    """Seconds until ``x-rate-limit-reset`` (X sends no Retry-After), at least 1."""
    resets = []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        reset, remaining = headers.get(f"{prefix}-reset"), headers.get(f"{prefix}-remaining")
        if reset is None or (prefix != "x-rate-limit" and remaining not in ("0", None)):
            continue
        try:
            resets.append(float(reset))
        except ValueError:
            continue
    if not resets:
        return DEFAULT_RETRY_AFTER
    return max(1.0, max(resets) - now)


def not_found_only(body: Any) -> bool:
    """A 200 whose only content is ``errors`` of type resource-not-found (X's "partial" answer)."""
    if not isinstance(body, dict) or "data" in body:
        return False
    errors = body.get("errors") or []
    return bool(errors) and all(str(e.get("type", "")).endswith("resource-not-found") for e in errors)
