"""Fixtures of the store suite: every test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

import parley.store.postgres
import parley.store.sqlite
from parley.store import Store
from parley.store.driver import sqlite3
from parley.store.migrations import INDEX_LAG_VERSION
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SQLiteStore
from tests.support.pg import PgServer

StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]


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


@pytest.fixture
def old_database(store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> OldDatabase:
    """Builds what an older version left: the factory's database migrated up to `version`
    only, then `sql` (statements valid in both dialects) run on it as they are."""

    async def build(version: int, sql: str) -> None:
        with monkeypatch.context() as patch:
            for module in (parley.store.sqlite, parley.store.postgres):
                patch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:version])
            if version < INDEX_LAG_VERSION:  # the code of then knew no `search_state`
                patch.setattr(parley.store.sqlite, "_INDEXED_ALL", "SELECT 1")
                patch.setattr(parley.store.sqlite, "_index_lags", lambda conn: False)
            old = store_factory()
            await old.open()
            await old.close()
        if isinstance(old, SQLiteStore):
            conn = sqlite3.connect(old.path)
            try:
                conn.executescript(sql)
            finally:
                conn.close()
        else:
            assert isinstance(old, PostgresStore)
            pg = await asyncpg.connect(old.dsn)
            try:
                await pg.execute(sql)
            finally:
                await pg.close()

    return build
