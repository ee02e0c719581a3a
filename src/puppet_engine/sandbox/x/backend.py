"""What the X emulator's API routes and admin routes read of the service that mounts them.

``XService`` builds both routers and implements this; the routers depend on the protocol,
not on the service module, so the service imports them and nothing imports back.
"""

from __future__ import annotations

from typing import Protocol

from puppet_engine.sandbox.service import SandboxHost
from puppet_engine.sandbox.x.auth import Authenticator
from puppet_engine.sandbox.x.limits import RateLimits
from puppet_engine.sandbox.x.state import XState


class XBackend(Protocol):
    """The X emulator's state and bookkeeping (``puppet_engine.sandbox.x.XService``)."""

    sandbox: SandboxHost
    state: XState  # accounts and tweets
    auth: Authenticator  # OAuth 1.0a and bearer checks
    limits: RateLimits
    stats: dict[str, int]  # API answers by status code
    consumer_stats: dict[str, int]  # calls by the consumer key that signed them
