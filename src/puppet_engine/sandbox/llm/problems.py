"""OpenAI's error bodies and headers, as the emulator sends them.

Every error is ``{"error": {"message", "type", "param", "code"}}`` with the status
the real API uses, so the official SDK raises the same exception classes
(``AuthenticationError``, ``RateLimitError``, ``BadRequestError`` …) it would
against api.openai.com.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

KEYS_URL = "https://platform.openai.com/account/api-keys"


class OpenAIProblem(Exception):
    """Raised inside a handler; rendered by :func:`problem_response`."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def problem_response(problem: OpenAIProblem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, headers={**(headers or {}), **problem.headers})


def mask_key(key: str) -> str:
    """``sk-abc***wxyz`` as OpenAI prints a rejected key (short keys fully masked)."""
    if len(key) <= 10:
        return "*" * len(key)
    return f"{key[:6]}***{key[-4:]}"


def missing_key() -> OpenAIProblem:
    return OpenAIProblem(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                         "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
                         "(with blank username) if you're accessing the API from your browser and are prompted for "
                         f"a username and password. You can obtain an API key from {KEYS_URL}.")


def invalid_key(key: str) -> OpenAIProblem:
    return OpenAIProblem(401, f"Incorrect API key provided: {mask_key(key)}. You can find your API key at {KEYS_URL}.",
                         code="invalid_api_key")


def model_not_found(model: str) -> OpenAIProblem:
    return OpenAIProblem(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found")


def missing_param(param: str) -> OpenAIProblem:
    return OpenAIProblem(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def invalid_param(param: str, message: str, code: str = "invalid_value") -> OpenAIProblem:
    return OpenAIProblem(400, message, param=param, code=code)


def rate_limited(model: str, limit: int, headers: dict[str, str] | None = None) -> OpenAIProblem:
    return OpenAIProblem(
        429, f"Rate limit reached for {model} in organization org-sandbox on requests per min (RPM): "
             f"Limit {limit}, Used {limit}, Requested 1. Please try again in 1ms. Visit "
             "https://platform.openai.com/account/rate-limits to learn more.",
        type="requests", code="rate_limit_exceeded", headers={"retry-after-ms": "1", "retry-after": "0",
                                                              **(headers or {})})


def fault_body(status: int, model: str = "gpt-4o-mini") -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers OpenAI sends with ``status`` (used by injected faults)."""
    if status == 401:
        return invalid_key("sk-injected-fault-key").body(), {}
    if status == 429:
        problem = rate_limited(model, 3)
        return problem.body(), problem.headers
    if status == 503:
        return OpenAIProblem(503, "The engine is currently overloaded, please try again later.",
                             type="server_error").body(), {}
    if status >= 500:
        return OpenAIProblem(status, "The server had an error while processing your request. Sorry about that!",
                             type="server_error").body(), {}
    if status == 404:
        return model_not_found(model).body(), {}
    return OpenAIProblem(status, f"Injected error {status}.").body(), {}
