"""The HTTP API and web dashboard: ``create_app(engine)``."""

from puppet_engine.api.app import create_app
from puppet_engine.api.auth import ApiKey, KeyRing

__all__ = ["ApiKey", "KeyRing", "create_app"]
