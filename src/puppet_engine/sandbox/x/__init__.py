"""The X (Twitter) API v2 emulator: see :class:`~puppet_engine.sandbox.x.service.XService`."""

from puppet_engine.sandbox.x.service import XService

__all__ = ["XService"]
