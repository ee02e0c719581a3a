"""Choosing an agent's social network: a plain mapping from a name to a client factory
(part of the composition root, so the networks never import each other or it).

``build_client("x", ClientSpec(...))`` gives an unconnected client; the agent's start
calls its :meth:`~puppet_engine.social.base.SocialClient.connect`. A new network is one
package beside :mod:`puppet_engine.twitter` plus one line in :data:`CLIENTS` (and its
sandbox emulator); behaviours only ever see :class:`~puppet_engine.social.base.SocialClient`.

This module sits above the network packages (it imports them); they import only
:mod:`puppet_engine.social`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2

from puppet_engine.clock import Clock
from puppet_engine.errors import ConfigError
from puppet_engine.resilience import CircuitBreaker
from puppet_engine.social.base import SocialClient
from puppet_engine.social.dryrun import DryRunClient
from puppet_engine.twitter.cache import XReadCache
from puppet_engine.twitter.client import TwitterClient


@dataclass(frozen=True)
class ClientSpec:
    """What the composition root gives a network's factory for one agent's account."""

    agent_id: str
    clock: Clock
    keys: Callable[[], Awaitable[Any]] | None = None  # the network's keys and base URL, looked up at connect()
    http: httpx2.AsyncClient | None = None  # shared; the client never closes it
    rng: random.Random | None = None  # retry jitter
    breaker: CircuitBreaker | None = None  # one per network, shared by every account
    x_cache: XReadCache | None = None  # users and tweets read, shared by every X account


def _x(spec: ClientSpec) -> SocialClient:
    if spec.keys is None:
        raise ConfigError(f"agent {spec.agent_id}: an X client needs a key source")
    return TwitterClient(keys=spec.keys, http=spec.http, clock=spec.clock, rng=spec.rng, breaker=spec.breaker,
                         cache=spec.x_cache)


def _dry_run(spec: ClientSpec) -> SocialClient:
    return DryRunClient(spec.agent_id, clock=spec.clock)


CLIENTS: dict[str, Callable[[ClientSpec], SocialClient]] = {
    "x": _x,
    "dry-run": _dry_run,
}


def build_client(network: str, spec: ClientSpec) -> SocialClient:
    """The unconnected client of ``network`` (a key of :data:`CLIENTS`)."""
    try:
        factory = CLIENTS[network]
    except KeyError:
        raise ConfigError(f"unknown social network {network!r}; known: {', '.join(sorted(CLIENTS))}") from None
    return factory(spec)
