"""``OpenAIProvider``: chat completions through the official ``openai`` SDK.

Works with OpenAI itself, the sandbox's ``/openai/v1`` emulator and any
OpenAI-compatible server (see :mod:`puppet_engine.llm.grok` and
:class:`OpenAICompatibleProvider`). The SDK owns HTTP, retries (``max_retries``,
honouring ``retry-after``) and timeouts over an injectable ``httpx2.AsyncClient``;
this module translates the wire format and, once, the SDK's exceptions into
:mod:`puppet_engine.errors`. API keys never appear in messages or reprs.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2

from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    ContentRejected,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.llm.base import Completion, CompletionRequest, LLMProvider, Usage
from puppet_engine.llm.messages import estimate_tokens
from puppet_engine.observability.upstream import upstream
from puppet_engine.settings import Settings

_KEYS = re.compile(r"\b(sk|xai|gsk)-[A-Za-z0-9*_\-]{3,}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_REJECTED_CODES = {"content_filter", "content_policy_violation", "context_length_exceeded", "string_above_max_length"}


def _sdk() -> Any:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - openai is a core dependency
        raise ConfigError("the openai package is required: pip install puppet-engine") from exc
    return openai


def secret_text(value: object) -> str:
    """The clear text of a ``SecretStr`` (or of a plain value); "" when unset."""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value or "")


def parse_duration(text: str) -> float | None:
    """``"1s"``, ``"6m0s"``, ``"12ms"``, ``"1.5"`` → seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[unit] for n, unit in parts)


def retry_after(headers: Any) -> float:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` or the ``x-ratelimit-reset-*`` headers."""
    if headers is None:
        return 1.0
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        seconds = parse_duration(value)
        if seconds is not None:
            return seconds
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    resets = [parse_duration(headers.get(h) or "") for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")]
    known = [r for r in resets if r is not None]
    return max(known) if known else 1.0


def redact(text: str) -> str:
    """Remove anything shaped like an API key (vendors echo masked keys in 401 bodies)."""
    return _KEYS.sub("***", text)


def error_message(exc: Any) -> str:
    """The human message of an SDK error, whatever the body shape (OpenAI nested, xAI flat)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        text = body.get("message") or body.get("error") or body.get("detail") or str(body)
    elif isinstance(body, str) and body:
        text = body
    else:
        text = getattr(exc, "message", None) or str(exc)
    return redact(" ".join(str(text).split()))[:300]


def translate_error(exc: Exception, service: str) -> ProviderError:
    """One SDK exception → the matching :mod:`puppet_engine.errors` class."""
    sdk = _sdk()
    message = error_message(exc)
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "code", None) or "")
    lowered = message.lower()
    if isinstance(exc, sdk.RateLimitError):
        if code == "insufficient_quota" or "quota" in lowered or "credits" in lowered:
            return AuthError(f"quota exhausted: {message}", service=service, status=status)
        response = getattr(exc, "response", None)
        return RateLimited(f"rate limited: {message}", service=service,
                           retry_after=retry_after(response.headers if response is not None else None))
    if isinstance(exc, sdk.AuthenticationError | sdk.PermissionDeniedError):
        return AuthError(f"credentials rejected ({status}): {message}", service=service, status=status)
    if isinstance(exc, sdk.APITimeoutError):
        return ServiceUnavailable("request timed out", service=service)
    if isinstance(exc, sdk.APIConnectionError):
        return ServiceUnavailable(f"cannot connect: {message}", service=service)
    if isinstance(exc, sdk.InternalServerError):
        return ServiceUnavailable(f"server error ({status}): {message}", service=service, status=status)
    if isinstance(exc, sdk.BadRequestError):
        if "api key" in lowered and ("incorrect" in lowered or "invalid" in lowered):
            return AuthError(f"credentials rejected ({status}): {message}", service=service, status=status)
        if code in _REJECTED_CODES or "safety" in lowered or "policy" in lowered:
            return ContentRejected(f"request refused ({code or status}): {message}", service=service, status=status)
        return ProviderError(f"bad request ({code or status}): {message}", service=service, status=status)
    if isinstance(exc, sdk.NotFoundError):
        return ProviderError(f"not found ({status}): {message}", service=service, status=status)
    if isinstance(exc, sdk.APIResponseValidationError):
        return BadResponse(f"unexpected response: {message}", service=service, status=status)
    if isinstance(exc, sdk.APIStatusError):
        if status is not None and status >= 500:
            return ServiceUnavailable(f"server error ({status}): {message}", service=service, status=status)
        return ProviderError(f"request failed ({status}): {message}", service=service, status=status)
    if isinstance(exc, sdk.LengthFinishReasonError | sdk.ContentFilterFinishReasonError):
        return ContentRejected(message, service=service)
    return BadResponse(f"{type(exc).__name__}: {message}", service=service)


class OpenAIProvider(LLMProvider):
    """Chat completions on an OpenAI-compatible endpoint via ``openai.AsyncOpenAI``."""

    name = "openai"
    max_tokens_param = "max_completion_tokens"  # newer OpenAI models refuse max_tokens
    send_seed = True
    default_base_url = "https://api.openai.com/v1"
    default_model = "gpt-4o-mini"

    def __init__(self, api_key: str, *, base_url: str | None = None, model: str | None = None,
                 http_client: httpx2.AsyncClient | None = None, max_retries: int = 2,
                 timeout: float = 60.0, name: str | None = None) -> None:
        if not api_key:
            raise ConfigError(f"{self.__class__.__name__} needs an API key")
        if name:
            self.name = name
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.model = model or self.default_model
        self._owns_http = http_client is None  # an injected client belongs to the caller
        self.client = _sdk().AsyncOpenAI(api_key=api_key, base_url=self.base_url, max_retries=max_retries,
                                          timeout=timeout, http_client=http_client)

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
        """``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``."""
        key = secret_text(settings.openai_api_key)
        if not key:
            raise ConfigError("llm_provider openai: OPENAI_API_KEY is not set (or unset every LLM key to use the "
                              "sandbox)")
        return cls(key, base_url=settings.openai_base_url, model=settings.openai_model, http_client=http_client,
                   max_retries=settings.llm_max_retries, timeout=settings.llm_timeout_seconds)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(base_url={self.base_url!r}, model={self.model!r})"

    def request_kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        """The ``chat.completions.create`` arguments for ``request``."""
        kwargs: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs[self.max_tokens_param] = request.max_tokens
        if request.seed is not None and self.send_seed:
            kwargs["seed"] = int(request.seed) % (2**31)
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.json_schema, "strict": True}}
        if request.agent_id:
            kwargs["user"] = request.agent_id  # abuse monitoring: an opaque id, not a person
        return kwargs

    def translate(self, exc: Exception) -> ProviderError:
        return translate_error(exc, self.name)

    async def complete(self, request: CompletionRequest) -> Completion:
        sdk = _sdk()
        started = time.perf_counter()
        try:
            with upstream("llm"):
                response = await self.client.chat.completions.create(**self.request_kwargs(request))
        except sdk.OpenAIError as exc:
            raise self.translate(exc) from None
        except ValueError as exc:  # a 200 whose body is not JSON
            raise BadResponse(f"chat completion: unreadable body ({exc.__class__.__name__})", service=self.name) from None
        latency = (time.perf_counter() - started) * 1000
        try:
            return self._completion(request, response, latency)
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as exc:  # the SDK does not validate
            raise BadResponse(f"chat completion in an unexpected shape ({exc.__class__.__name__})",
                              service=self.name) from None

    def _completion(self, request: CompletionRequest, response: Any, latency: float) -> Completion:
        if not getattr(response, "choices", None):
            raise BadResponse("completion without choices", service=self.name)
        choice = response.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise ContentRejected(f"model refused: {redact(message.refusal)[:200]}", service=self.name)
        if choice.finish_reason == "content_filter":
            raise ContentRejected("output stopped by the content filter", service=self.name)
        text = message.content
        if text is None and message.tool_calls:
            text = message.tool_calls[0].function.arguments
        if not isinstance(text, str):
            raise BadResponse("completion without content", service=self.name)
        usage = response.usage
        if usage is not None:
            tokens = Usage(prompt_tokens=int(usage.prompt_tokens or 0), completion_tokens=int(usage.completion_tokens or 0))
        else:  # some local servers omit usage
            prompt = sum(estimate_tokens(m.content) for m in request.messages)
            tokens = Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens(text))
        return Completion(text=text, model=str(response.model or request.model or self.model),
                          provider=self.name, usage=tokens, latency_ms=latency)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.client.close()


class OpenAICompatibleProvider(OpenAIProvider):
    """A local OpenAI-compatible server (Ollama, vLLM, llama.cpp …) by base URL.

    Such servers usually take no key (a placeholder is sent), know ``max_tokens``
    rather than ``max_completion_tokens`` and may omit ``usage``.
    """

    name = "openai-compatible"
    max_tokens_param = "max_tokens"
    default_base_url = "http://localhost:11434/v1"
    default_model = "llama3.2"

    def __init__(self, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(api_key or "not-needed", **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
        """``OPENAI_COMPATIBLE_BASE_URL``, ``OPENAI_COMPATIBLE_MODEL`` and, if the server wants one, its key."""
        return cls(secret_text(settings.openai_compatible_api_key) or None,
                   base_url=settings.openai_compatible_base_url, model=settings.openai_compatible_model,
                   http_client=http_client, max_retries=settings.llm_max_retries,
                   timeout=settings.llm_timeout_seconds)
