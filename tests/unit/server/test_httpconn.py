"""`ParleyHandler` leans on aiohttp's RequestHandler beyond its documented API (see the
module's docstring): a tripwire on the source of every upstream method it relies on, so
an aiohttp upgrade is read again before it is trusted."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import socket
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web, web_protocol
from aiohttp.web_protocol import RequestHandler

from parley.server.config import Config
from parley.server.httpconn import ConnectionRules, ParleyHandler, ParleySite

# sha256 of inspect.getsource, first 16 hex digits, for aiohttp 3.14.5
UPSTREAM = {
    "RequestHandler.data_received": "1ee57ebe052e6c80",  # _request_count per parsed head
    "RequestHandler.set_parser": "bb548eb2b85d5c28",  # an upgrade takes the connection
    "RequestHandler.close": "84518f965e198ee3",  # data_received drops what comes after
    "RequestHandler.force_close": "38d0e1e798e4d3b7",
    "RequestHandler.handle_error": "94962ffef500c172",  # returns the Response to send
    "RequestHandler.connection_made": "44d50b5763b2c7e4",
    "RequestHandler.connection_lost": "df2fe6e95fd04c7c",
    "RequestHandler._process_keepalive": "b472e0fb8445ce42",  # the idle timeout
    "RequestHandler.start": "2e565fd40c8e04fb",  # re-arms keep-alive after each response
    "BaseSite.start": "8dcebeed1ae05654",  # registers the site with its runner
    "BaseSite.stop": "c92f18307773ff03",  # closes `_server`, which ParleySite sets
}


def _source_hash(fn: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def test_the_handler_is_built_for_the_aiohttp_that_is_pinned() -> None:
    assert aiohttp.__version__ == "3.14.5"
    owners = {"RequestHandler": RequestHandler, "BaseSite": web.BaseSite}
    for name, expected in UPSTREAM.items():
        owner, _, method = name.partition(".")
        assert _source_hash(getattr(owners[owner], method)) == expected, name


def test_the_handler_overrides_only_what_the_tripwire_covers() -> None:
    ours = {name for name in vars(ParleyHandler) if callable(getattr(ParleyHandler, name))}
    overridden = {name for name in ours if hasattr(RequestHandler, name)} - {"__init__"}
    covered = {name.partition(".")[2] for name in UPSTREAM}
    assert overridden <= covered, overridden - covered


async def _keepalive_of_accepted(request: web.Request) -> web.Response:
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    return web.Response(text=str(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))


async def test_accepted_connections_keep_tcp_keepalive_without_setting_it_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SO_KEEPALIVE is set once, on the listener, and every accepted connection has it
    (Linux passes it on), as when aiohttp's handler set it on each; the handlers no
    longer call aiohttp's `tcp_keepalive` for their connection."""
    calls: list[object] = []
    monkeypatch.setattr(web_protocol, "tcp_keepalive", calls.append)
    app = web.Application()
    app.router.add_get("/", _keepalive_of_accepted)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = ParleySite(runner, "127.0.0.1", 0, ConnectionRules(Config()))
    try:
        await site.start()
        listener = cast(asyncio.Server, site._server).sockets[0]
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        port = listener.getsockname()[1]
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/") as response,
        ):
            assert await response.text() == "1"
        assert calls == []
    finally:
        await runner.cleanup()
