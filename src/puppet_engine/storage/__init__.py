"""Database engine, tables and migrations."""

from puppet_engine.storage.database import Database, async_url
from puppet_engine.storage.tables import metadata

__all__ = ["Database", "async_url", "metadata"]
