"""The OpenAI-compatible LLM API emulator: ``/openai/v1/...`` and ``/sandbox/openai/...``.

Endpoints: ``POST /v1/chat/completions`` (streaming too), ``POST /v1/embeddings``,
``GET /v1/models`` and ``GET /v1/models/{id}``. Keys are checked against
``SandboxConfig.openai_key`` (default ``sk-sandbox``) with OpenAI's 401 body;
responses carry OpenAI's headers (``x-request-id``, ``openai-processing-ms``,
``x-ratelimit-*``). ``SandboxConfig.extra["openai_rpm"]`` (requests per minute per
key) turns on real 429s; by default the window is only reported.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from puppet_engine.sandbox.llm import chat
from puppet_engine.sandbox.llm.problems import (
    OpenAIProblem,
    fault_body,
    invalid_key,
    missing_key,
    model_not_found,
    problem_response,
    rate_limited,
)
from puppet_engine.sandbox.service import SandboxHost, SandboxService

LIMIT_REQUESTS = 10_000
LIMIT_TOKENS = 30_000_000
WINDOW = 60.0


class OpenAIService(SandboxService):
    """Chat completions, embeddings and models, in the persona's voice, offline."""

    name = "openai"
    prefix = "/openai"

    def __init__(self, sandbox: SandboxHost) -> None:
        super().__init__(sandbox)
        self.rpm = int(sandbox.config.extra.get("openai_rpm", 0) or 0)
        self.obedient = bool(sandbox.config.extra.get("openai_obedient", False))  # see sandbox.llm.obedient
        self.windows: dict[str, tuple[float, int, int]] = {}  # key → (window start, requests, tokens)
        self.calls: deque[dict[str, Any]] = deque(maxlen=500)
        self._app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/{path:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ])

    def asgi_app(self) -> ASGIApp:
        return self._app

    # ------------------------------------------------------------------ plumbing

    def _id(self, prefix: str) -> str:
        return prefix + f"{self.sandbox.rng.getrandbits(96):024x}"

    def _key(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise missing_key()
        key = key.strip()
        if key != self.sandbox.config.openai_key:
            raise invalid_key(key)
        return key

    def _window(self, key: str, tokens: int, model: str) -> dict[str, str]:
        """Count the call in the key's minute window; the ``x-ratelimit-*`` headers; 429 past ``openai_rpm``."""
        now = self.sandbox.clock.now()
        start, requests, used = self.windows.get(key, (now, 0, 0))
        if now - start >= WINDOW:
            start, requests, used = now, 0, 0
        limit = self.rpm or LIMIT_REQUESTS
        reset_ms = max(1, int((start + WINDOW - now) * 1000))
        headers = {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-limit-tokens": str(LIMIT_TOKENS),
                   "x-ratelimit-reset-requests": f"{reset_ms}ms", "x-ratelimit-reset-tokens": f"{reset_ms}ms"}
        if self.rpm and requests >= self.rpm:
            headers.update({"x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-remaining-tokens": str(max(0, LIMIT_TOKENS - used))})
            raise rate_limited(model, self.rpm, headers)
        requests, used = requests + 1, used + tokens
        self.windows[key] = (start, requests, used)
        headers.update({"x-ratelimit-remaining-requests": str(max(0, limit - requests)),
                        "x-ratelimit-remaining-tokens": str(max(0, LIMIT_TOKENS - used))})
        return headers

    def _headers(self, started: float) -> dict[str, str]:
        return {"x-request-id": self._id("req_"), "openai-version": "2020-10-01",
                "openai-organization": "org-sandbox",
                "openai-processing-ms": str(max(1, int((time.perf_counter() - started) * 1000)))}

    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OpenAIProblem(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                                "payload, but what was sent was not valid JSON.") from None
        if not isinstance(body, dict):
            raise OpenAIProblem(400, "The request body must be a JSON object.")
        return body

    async def _handle(self, request: Request, work: Any) -> Response:
        started = time.perf_counter()
        try:
            key = self._key(request)
            return await work(key, started)
        except OpenAIProblem as problem:
            return problem_response(problem, self._headers(started))

    # ------------------------------------------------------------------ endpoints

    async def chat_completions(self, request: Request) -> Response:
        async def work(key: str, started: float) -> Response:
            body = await self._json(request)
            completion = chat.chat_completion(body, created=int(self.sandbox.clock.now()), ids=self._id,
                                              obedient=self.obedient)
            usage = completion["usage"]
            headers = {**self._window(key, usage["total_tokens"], completion["model"]), **self._headers(started)}
            self.calls.append({"endpoint": "chat", "model": completion["model"], "at": self.sandbox.clock.now(),
                               "prompt_tokens": usage["prompt_tokens"],
                               "completion_tokens": usage["completion_tokens"],
                               "finish_reason": completion["choices"][0]["finish_reason"]})
            if body.get("stream"):
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks = chat.stream_chunks(completion, include)
                return StreamingResponse(_sse(chunks), media_type="text/event-stream", headers=headers)
            return JSONResponse(completion, headers=headers)

        return await self._handle(request, work)

    async def embeddings(self, request: Request) -> Response:
        async def work(key: str, started: float) -> Response:
            body = await self._json(request)
            result = chat.embeddings(body)
            headers = {**self._window(key, result["usage"]["total_tokens"], result["model"]), **self._headers(started)}
            self.calls.append({"endpoint": "embeddings", "model": result["model"], "at": self.sandbox.clock.now(),
                               "prompt_tokens": result["usage"]["prompt_tokens"], "completion_tokens": 0})
            return JSONResponse(result, headers=headers)

        return await self._handle(request, work)

    async def models(self, request: Request) -> Response:
        async def work(key: str, started: float) -> Response:
            return JSONResponse(chat.model_list(int(self.sandbox.clock.now())), headers=self._headers(started))

        return await self._handle(request, work)

    async def model(self, request: Request) -> Response:
        async def work(key: str, started: float) -> Response:
            wanted = request.path_params["model"]
            for entry in chat.model_list(int(self.sandbox.clock.now()))["data"]:
                if entry["id"] == wanted:
                    return JSONResponse(entry, headers=self._headers(started))
            raise model_not_found(wanted)

        return await self._handle(request, work)

    async def not_found(self, request: Request) -> Response:
        problem = OpenAIProblem(404, f"Invalid URL ({request.method} {request.url.path[len(self.prefix):] or '/'})")
        return problem_response(problem)

    # ------------------------------------------------------------------ sandbox surface

    def fault_response(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        """OpenAI's body for an injected status; a 429 says ``retry-after-ms: 1`` so SDK retries are instant."""
        default_body, default_headers = fault_body(status)
        return JSONResponse(body if body is not None else default_body, status_code=status,
                            headers={**default_headers, "x-request-id": self._id("req_"), **(headers or {})})

    def garbage_response(self) -> Response:
        return Response('{"id":"chatcmpl-1","object":"chat.completion","choi', status_code=200,
                        media_type="application/json")

    def admin_router(self) -> APIRouter | None:
        router = APIRouter(tags=["sandbox-openai"])

        @router.get("/calls")
        async def calls(limit: int = 100) -> dict[str, Any]:
            """The latest calls the emulator answered (model, tokens, finish reason), newest last."""
            return {"calls": list(self.calls)[-max(1, min(limit, 500)):]}

        @router.post("/mode")
        async def mode(body: dict[str, bool]) -> dict[str, bool]:
            """Problem modes of the model: ``{"obedient": true}`` follows instructions found in prompts."""
            if "obedient" in body:
                self.obedient = bool(body["obedient"])
            return {"obedient": self.obedient}

        return router

    def snapshot(self) -> dict[str, Any]:
        return {"calls": list(self.calls)[-100:]}

    def restore(self, data: dict[str, Any]) -> None:
        self.calls.extend(data.get("calls", []))


async def _sse(chunks: list[dict[str, Any]]) -> Any:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
