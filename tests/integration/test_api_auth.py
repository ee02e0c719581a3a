"""API authentication: scoped keys, the 401/403 matrix, failed-attempt limits, the local key, CORS."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import stat
from pathlib import Path
from typing import Any

import httpx2
import pytest
from api_helpers import ADMIN, CONTROL, KEYS, READ, assert_error, auth, build_engine, harness

from puppet_engine.api import KeyRing, create_app
from puppet_engine.api.auth import FailureLimiter, local_keyring
from puppet_engine.errors import ConfigError
from puppet_engine.memory.base import Memory
from puppet_engine.serving import BackgroundServer
from puppet_engine.settings import Settings
from puppet_engine.storage import Database

# (method, path, json body, scope needed) — one per kind of endpoint.
MATRIX = [
    ("GET", "/agents", None, "read"),
    ("GET", "/status", None, "read"),
    ("GET", "/nodes", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/events", None, "read"),
    ("POST", "/agents/nova/post", {"topic": "tea"}, "control"),
    ("POST", "/agents/coby/stop", None, "control"),
    ("POST", "/memory/nova", {"content": "a fact"}, "control"),
    ("POST", "/news", {"text": "big news"}, "control"),
    ("PUT", "/config", {"log_level": "INFO"}, "admin"),
    ("GET", "/config", None, "admin"),
    ("POST", "/system/restart", None, "admin"),
]
RANK = {"read": 1, "control": 2, "admin": 3}


def test_key_ring_parsing() -> None:
    ring = KeyRing.parse(" k1:admin , colon:in:key:read,")
    assert [(k.key, k.scope) for k in ring.keys] == [("k1", "admin"), ("colon:in:key", "read")]
    assert ring.match("colon:in:key").scope == "read"  # type: ignore[union-attr]
    assert ring.match("k1x") is None and ring.match("") is None
    assert "k1" not in repr(ring) and "colon" not in repr(ring)
    for bad in ("k1", "k1:root", ":admin", "", " , "):
        with pytest.raises(ConfigError, match="PUPPET_API_KEYS"):
            KeyRing.parse(bad)


async def test_failure_limiter_window_is_kept_in_the_database(tmp_path: Path) -> None:
    now = [100.0]
    db = Database(f"sqlite:///{tmp_path / 'limits.db'}")
    other_process = Database(f"sqlite:///{tmp_path / 'limits.db'}")
    try:
        await db.migrate()
        limiter = FailureLimiter(db, max_failures=3, window_seconds=60, now=lambda: now[0])
        sibling = FailureLimiter(other_process, max_failures=3, window_seconds=60, now=lambda: now[0])
        assert await limiter.record_failure("1.2.3.4") is None
        assert await sibling.record_failure("1.2.3.4") is None  # another process adds to the same count
        assert await limiter.record_failure("1.2.3.4") is None
        assert await sibling.failures("1.2.3.4") == 3
        assert await sibling.record_failure("1.2.3.4") == pytest.approx(60.0)
        now[0] += 30
        assert await limiter.record_failure("1.2.3.4") == pytest.approx(30.0)  # learnt from the shared count
        for _ in range(50):  # a flood from a source known to be limited costs no database write
            assert await limiter.record_failure("1.2.3.4") == pytest.approx(30.0)
        assert await limiter.failures("1.2.3.4") == 5
        assert await limiter.record_failure("5.6.7.8") is None
        now[0] += 31  # the window has passed: the count starts again
        assert await limiter.failures("1.2.3.4") == 0
        assert await limiter.record_failure("1.2.3.4") is None
        assert await limiter.failures("1.2.3.4") == 1
    finally:
        await db.close()
        await other_process.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_concurrent_failures_from_two_processes_are_all_counted(tmp_path: Path, backend: str,
                                                                      request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'c.db'}"
    first, second = Database(url), Database(url)
    try:
        if backend == "sqlite":
            await first.migrate()
        limiters = [FailureLimiter(db, max_failures=100, window_seconds=60) for db in (first, second)]
        await asyncio.gather(*(limiters[n % 2].record_failure("198.51.100.9") for n in range(40)))
        assert await limiters[0].failures("198.51.100.9") == 40  # one upsert each: no failure lost
    finally:
        await first.close()
        await second.close()


async def test_auth_matrix(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        client = api.client
        assert (await client.get("/health")).status_code == 200  # the one open endpoint
        for method, path, body, needed in MATRIX:
            kwargs = {"json": body} if body is not None else {}
            assert_error(await client.request(method, path, **kwargs), 401, "unauthorized")
            response = await client.request(method, path, headers={"Authorization": "Bearer"}, **kwargs)
            assert response.status_code == 401, (method, path)
            for key, scope in ((READ, "read"), (CONTROL, "control"), (ADMIN, "admin")):
                response = await client.request(method, path, headers=auth(key), **kwargs)
                if RANK[scope] < RANK[needed]:
                    error = assert_error(response, 403, "forbidden")
                    assert error["details"] == {"scope": scope, "needed": needed}
                else:
                    assert response.status_code < 300, (method, path, scope, response.text)


async def test_wrong_keys_are_rate_limited_per_client_and_a_valid_key_is_never_refused(tmp_path: Path) -> None:
    async with harness(tmp_path, auth_failures_per_minute=5) as api:
        for _ in range(5):
            assert_error(await api.get("/agents", key="wrong-key"), 401, "unauthorized")
        limited = await api.get("/agents", key="wrong-key")
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        # Others' failures from the same address (a NAT, a proxy) do not lock the operator out.
        assert (await api.get("/agents", key=ADMIN)).status_code == 200
        assert_error(await api.get("/agents", key="wrong-key"), 429, "rate_limited")
        other = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=api.app, client=("10.9.9.9", 4000)),
                                   base_url="http://api.test")
        async with other:
            assert_error(await other.get("/agents", headers=auth("wrong-key")), 401, "unauthorized")
        assert (await api.client.get("/health")).status_code == 200


async def test_ten_failures_then_the_valid_key_from_the_same_address(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:  # the default limit: 10 a minute
        for attempt in range(10):
            assert_error(await api.get("/agents", key=f"guess-{attempt}"), 401, "unauthorized")
        assert (await api.get("/agents", key=READ)).status_code == 200
        assert_error(await api.get("/agents", key="guess-10"), 429, "rate_limited")


async def test_two_api_apps_on_one_database_share_the_failure_count(tmp_path: Path) -> None:
    async with harness(tmp_path, auth_failures_per_minute=6) as api:
        second_engine = build_engine(tmp_path)  # another process: its own connections to the same file
        try:
            second = create_app(second_engine, keys=KeyRing.parse(KEYS), auth_failures_per_minute=6)
            transport = httpx2.ASGITransport(app=second)
            async with httpx2.AsyncClient(transport=transport, base_url="http://api.test") as client:
                for attempt in range(3):
                    assert_error(await api.get("/agents", key=f"a-{attempt}"), 401)
                    assert_error(await client.get("/agents", headers=auth(f"b-{attempt}")), 401)
                assert_error(await client.get("/agents", headers=auth("b-3")), 429, "rate_limited")
                assert_error(await api.get("/agents", key="a-3"), 429, "rate_limited")
                assert (await client.get("/agents", headers=auth(READ))).status_code == 200
        finally:
            await second_engine.db.close()


async def _serve(app: Any, forwarded_allow_ips: str = "") -> BackgroundServer:
    server = BackgroundServer(app, forwarded_allow_ips=forwarded_allow_ips)
    await server.start()
    return server


async def test_forwarded_addresses_are_believed_only_from_configured_proxies(tmp_path: Path) -> None:
    assert Settings(_env_file=None).forwarded_allow_ips == ""  # type: ignore[call-arg]
    async with harness(tmp_path, auth_failures_per_minute=5) as api:
        server = await _serve(api.app)  # FORWARDED_ALLOW_IPS unset: loopback is a client like any other
        try:
            async with httpx2.AsyncClient(base_url=server.url) as client:
                statuses = [(await client.get("/agents", headers={**auth(f"bad-{n}"),
                                                                  "X-Forwarded-For": f"10.0.0.{n}"})).status_code
                            for n in range(12)]
                assert statuses == [401] * 5 + [429] * 7, statuses
                assert (await client.get("/agents", headers=auth(ADMIN))).status_code == 200
        finally:
            await server.stop()
        proxied = create_app(api.engine, keys=KeyRing.parse(KEYS), auth_failures_per_minute=5)
        server = await _serve(proxied, forwarded_allow_ips="127.0.0.1")  # behind a proxy on loopback
        try:
            async with httpx2.AsyncClient(base_url=server.url) as client:
                spread = [(await client.get("/agents", headers={**auth(f"bad-{n}"),
                                                                "X-Forwarded-For": f"10.0.1.{n}"})).status_code
                          for n in range(6)]
                assert spread == [401] * 6  # six clients behind the proxy, one failure each
                one = [(await client.get("/agents", headers={**auth(f"bad-{n}"),
                                                             "X-Forwarded-For": "10.0.1.200"})).status_code
                       for n in range(6)]
                assert one == [401] * 5 + [429]
        finally:
            await server.stop()


async def test_local_key_file_is_private_reused_and_printed_once(tmp_path: Path) -> None:
    key_file = tmp_path / ".puppet_api_key"
    out = io.StringIO()
    ring = local_keyring(key_file, announce=out)
    [key] = ring.keys
    assert key.scope == "admin" and len(key.key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == key.key
    assert out.getvalue().count(key.key) == 1
    later_start = io.StringIO()
    again = local_keyring(key_file, announce=later_start)
    assert again.keys[0].key == key.key
    assert key.key not in later_start.getvalue() and str(key_file) in later_start.getvalue()

    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    note = io.StringIO()
    if os.access(read_only, os.W_OK):  # running as root: permissions do not bind, use a missing parent
        read_only = tmp_path / "missing" / "dir"
    fallback = local_keyring(read_only / ".puppet_api_key", announce=note)
    assert len(fallback.keys[0].key) >= 32 and "this run only" in note.getvalue()


async def test_app_without_keys_generates_one(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        out = io.StringIO()
        app = create_app(api.engine, key_file=tmp_path / "k", announce=out)
        key = (tmp_path / "k").read_text().strip()
        assert key in out.getvalue()
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/config", headers=auth(key))).status_code == 200
            assert (await client.get("/config")).status_code == 401


async def test_cors_closed_by_default_and_opened_by_setting(tmp_path: Path) -> None:
    preflight = {"Origin": "https://ops.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    async with harness(tmp_path) as api:
        closed = await api.client.options("/agents", headers=preflight)
        assert "access-control-allow-origin" not in closed.headers
        got = await api.client.get("/agents", headers={**auth(ADMIN), "Origin": "https://ops.example"})
        assert "access-control-allow-origin" not in got.headers
        app = create_app(api.engine, keys=KeyRing.parse(f"{ADMIN}:admin"), cors_origins=["https://ops.example"])
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as client:
            opened = await client.options("/agents", headers=preflight)
            assert opened.headers["access-control-allow-origin"] == "https://ops.example"
            other = await client.options("/agents", headers={**preflight, "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers


async def test_security_headers_on_every_response(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        for response in (await api.client.get("/"), await api.get("/agents"), await api.client.get("/agents")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_openapi_needs_a_read_key_and_there_is_no_swagger_page(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        assert_error(await api.client.get("/openapi.json"), 401, "unauthorized")
        document = await api.get("/openapi.json", key=READ)
        assert document.status_code == 200 and "/agents" in document.json()["paths"]
        assert "/openapi.json" not in document.json()["paths"]
        for key in (None, ADMIN):  # Swagger UI loads from a CDN the CSP blocks: it is not served
            headers = auth(key) if key else {}
            assert (await api.client.get("/docs", headers=headers)).status_code in (401, 404)
        dashboard = await api.client.get("/")  # the dashboard page stays open; its data needs a key
        assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
        assert (await api.client.get("/dashboard/app.js")).status_code == 200


async def test_unknown_query_parameters_are_checked_after_authentication(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        for path in ("/events?x=1", "/events?limit=abc&x=1", "/agents/coby/timeline?x=1", "/config?x=1",
                     "/feed?backlog=abc", "/feed?x=1"):
            response = await api.client.get(path)
            error = assert_error(response, 401, "unauthorized")
            assert "limit" not in response.text and "takes" not in response.text, (path, error)
        listed = assert_error(await api.get("/events?x=1", key=READ), 422, "validation_error")
        assert "query.x" in listed["message"] and "limit" in listed["message"]
        assert_error(await api.get("/config?x=1", key=READ), 403, "forbidden")  # scope before parameters


async def test_no_redirect_is_built_from_the_host_header(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        for path in ("/agents/", "/events/", "/agents/coby/", "/health/"):
            for key in (None, ADMIN):
                headers = {"Host": "evil.example", **(auth(key) if key else {})}
                response = await api.client.get(path, headers=headers)
                assert not 300 <= response.status_code < 400, (path, response.status_code)
                assert "evil.example" not in response.headers.get("location", "")
                assert "evil.example" not in response.text


async def test_sqlite_file_is_created_private(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'data' / 'engine.db'}")
    try:
        await db.migrate()
        for name in ("engine.db", "engine.db-wal", "engine.db-shm"):
            path = tmp_path / "data" / name
            if path.exists() or name == "engine.db":
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    finally:
        await db.close()


async def test_memory_metadata_has_a_size_limit(tmp_path: Path) -> None:
    async with harness(tmp_path) as api:
        fits = await api.post("/memory/nova", json={"content": "a fact", "metadata": {"note": "x" * 15_000}})
        assert fits.status_code == 201, fits.text
        for big in ({"note": "x" * 17_000}, {"blob": "é" * 9_000}, {f"k{i}": i for i in range(3_000)}):
            error = assert_error(await api.post("/memory/nova", json={"content": "a fact", "metadata": big}), 422)
            assert error["message"].startswith("body.metadata:") and "16384" in error["message"]
        store = api.app.state.ctx.memory_store(api.engine.manager.agents["nova"])
        with pytest.raises(ValueError, match="metadata"):  # the store refuses it too, whoever calls
            await store.add_memory("nova", Memory(content="x", metadata={"blob": "x" * 20_000}))


def test_oauthlib_never_logs_signature_base_strings() -> None:
    from oauthlib.oauth1 import Client

    from puppet_engine.observability.logging import configure_logging, reset_logging

    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)
    try:
        signer = Client("consumer-key-1234", client_secret="consumer-secret-5678",
                        resource_owner_key="token-abcd", resource_owner_secret="token-secret-efgh")
        signer.sign("https://api.x.com/2/tweets", http_method="POST", body='{"text":"hi"}',
                    headers={"Content-Type": "application/json"})
        logging.getLogger("puppet_engine.test").debug("debug lines still come out")
    finally:
        reset_logging()
    assert "debug lines still come out" in out.getvalue()
    assert "base string" not in out.getvalue() and "consumer-key-1234" not in out.getvalue()
