"""The front door (server/front.py) with faults put in, in a server in this process: an
error while it opens a socket ends the connection, as aiohttp's path does (its handler's
error ends it), and a token found not live is looked up once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web

from parley.server.accounts import Accounts
from parley.server.app import build_app
from parley.server.chat import ChatService
from parley.server.config import Config
from parley.server.connection import Connection
from parley.server.front import FrontDoor
from parley.server.httpconn import ConnectionRules, ParleySite
from parley.server.state import ACCOUNTS, NODE
from tests.support.rawws import upgrade_request

BOUND = 10.0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, str]]:
    """A server in this process with its front door: its port and a live token."""
    config = Config(data=str(tmp_path), hash_profile="owasp", rate_limit=0)
    app = build_app(config)
    await app[NODE].start()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = ParleySite(runner, "127.0.0.1", 0, ConnectionRules(config), partial(FrontDoor, app))
    await site.start()
    _name, token = await app[ACCOUNTS].register("frontdoor", "correct horse battery", "")
    port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]
    try:
        yield port, token
    finally:
        await runner.cleanup()
        await app[NODE].close()


@pytest.mark.parametrize("origin", [True, False], ids=["aiohttp", "front"])
async def test_an_error_attaching_the_socket_ends_the_connection(
    served: tuple[int, str], monkeypatch: pytest.MonkeyPatch, origin: bool
) -> None:
    port, token = served

    def broken(self: ChatService, conn: Connection) -> None:
        raise RuntimeError("a bug in attach")

    monkeypatch.setattr(ChatService, "attach", broken)
    more = (f"Origin: http://127.0.0.1:{port}",) if origin else ()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(port, token, *more, subprotocol=None))
        await writer.drain()
        await asyncio.wait_for(reader.read(), BOUND)  # until the server closes
    finally:
        writer.close()


@pytest.mark.parametrize("origin", [True, False], ids=["aiohttp", "front"])
async def test_a_token_that_is_not_live_is_looked_up_once(
    served: tuple[int, str], monkeypatch: pytest.MonkeyPatch, origin: bool
) -> None:
    """Each lookup is a store query: an unknown token (anyone can send one) costs the
    front door's check and then aiohttp's again."""
    port, _token = served
    lookups: list[str] = []
    authenticate = Accounts.authenticate

    async def counted(self: Accounts, token: str) -> tuple[str, str] | None:
        lookups.append(token)
        return await authenticate(self, token)

    monkeypatch.setattr(Accounts, "authenticate", counted)
    more = (f"Origin: http://127.0.0.1:{port}",) if origin else ()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(port, "not-a-live-token", *more, subprotocol=None))
        await writer.drain()
        assert await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND) == (
            b"HTTP/1.1 401 Unauthorized\r\n"
        )
    finally:
        writer.close()
    assert lookups == ["not-a-live-token"]
