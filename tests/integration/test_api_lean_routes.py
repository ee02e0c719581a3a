"""The lean routes answer exactly as the FastAPI routes they stand in front of.

``GET /agents`` and ``GET /health`` are served by a :class:`~puppet_engine.api.lean.LeanRoute`
when the query is plain, and by their FastAPI route otherwise. Two apps on one engine are
compared: as served, and with the FastAPI routes alone (the reference). For plain and unusual
queries alike, with every kind of ``Authorization`` header, status, headers and body are the same,
and so are the latency metric's counts by route and status; the plain requests, and only they,
are taken by the lean routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from api_helpers import ADMIN, KEYS, READ, auth, build_engine
from fastapi import APIRouter, Query
from starlette.responses import Response

from puppet_engine.api import KeyRing, create_app
from puppet_engine.api.lean import LeanRoute
from puppet_engine.observability.metrics import get_metrics

LIST_PLAIN = ("", "limit=2", "limit=500&offset=0", "offset=1&limit=1", "limit=007", "lim%69t=%32",
              "offset=10000000", "limit=2&")
LIST_UNUSUAL = ("limit=0", "limit=501", "limit=-1", "limit=+5", "limit=5.0", "limit=%205", "limit=1_0", "limit=",
                "limit", "limit=1&limit=2", "agent=coby", "limit=2&agent=coby", "limit=%D9%A3", "limit=0000000005",
                "offset=10000001", "offset=abc", "=5")
CREDENTIALS = (None, f"Bearer {READ}", f"bearer {READ}", f"Bearer {ADMIN}", "Bearer not-a-key-at-all-000",
               f"Basic {READ}", "Bearer ", f"Bearer  {READ}  ")


class Pair:
    """One request sent to both apps; which route served it in the app as served."""

    def __init__(self, served: httpx2.AsyncClient, reference: httpx2.AsyncClient, taken: list[Any]) -> None:
        self.clients = (served, reference)
        self.taken = taken

    async def same(self, method: str, path: str, headers: dict[str, str]) -> tuple[httpx2.Response, bool]:
        """The answer (checked equal in both apps, metrics too) and whether a lean route gave it."""
        before = _latency_counts()
        served, expected = [await c.request(method, path, headers=headers) for c in self.clients]
        case = f"{method} {path} with {headers}"
        assert (served.status_code, served.headers.multi_items(), served.content) == (
            expected.status_code, expected.headers.multi_items(), expected.content), case
        after = _latency_counts()
        for key in set(before) | set(after):
            assert after.get(key, 0) - before.get(key, 0) == (2 if key == (path.split("?")[0], str(served.status_code))
                                                                else 0), case
        return served, isinstance(self.taken[-1], LeanRoute)


def _latency_counts() -> dict[tuple[str, str], float]:
    """The latency metric's observations so far, by route and status."""
    metric = get_metrics().api_request_latency
    return {(s.labels["route"], s.labels["status"]): s.value
            for family in metric.collect() for s in family.samples if s.name.endswith("_count")}


@asynccontextmanager
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    engine = build_engine(tmp_path)
    await engine.start()
    try:
        served = create_app(engine, keys=KeyRing.parse(KEYS), auth_failures_per_minute=1000)
        reference = create_app(engine, keys=KeyRing.parse(KEYS), auth_failures_per_minute=1000)
        reference.router.routes[:] = [r for r in reference.router.routes if not isinstance(r, LeanRoute)]
        taken: list[Any] = []

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            await served(scope, receive, send)
            taken.append(scope.get("route"))

        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=recorded), base_url="http://api.test") as a, \
                httpx2.AsyncClient(transport=httpx2.ASGITransport(app=reference), base_url="http://api.test") as b:
            yield Pair(a, b, taken)
    finally:
        await engine.stop()


def _headers(credentials: str | None) -> dict[str, str]:
    return {"Authorization": credentials} if credentials is not None else {}


async def test_the_agents_list(tmp_path: Path) -> None:
    async with pair(tmp_path) as both:
        for query in LIST_PLAIN + LIST_UNUSUAL:
            for credentials in CREDENTIALS:
                answer, lean = await both.same("GET", f"/agents?{query}" if query else "/agents", _headers(credentials))
                assert lean == (query in LIST_PLAIN), (query, credentials, answer.text)
        served, lean = await both.same("GET", "/agents?limit=2", auth(READ))
        assert lean and served.status_code == 200 and len(served.json()["items"]) == 2


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_reach_fastapi(tmp_path: Path, method: str) -> None:
    async with pair(tmp_path) as both:
        for path in ("/agents", "/health"):
            _, lean = await both.same(method, path, auth(READ))
            assert not lean


async def test_health(tmp_path: Path) -> None:
    async with pair(tmp_path) as both:
        for query in ("", "?x=1", "?limit=2", "?", "?="):
            for credentials in (None, f"Bearer {READ}", "Bearer not-a-key-at-all-000"):
                answer, lean = await both.same("GET", f"/health{query}", _headers(credentials))
                assert answer.status_code == 200
                assert lean == (query in ("", "?")), (query, credentials)


def test_a_lean_route_refuses_what_it_could_not_check_as_fastapi_does() -> None:
    router = APIRouter()

    async def lean(request: Any, **query: int) -> Response:
        return Response()

    @router.get("/items/{item}")
    async def by_path(item: str) -> None: ...

    @router.get("/text")
    async def text(q: str = "") -> None: ...

    @router.get("/aliased")
    async def aliased(size: Annotated[int, Query(alias="page-size")] = 5) -> None: ...

    @router.get("/strict")
    async def strict(n: Annotated[int, Query(gt=0)] = 1) -> None: ...

    @router.post("/posted")
    async def posted(n: int = 1) -> None: ...

    @router.get("/plain")
    async def plain(n: Annotated[int, Query(ge=1, le=9)] = 3) -> None: ...

    for endpoint in (by_path, text, aliased, strict, posted):
        with pytest.raises(TypeError):
            LeanRoute.beside_endpoint(router, endpoint, lean)
    route = LeanRoute.beside_endpoint(router, plain, lean)
    assert route.plain_query(b"") == {"n": 3} and route.plain_query(b"n=9") == {"n": 9}
    assert route.plain_query(b"n=10") is None and route.plain_query(b"n=0") is None
