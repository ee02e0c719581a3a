"""A real PostgreSQL with pgvector for tests, started through the ``pgserver`` package.

One server per test session (``pg_server`` fixture in conftest); each test gets
a fresh database cloned from a template that already holds the migrated schema
(``pg_url``), so a test costs a ``CREATE DATABASE``, not a server start.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TEMPLATE = "puppet_template"


class PgTestServer:
    """A running pgserver instance and a migrated template database."""

    def __init__(self, server: Any, root: Path) -> None:
        self.server = server
        self.root = root
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database))

    def psql(self, sql: str) -> str:
        return str(self.server.psql(sql))

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database: the migrated schema (cloned from the template) or empty."""
        name = f"test_{next(self._names)}"
        template = f" TEMPLATE {TEMPLATE}" if migrated else ""
        self.psql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}{template};")
        return self.url(name)

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


def start_pg_server() -> PgTestServer:
    """Start PostgreSQL, check pgvector, build the template; raise RuntimeError saying why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "the pgserver package is not installed (pip install 'puppet-engine[dev]')"
        ) from exc
    root = Path(tempfile.mkdtemp(prefix="puppet-pg-"))
    try:
        server = pgserver.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pgserver could not start PostgreSQL: {exc}") from exc
    test_server = PgTestServer(server, root)
    versions = test_server.psql(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector';"
    )
    if "0." not in versions and "1." not in versions:
        test_server.stop()
        raise RuntimeError("pgserver's PostgreSQL has no pgvector extension")
    test_server.psql(f"DROP DATABASE IF EXISTS {TEMPLATE}; CREATE DATABASE {TEMPLATE};")
    # Fixtures may be set up while an event loop runs: migrate on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _migrate(test_server.url(TEMPLATE))).result()
    return test_server


async def _migrate(url: str) -> None:
    from puppet_engine.storage import Database

    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.close()
