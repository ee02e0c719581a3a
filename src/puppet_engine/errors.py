"""The one exception tree of Puppet Engine.

::

    PuppetError
    ├── ConfigError                 a user mistake in settings or an agent file
    │   └── AgentConfigError        names the file, the JSON path and what was expected
    ├── StorageError                the database refused or is unreachable
    ├── ProviderError               an external service failed (carries the service name)
    │   ├── RateLimited             429 or a known-exhausted window; carries retry_after (seconds)
    │   ├── AuthError               credentials rejected (401/403 auth)
    │   ├── ServiceUnavailable      5xx, timeout, connection error, open circuit breaker
    │   ├── BadResponse             the service answered with something we cannot parse
    │   ├── DuplicateContent        X refused a post identical to a recent one
    │   ├── ContentRejected         the service refused the content (length, policy, reply not allowed)
    │   └── BudgetExceeded          a configured spending/token budget is used up
    ├── ValidationFailed            generated text did not pass the output rules
    └── TradeRejected               a risk rule stopped a trade; carries the rule name

User mistakes (``ConfigError``) are kept apart from runtime failures so the CLI can
print the former plainly and exit 1, while the engine retries or records the latter.
"""

from __future__ import annotations


class PuppetError(Exception):
    """Base of every error raised on purpose by Puppet Engine."""


class ConfigError(PuppetError):
    """A setting or agent file is wrong; the message says where and what was expected."""


class AgentConfigError(ConfigError):
    """One or more problems in agent files, each ``file: json.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StorageError(PuppetError):
    """The database failed."""


class ProviderError(PuppetError):
    """An external service (X, LLM, Solana RPC, Jupiter) failed."""

    retryable: bool = False

    def __init__(self, message: str, *, service: str = "", status: int | None = None) -> None:
        self.service = service
        self.status = status
        prefix = f"{service}: " if service else ""
        super().__init__(f"{prefix}{message}")


class RateLimited(ProviderError):
    """The service said (or its headers said) to wait ``retry_after`` seconds."""

    retryable = True

    def __init__(
        self, message: str = "rate limited", *, service: str = "", retry_after: float = 60.0,
        status: int | None = 429,
    ) -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(f"{message} (retry after {self.retry_after:.1f}s)", service=service, status=status)


class AuthError(ProviderError):
    """Credentials were rejected; retrying with the same ones will not help."""


class ServiceUnavailable(ProviderError):
    """Server error, timeout, connection failure or an open circuit breaker."""

    retryable = True


class BadResponse(ProviderError):
    """The service answered with a body that does not match its protocol."""

    retryable = True


class DuplicateContent(ProviderError):
    """X refused the post as a duplicate of a recent one."""


class ContentRejected(ProviderError):
    """The service refused the content itself (too long, reply not allowed, policy)."""


class BudgetExceeded(ProviderError):
    """A configured budget (LLM tokens, spend) is exhausted for now."""


class ValidationFailed(PuppetError):
    """Generated text failed the output rules; ``reasons`` lists which."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


class TradeRejected(PuppetError):
    """A risk rule stopped a trade before anything was sent."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}")
