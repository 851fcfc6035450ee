"""Fixtures for multi-node tests: one PostgreSQL, one Redis, several `parley serve` nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.pg import PgServer
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

ClusterFactory = Callable[..., list[ServerProcess]]


@pytest.fixture
def db_url(pg_server: PgServer) -> str:
    if not pg_server.running:  # a previous test's restart failed half-way
        pg_server.start()
    return pg_server.create_database()


@pytest.fixture
def cluster(tmp_path: Path, db_url: str, redis_server: RedisServer) -> Iterator[ClusterFactory]:
    """start(n) -> n nodes on one database and one Redis; all stopped at teardown."""
    nodes: list[ServerProcess] = []

    def start(count: int = 3, extra: tuple[str, ...] = ()) -> list[ServerProcess]:
        args = ["--db", db_url, "--redis", redis_server.url, "--rate-limit", "0", *extra]
        fresh = [ServerProcess(tmp_path / f"node{len(nodes) + i}", args) for i in range(count)]
        nodes.extend(fresh)
        for node in fresh:
            node.start()
        return fresh

    yield start
    for node in nodes:
        node.stop()
