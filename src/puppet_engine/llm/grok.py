"""``GrokProvider``: xAI's Grok models over their OpenAI-compatible API.

Same SDK and wire format as OpenAI at ``https://api.x.ai/v1`` (``GROK_BASE_URL``),
with xAI's differences handled here: errors come as a flat body
``{"code": "...", "error": "..."}`` (a bad key is a 400, not a 401; used-up credits
a 403), the token limit is ``max_tokens``, no ``seed`` is sent, and there is no
embeddings endpoint (memory embeddings use another embedder).
"""

from __future__ import annotations

from typing import Any

import httpx2

from puppet_engine.errors import AuthError, ConfigError, ProviderError, RateLimited
from puppet_engine.llm.base import LLMProvider
from puppet_engine.llm.openai import OpenAIProvider, error_message, secret_text, translate_error
from puppet_engine.settings import Settings

GROK_BASE_URL = "https://api.x.ai/v1"
GROK_MODEL = "grok-4-1-fast-non-reasoning"


def _flat_body(exc: Exception) -> dict[str, Any]:
    """xAI's ``{"code","error"}`` body, wherever the SDK left it."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            data = response.json()
        except Exception:  # not JSON: fall back to what the SDK parsed
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data
    return {}


class GrokProvider(OpenAIProvider):
    """Chat completions on xAI (or any server speaking its dialect)."""

    name = "grok"
    max_tokens_param = "max_tokens"
    send_seed = False
    default_base_url = GROK_BASE_URL
    default_model = GROK_MODEL

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> LLMProvider:
        """``GROK_API_KEY``, ``GROK_BASE_URL``, ``GROK_MODEL``."""
        key = secret_text(settings.grok_api_key)
        if not key:
            raise ConfigError("llm_provider grok: GROK_API_KEY is not set (or unset every LLM key to use the sandbox)")
        return cls(key, base_url=settings.grok_base_url, model=settings.grok_model, http_client=http_client,
                   max_retries=settings.llm_max_retries, timeout=settings.llm_timeout_seconds)

    def translate(self, exc: Exception) -> ProviderError:
        flat = _flat_body(exc)
        status = getattr(exc, "status_code", None)
        message = error_message(exc)
        lowered = message.lower()
        if flat and status in (400, 401) and "api key" in lowered:
            return AuthError(f"credentials rejected ({status}): {message}", service=self.name, status=status)
        if status == 403 and ("credit" in lowered or "spending" in lowered):
            return AuthError(f"credits exhausted: {message}", service=self.name, status=status)
        error = translate_error(exc, self.name)
        if flat.get("code") and not isinstance(error, RateLimited | AuthError):
            error.args = (f"{error.args[0]} [code: {flat['code']}]",)
        return error
