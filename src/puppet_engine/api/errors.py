"""One error shape for every API response: ``{"error": {"code", "message", "details"}}``.

Routes raise :class:`ApiError` (or let a ``puppet_engine.errors`` exception through);
the handlers installed by :func:`install_error_handlers` turn everything — FastAPI's
own 404/405, request validation errors, engine errors, and unexpected crashes — into
that shape with a status code that means what it says. Unexpected exceptions are
logged (redacted by the logging setup) and answered with a bare 500 that reveals
nothing about the internals.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from puppet_engine.errors import AgentConfigError, ConfigError, PuppetError, StorageError

log = structlog.get_logger("puppet_engine.api")

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_error", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


class ApiError(Exception):
    """An error to answer with: HTTP status, a stable machine code, a human message, details."""

    def __init__(self, status: int, message: str, *, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers
        super().__init__(message)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"no {what} with id {ident!r}")


def conflict(message: str, **details: Any) -> ApiError:
    return ApiError(409, message, details=details or None)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, message: str, *, code: str | None = None, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_body(code or _CODES.get(status, "error"), message, details)
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "agents", 0)`` → ``body.agents[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors → ``[{"field": "body.text", "message": ..., "type": ...}]`` (no input echoed)."""
    return [{"field": _loc(err.get("loc", ())), "message": str(err.get("msg", "invalid value")),
             "type": str(err.get("type", "value_error"))} for err in errors]


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, code=exc.code, details=exc.details, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else _CODES.get(status, "error").replace("_", " ")
    if status == 400 and message == "There was an error parsing the body":
        message = "the request body could not be parsed (send JSON in UTF-8)"
    if status == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(status, message, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(list(exc.errors()))
    first = details[0] if details else {"field": "request", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(422, message, details=details)


async def _puppet_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, AgentConfigError):
        return error_response(422, "invalid agent config", code="invalid_config",
                              details=[{"message": p} for p in exc.problems])
    if isinstance(exc, ConfigError):
        return error_response(400, str(exc), code="invalid_config")
    if isinstance(exc, StorageError):
        log.error("api_storage_error", path=request.url.path, error=str(exc))
        return error_response(503, "the database is unavailable", code="unavailable")
    log.warning("api_engine_error", path=request.url.path, error=str(exc), kind=type(exc).__name__)
    # Engine errors name the problem without secrets (errors.py); redact anyway, in case.
    return error_response(503, f"{type(exc).__name__}: {_redact(str(exc))}", code="unavailable")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("api_unhandled_error", path=request.url.path, method=request.method,
              error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    return error_response(500, "internal error; see the server log", code="internal_error")


def _redact(text: str) -> str:
    try:
        from puppet_engine.observability.logging import redact
    except ImportError:
        return text
    return redact(text)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PuppetError, _puppet_error)
    app.add_exception_handler(Exception, _unexpected)
