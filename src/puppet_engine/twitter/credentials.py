"""X credentials: the OAuth 1.0a user-context keys and the optional app-only bearer token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from puppet_engine.settings import Settings, env_suffix

_ENV = {
    "api_key": "TWITTER_API_KEY", "api_secret": "TWITTER_API_SECRET", "access_token": "TWITTER_ACCESS_TOKEN",
    "access_token_secret": "TWITTER_ACCESS_TOKEN_SECRET", "bearer_token": "TWITTER_BEARER_TOKEN",
}


def _plain(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value or "")


@dataclass(frozen=True)
class TwitterCredentials:
    """Consumer key/secret + access token/secret (posting), and/or a bearer token (reads only).

    The repr shows which values are set, never the values.
    """

    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    access_token_secret: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        present = [name for name in _ENV if getattr(self, name)]
        return f"TwitterCredentials(set={present}, user_id={self.user_id!r})"

    __str__ = __repr__

    @property
    def has_user_context(self) -> bool:
        return all((self.api_key, self.api_secret, self.access_token, self.access_token_secret))

    @property
    def is_set(self) -> bool:
        """Whether these can call X at all: user context, or a bearer token for reads."""
        return self.has_user_context or bool(self.bearer_token)

    @property
    def user_id(self) -> str:
        """X access tokens are ``<user id>-<random>``: the account id without a call ("" if unknown)."""
        head, sep, _ = self.access_token.partition("-")
        return head if sep and head.isdigit() else ""

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        # The consumer key too: X calls it the "API Key", and oauthlib logs it at DEBUG.
        return [v for v in (self.api_key, self.api_secret, self.access_token, self.access_token_secret,
                            self.bearer_token) if v]

    @classmethod
    def of(cls, **values: Any) -> TwitterCredentials:
        """From plain strings or ``SecretStr`` (settings, agent config); missing values are ""."""
        return cls(**{name: _plain(values.get(name)) for name in _ENV})

    @classmethod
    def from_settings(cls, settings: Settings, agent_id: str | None = None, *,
                      own_env: Mapping[str, str] | None = None) -> TwitterCredentials:
        """``TWITTER_*_<AGENT_ID>`` when set for ``agent_id``, else the engine-wide ``TWITTER_*``.

        The per-agent user-context values are taken together: an agent with its own
        access token uses its own four values, not a mix with the shared ones. ``own_env``: the
        agent's :func:`agent_keys`, when already read.
        """
        shared = cls.of(**{name: getattr(settings, f"twitter_{name}") for name in _ENV})
        if agent_id is None:
            return shared
        own = dict.fromkeys(_ENV, "") | dict(agent_keys(agent_id) if own_env is None else own_env)
        if not any(own.values()):
            return shared
        if not own["access_token"]:
            own.update(access_token=shared.access_token, access_token_secret=shared.access_token_secret)
        for name in ("api_key", "api_secret", "bearer_token"):
            own[name] = own[name] or getattr(shared, name)
        return cls.of(**own)


def agent_keys(agent_id: str) -> dict[str, str]:
    """The agent's own X values set in the environment now (``TWITTER_*_<AGENT_ID>``), by field name."""
    suffix, environ = env_suffix(agent_id), os.environ
    return {name: value for name, env in _ENV.items() if (value := environ.get(f"{env}_{suffix}"))}
