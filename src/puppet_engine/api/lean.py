"""A hot ``GET`` endpoint served in front of its FastAPI route, without FastAPI's per-request machinery.

FastAPI resolves each request's dependencies, validates its parameters through pydantic and
runs the endpoint inside exit stacks of its own: on ``GET /agents`` with a handful of agents,
and on ``GET /health``, that cost more than the route's own work (``bench/api.py``).

A :class:`LeanRoute` stands in front of an :class:`~fastapi.routing.APIRoute` and takes over
only the requests of the plain shape: a ``GET`` whose query holds nothing but the route's own
integer parameters, each at most once, written as decimal digits within the parameter's bounds
(no query at all for a route without parameters). Every other request (a malformed or
out-of-range value, an unknown or repeated parameter, another method) does not match it and
goes on to the FastAPI route, which answers it exactly as before. The FastAPI route also
remains the endpoint's entry in the OpenAPI document, and the lean route takes its path,
parameter names, defaults and bounds from it, so the two cannot drift apart.

The lean endpoint gets the parsed values as keyword arguments and does what the FastAPI route's
dependencies did (authentication: :func:`~puppet_engine.api.auth.authorize`); what it raises
goes to the app's error handlers like any route's error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import annotated_types
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

LeanEndpoint = Callable[..., Awaitable[Response]]
_QUERY_KEY = "puppet_engine.lean_query"  # the parsed query, from matches() to the endpoint
_MAX_DIGITS = 9  # longer numbers (leading zeros, huge values) are left to FastAPI's validation


@dataclass(frozen=True)
class IntQuery:
    """An optional integer query parameter: its name, default and inclusive bounds."""

    name: str
    default: int
    low: int | None
    high: int | None

    @classmethod
    def of(cls, field: Any) -> IntQuery:
        """The parameter a FastAPI route declares as ``name: Annotated[int, Query(ge=, le=)] = default``."""
        info = field.field_info
        if info.annotation is not int or not isinstance(info.default, int) or isinstance(info.default, bool):
            raise TypeError(f"query parameter {field.alias!r}: a lean route takes optional int parameters only")
        if field.alias != field.name:  # the query's name is also the endpoint's keyword
            raise TypeError(f"query parameter {field.alias!r}: a lean route takes no aliased parameter")
        low = high = None
        for rule in info.metadata:
            if isinstance(rule, annotated_types.Ge):
                low = int(rule.ge)  # type: ignore[call-overload]
            elif isinstance(rule, annotated_types.Le):
                high = int(rule.le)  # type: ignore[call-overload]
            else:
                raise TypeError(f"query parameter {field.alias!r}: {rule!r} is not a bound a lean route checks")
        return cls(field.alias, info.default, low, high)

    def parse(self, text: str) -> int | None:
        """The value of ``text`` when it is plain digits within the bounds (which pydantic reads
        the same way), else ``None``."""
        if not (0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()):
            return None
        value = int(text)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return None
        return value


class LeanRoute(Route):
    """``endpoint(request, **query)`` for the plain ``GET`` requests of ``beside``'s path (see the module)."""

    def __init__(self, beside: APIRoute, endpoint: LeanEndpoint) -> None:
        dependant = beside.dependant
        if dependant.path_params or dependant.header_params or dependant.cookie_params or dependant.body_params:
            raise TypeError(f"{beside.path}: a lean route serves paths with query parameters only")
        if beside.methods != {"GET"}:
            raise TypeError(f"{beside.path}: a lean route serves GET only")
        self.query = {param.name: param for param in map(IntQuery.of, dependant.query_params)}
        self.defaults = {param.name: param.default for param in self.query.values()}
        self.lean_endpoint = endpoint
        super().__init__(beside.path, self._serve, methods=["GET"], name=f"{beside.name}:lean",
                         include_in_schema=False)

    @classmethod
    def beside_endpoint(cls, router: APIRouter, documented: Callable[..., Any], endpoint: LeanEndpoint) -> LeanRoute:
        """The lean route for ``router``'s FastAPI route of ``documented``, served by ``endpoint``."""
        [beside] = [r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is documented]
        return cls(beside, endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        values = self.plain_query(scope["query_string"])
        if values is None:
            return Match.NONE, {}
        child_scope["route"] = self  # what the metrics label a request by, as for FastAPI's routes
        child_scope[_QUERY_KEY] = values
        return Match.FULL, child_scope

    def plain_query(self, query_string: bytes) -> dict[str, int] | None:
        """The parameters' values when the query is of the plain shape, else ``None``."""
        values = dict(self.defaults)
        if not query_string:
            return values
        seen = set()
        # Parsed as Starlette parses a query (percent-decoding, blank values kept).
        for name, text in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            param = self.query.get(name)
            if param is None or name in seen:
                return None
            seen.add(name)
            value = param.parse(text)
            if value is None:
                return None
            values[name] = value
        return values

    async def _serve(self, request: Request) -> Response:
        return await self.lean_endpoint(request, **request.scope[_QUERY_KEY])
