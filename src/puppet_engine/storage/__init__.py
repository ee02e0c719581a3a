"""Database engine, tables, migrations, and the repositories (``storage.repos``): the only SQL."""

from puppet_engine.storage.database import Database, async_url
from puppet_engine.storage.tables import metadata

__all__ = ["Database", "async_url", "metadata"]
