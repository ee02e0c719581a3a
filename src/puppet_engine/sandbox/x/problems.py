"""X API v2 error bodies, exactly as the real API sends them (PROTOCOLS §1.4)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

PROBLEMS = "https://api.twitter.com/2/problems"
TOO_LONG = ("Your Tweet text is too long. For more information on how Twitter determines text length see "
            "https://github.com/twitter/twitter-text.")
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
REPLY_MISSING = "You attempted to reply to a Tweet that is deleted or not visible to you."
REPLY_NOT_SUMMONED = ("Reply to this conversation is not allowed because you have not been mentioned or otherwise "
                      "engaged by the author of the post you are replying to.")
TOO_MANY_CASHTAGS = "You can only include one cashtag in a post created through the API."
UNSUPPORTED_AUTH = ("Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
                    "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].")


class XError(Exception):
    """Raised inside a handler; becomes the response with ``status`` and ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail") or body)
        self.status = status
        self.body = body


def problem(status: int, detail: str | None = None, *, title: str | None = None,
            type_: str = "about:blank", **extra: Any) -> dict[str, Any]:
    """The RFC 7807 form X v2 uses for auth, permission, limit and server errors."""
    phrase = HTTPStatus(status).phrase
    return {"title": title or phrase, "detail": detail or phrase, "type": type_, "status": status, **extra}


def invalid_request(message: str, parameters: dict[str, list[str]] | None = None) -> XError:
    error: dict[str, Any] = {"message": message}
    if parameters is not None:
        error = {"parameters": parameters, "message": message}
    return XError(400, {"errors": [error], "title": "Invalid Request",
                        "detail": "One or more parameters to your request was invalid.",
                        "type": f"{PROBLEMS}/invalid-request"})


def bad_parameter(name: str, value: str, message: str) -> XError:
    return invalid_request(message, {name: [value]})


def unauthorized() -> XError:
    return XError(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})


def forbidden(detail: str) -> XError:
    return XError(403, {"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403})


def unsupported_auth() -> XError:
    return XError(403, problem(403, UNSUPPORTED_AUTH, title="Unsupported Authentication",
                               type_=f"{PROBLEMS}/unsupported-authentication"))


def too_many_requests() -> XError:
    return XError(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                        "status": 429})


def not_found_error(kind: str, parameter: str, value: str) -> dict[str, Any]:
    """One entry of ``errors`` in a 200 partial response (or the body of a 404)."""
    return {"value": value, "detail": f"Could not find {kind} with {parameter}: [{value}].",
            "title": "Not Found Error", "resource_type": kind, "parameter": parameter, "resource_id": value,
            "type": f"{PROBLEMS}/resource-not-found"}


def not_found(kind: str, parameter: str, value: str) -> XError:
    entry = not_found_error(kind, parameter, value)
    return XError(404, {"errors": [entry], "title": "Not Found Error", "detail": entry["detail"],
                        "type": entry["type"]})


def fault_body(status: int) -> dict[str, Any]:
    """What X sends for an injected status with no explicit body."""
    if status == 429:
        return too_many_requests().body
    if status == 401:
        return unauthorized().body
    if status == 400:
        return invalid_request("Injected invalid request").body
    try:
        return problem(status)
    except ValueError:
        return {"title": "Error", "detail": f"HTTP {status}", "type": "about:blank", "status": status}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    media = "application/problem+json" if status >= 400 and "title" in body else "application/json"
    response = JSONResponse(body, status_code=status, headers=headers, media_type=media)
    response.headers["content-type"] = f"{media}; charset=utf-8"
    return response
