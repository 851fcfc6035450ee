"""Fixtures for integration tests.

`server`/`server_factory` (tests/conftest.py) give every test its own fresh server. Tests that only
need *a* server and create their own users and rooms use `shared_server` (tests/conftest.py)
instead: one server per module, which keeps the long parametrized validation tables fast.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.api import AsyncApi, Fresh, ServerFactory, User, unique_room
from tests.support.pg import PgServer
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, TlsServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL for the store and scale-out suites: each test makes its own database;
    a test may stop and restart it (`db_url` in scaleout/conftest.py checks it runs)."""
    server = PgServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test (it starts in milliseconds)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncApi]:
    async with AsyncApi(server.url) as client:
        yield client


@pytest.fixture
async def alice(api: AsyncApi) -> User:
    return await api.register()


@pytest.fixture
async def bob(api: AsyncApi) -> User:
    return await api.register()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_server_on_each_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`shared_server`, once on SQLite and once on a PostgreSQL database of its own: for a
    module whose behaviour must not depend on the store (override `shared_server` with it)."""
    args = ["--register-limit", "0"]
    if request.param == "postgres":
        pg: PgServer = request.getfixturevalue("pg_server")
        args += ["--db", pg.create_database()]
    proc = ServerProcess(tmp_path_factory.mktemp(f"shared-{request.param}"), args)
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture
async def shared_api(shared_server: ServerProcess) -> AsyncIterator[AsyncApi]:
    async with AsyncApi(shared_server.url) as client:
        yield client


@pytest.fixture
async def fresh(shared_server: ServerProcess, shared_api: AsyncApi) -> Fresh:
    user = await shared_api.register()
    room = unique_room()
    await shared_api.create_room(user.token, room)
    return Fresh(shared_server, shared_api, user, room)


@pytest.fixture
def tls_server(server_factory: ServerFactory, tmp_path: Path) -> TlsServer:
    """A server on HTTPS and WSS, with a certificate for 127.0.0.1 and localhost, and a
    client context that trusts it."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(cert_file), append=i > 0)
    cert.private_key_pem.write_to_path(str(key_file))
    srv = server_factory(tls=(str(cert_file), str(key_file)), verify=False)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return srv, ctx
