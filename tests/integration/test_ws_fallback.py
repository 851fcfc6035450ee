"""An aiohttp whose overridden source differs from the pinned one: warn, serve the stock way."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ServerFactory, register
from tests.support.client import open_plain, parley_ws


def tampered_aiohttp(site: Path) -> None:
    """A copy of the installed aiohttp under `site`, one harmless statement added to the
    `RequestHandler.connection_lost` that `hand_over` leans on: the change a substring
    check cannot see."""
    copy = site / "aiohttp"
    shutil.copytree(
        Path(aiohttp.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    web_protocol = copy / "web_protocol.py"
    source = web_protocol.read_text()
    step = "        handler_cancellation = self._manager.handler_cancellation\n"
    assert source.count(step) == 1
    web_protocol.write_text(source.replace(step, step + "        _ = handler_cancellation\n"))


async def test_a_changed_aiohttp_is_seen_at_start_and_chat_runs_on_the_stock_path(
    tmp_path: Path, server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered_aiohttp(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # ahead of site-packages
    server = server_factory(["--guests"])
    log = server.log()
    assert "differs from the pinned" in log, log
    assert "connection_lost" in log, log
    assert "stock socket path" in log, log

    token = register(server.url)
    async with parley_ws(server.ws_url, token) as client:
        await client.join_ok("general")
        ack = await client.send_ok("general", "on the stock path")
        assert ack["seq"] == 1
        plain = await open_plain(server.ws_url, None)
        await plain.send("guest too")
        event = await client.recv_type("message", room="general", text="guest too")
        assert event["username"].startswith("guest-")
        await plain.close()
