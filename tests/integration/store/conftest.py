"""Fixtures of the store suite: every test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from parley.store import Store
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SQLiteStore
from tests.support.pg import PgServer

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes unopened stores on one fresh database: several stand for several nodes."""
    if request.param == "sqlite":
        path = tmp_path / "parley.db"
        return lambda: SQLiteStore(path)
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    return lambda: PostgresStore(url)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    opened = store_factory()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
