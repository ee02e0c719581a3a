"""API authentication cannot be walked around: path tricks, header variants, methods, brute force.

Every protected endpoint must answer a request without a valid key with an error and
no data, whatever the path spelling (``//agents``, ``/health/../agents``, ``%2e``,
trailing slashes, case), the way the key is sent (lowercase scheme, other schemes,
query strings, extra headers) or the method (HEAD, OPTIONS); and guessing keys is
rate-limited per client, which a forged ``X-Forwarded-For`` does not change, while a valid
key from a limited address is still served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from puppet_engine.api import KeyRing, create_app

from .helpers import persona, rig

ADMIN = "bypass-admin-key-7e3f9c1a5b"
READ = "bypass-read-key-2c8d4a6f0e"
PROTECTED = ["/agents", "/agents/kit", "/config", "/metrics", "/events", "/status", "/memory/kit",
             "/trading/kit/stats", "/health/details"]
SECRET_MARKERS = ("kit", "puppet_", "database_url", "items")


def variants(path: str) -> list[str]:
    head, _, tail = path.lstrip("/").partition("/")
    rest = f"/{tail}" if tail else ""
    return [
        f"/{path.lstrip('/')}/", f"/{path.lstrip('/')}//", f"/{head.upper()}{rest}", f"/{head}%2F{tail}",
        f"/%{ord(head[0]):02x}{head[1:]}{rest}", f"/health/../{head}{rest}", f"/health/%2e%2e/{head}{rest}",
        f"/health/..%2f{head}{rest}", f"/./{head}{rest}", f"/{head}{rest};x=1", f"/{head}{rest}?next=/health",
        f"/dashboard/../{head}{rest}", f"/dashboard/..%2F{head}{rest}", f"/{head}{rest}%00", f"/{head}{rest}/.",
        f"/{head}{rest}%20", f"/docs/../{head}{rest}",
    ]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    async with rig(tmp_path, persona("kit")) as r:
        app = create_app(r.engine, keys=KeyRing.parse(f"{ADMIN}:admin,{READ}:read"), auth_failures_per_minute=1000)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://api") as client:
            yield client


def leaked(response: httpx2.Response) -> bool:
    """A 2xx that carries data from a protected endpoint."""
    return response.status_code < 300 and any(m in response.text for m in SECRET_MARKERS)


async def test_path_tricks_never_reach_a_protected_endpoint_without_a_key(api: httpx2.AsyncClient) -> None:
    assert (await api.get("/agents", headers={"Authorization": f"Bearer {READ}"})).status_code == 200
    assert "kit" in (await api.get("/agents", headers={"Authorization": f"Bearer {READ}"})).text
    through = []
    for path in PROTECTED:
        for variant in [path, *variants(path)]:
            response = await api.get(variant, follow_redirects=True)
            if leaked(response):
                through.append((variant, response.status_code))
            if response.status_code < 300:  # an open page (the dashboard, /health) is fine; data is not
                assert variant.startswith(("/health", "/dashboard", "/docs", "/./", "/agents?next")) or \
                    "health" in variant or "dashboard" in variant or "docs" in variant, (variant, response.text[:200])
    assert through == []


async def test_header_variants_need_the_exact_key(api: httpx2.AsyncClient) -> None:
    wrong = f"{ADMIN[:-1]}x"
    refused: list[dict[str, str]] = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"bearer {wrong}"},
        {"Authorization": f"Basic {ADMIN}"}, {"Authorization": f"Token {ADMIN}"}, {"Authorization": ADMIN},
        {"Authorization": f"Bearer {ADMIN[:-1]}"}, {"Authorization": f"Bearer {ADMIN} extra"},
        {"Authorization": f"Bearer {ADMIN}x"}, {"X-API-Key": ADMIN}, {"Cookie": f"api_key={ADMIN}"},
        {"Authorization": f"Bearer {ADMIN.upper()}"}, {"X-Forwarded-User": "admin", "X-Original-URL": "/health"},
    ]
    for headers in refused:
        for path in ("/agents", "/config"):
            response = await api.get(path, headers=headers)
            assert response.status_code in (401, 403), (headers, path, response.status_code)
            assert not leaked(response)
    for query in (f"api_key={ADMIN}", f"token={ADMIN}", f"key={ADMIN}", f"access_token={ADMIN}"):
        response = await api.get(f"/config?{query}")
        assert response.status_code in (401, 422), (query, response.status_code)  # 422: unknown parameter
        assert not leaked(response)
    # A read key cannot act, however it is sent.
    for method, path in (("POST", "/agents/kit/stop"), ("PUT", "/config"), ("POST", "/system/restart")):
        response = await api.request(method, path, headers={"Authorization": f"Bearer {READ}"}, json={})
        assert response.status_code == 403, (method, path, response.status_code)


async def test_head_and_options_give_nothing_away(api: httpx2.AsyncClient) -> None:
    for path in PROTECTED:
        head = await api.head(path)
        assert head.status_code in (401, 404, 405), (path, head.status_code)
        assert head.content == b""
        options = await api.options(path, headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
        assert options.status_code in (400, 401, 404, 405), (path, options.status_code)
        assert not leaked(options)
        assert "access-control-allow-origin" not in options.headers


async def test_guessing_keys_is_rate_limited_per_client_even_with_forged_addresses(tmp_path: Path) -> None:
    async with rig(tmp_path, persona("kit")) as r:
        app = create_app(r.engine, keys=KeyRing.parse(f"{ADMIN}:admin"), auth_failures_per_minute=5)
        transport = httpx2.ASGITransport(app=app, client=("203.0.113.7", 5000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://api") as attacker:
            statuses = []
            for attempt in range(12):
                headers = {"Authorization": f"Bearer guess-{attempt:04d}-{'x' * 20}",
                           "X-Forwarded-For": f"198.51.100.{attempt}", "X-Real-IP": f"198.51.100.{attempt}"}
                statuses.append((await attacker.get(f"/agents?limit={attempt + 1}", headers=headers)).status_code)
            assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
            blocked = await attacker.get("/config", headers={"Authorization": "Bearer guess-last"})
            assert blocked.status_code == 429 and "retry-after" in blocked.headers
            assert not leaked(blocked)
            # Only failures are limited: the operator behind the same address still gets in.
            assert (await attacker.get("/config", headers={"Authorization": f"Bearer {ADMIN}"})).status_code == 200
        other = httpx2.ASGITransport(app=app, client=("192.0.2.44", 5001))
        async with httpx2.AsyncClient(transport=other, base_url="http://api") as operator:
            assert (await operator.get("/agents", headers={"Authorization": f"Bearer {ADMIN}"})).status_code == 200
