"""Contract: no subprotocol = plain-text mode (the tutorial client)."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection

from tests.support.api import AsyncApi, User
from tests.support.client import open_plain, parley_ws
from tests.support.server import ServerProcess


async def recv_text(ws: ClientConnection, within: float = 10.0) -> str:
    frame = await asyncio.wait_for(ws.recv(), within)
    assert isinstance(frame, str), frame
    return frame


async def test_plain_text_posts_to_general_and_receives_every_general_message(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(bob.token, "other")
    plain = await open_plain(server.ws_url, alice.token)
    async with parley_ws(server.ws_url, bob.token) as b:
        await b.join_ok("general")
        await b.join_ok("other")

        await plain.send("hello from the tutorial")
        msg = await b.recv_type("message", room="general")
        assert msg["username"] == alice.username
        assert msg["text"] == "hello from the tutorial"
        assert msg["seq"] == 1
        # the first frame the plain client gets is its own message, as text (no JSON hello)
        assert await recv_text(plain) == f"{alice.username}: hello from the tutorial"

        await b.send_ok("other", "not for general")
        await b.send_ok("general", "hi back")
        await api.send(bob.token, "general", "via rest")
        assert await recv_text(plain) == f"{bob.username}: hi back"
        assert await recv_text(plain) == f"{bob.username}: via rest"

        # verbatim, even when the text looks like the framing
        await plain.send("x: y\nsecond line <b>")
        assert await recv_text(plain) == f"{alice.username}: x: y\nsecond line <b>"
    stored = await api.messages(alice.token, "general")
    assert [(m["username"], m["text"]) for m in stored] == [
        (alice.username, "hello from the tutorial"),
        (bob.username, "hi back"),
        (bob.username, "via rest"),
        (alice.username, "x: y\nsecond line <b>"),
    ]
    assert [m["seq"] for m in stored] == [1, 2, 3, 4]  # seq is per room
    await plain.close()


async def test_plain_text_two_tutorial_clients_chat(
    server: ServerProcess, alice: User, bob: User
) -> None:
    pa = await open_plain(server.ws_url, alice.token)
    pb = await open_plain(server.ws_url, bob.token)
    await pa.send("ping")
    assert await recv_text(pb) == f"{alice.username}: ping"
    assert await recv_text(pa) == f"{alice.username}: ping"
    await pb.send("pong")
    assert await recv_text(pa) == f"{bob.username}: pong"
    assert await recv_text(pb) == f"{bob.username}: pong"
    await pa.close()
    await pb.close()


async def test_plain_text_too_large_not_stored_and_stays_open(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    plain = await open_plain(server.ws_url, alice.token)
    await plain.send("x" * 4001)
    line = await recv_text(plain)
    # docs/protocol.md (ext): plain-text errors arrive as "* error CODE: message"
    assert line.startswith("* error too_large"), line
    await plain.send("fits")
    assert await recv_text(plain) == f"{alice.username}: fits"
    assert [m["text"] for m in await api.messages(alice.token, "general")] == ["fits"]
    await plain.close()
