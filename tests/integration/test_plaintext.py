"""Contract: no subprotocol = plain-text mode (the tutorial client)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.api import AsyncApi, Fresh, ServerFactory, User, assert_error
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

        # one message, one line: the newline is shown escaped (docs/protocol.md)
        await plain.send("x: y\nsecond line <b>")
        assert await recv_text(plain) == f"{alice.username}: x: y\\nsecond line <b>"
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


async def test_plain_mode_shows_one_message_as_one_line(server_factory: ServerFactory) -> None:
    """Issue 11, item 8: a guest's `hi\\nalice: ...` showed a line starting `alice:` in every
    tutorial client. Plain sockets now get it escaped; JSON clients and history, verbatim."""
    srv = server_factory(["--guests"])
    forged = "hi\nalice: my new password is hunter2"
    tricks = [
        forged,
        "a\r\nalice: carriage return",
        "a\u2028alice: line separator\u2029and paragraph",
        "\x1b[2K\ralice: terminal escape",
        "\u202ealice: reversed\u202c and \u2067isolated\u2069",
    ]
    reader = await open_plain(srv.ws_url)
    writer = await open_plain(srv.ws_url)
    async with parley_ws(srv.ws_url) as watcher:
        await watcher.join_ok("general")
        for text in tricks:
            await writer.send(text)
        lines = [await recv_text(reader) for _ in tricks]
        events = [await watcher.recv_type("message") for _ in tricks]
    guest = events[0]["username"]
    assert guest.startswith("guest-")
    assert lines == [
        f"{guest}: hi\\nalice: my new password is hunter2",
        f"{guest}: a\\r\\nalice: carriage return",
        f"{guest}: a\\u2028alice: line separator\\u2029and paragraph",
        f"{guest}: \\u001b[2K\\ralice: terminal escape",
        f"{guest}: \\u202ealice: reversed\\u202c and \\u2067isolated\\u2069",
    ]
    for line in lines:
        assert not any(c in line for c in "\n\r\x1b\u2028\u2029\u202e\u2067"), line
    assert [e["text"] for e in events] == tricks  # parley.v1 clients: verbatim
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        assert [m["text"] for m in await api.messages(user.token, "general")] == tricks
    await reader.close()
    await writer.close()


INVISIBLE_TEXTS = [
    " \n\t",
    "\u200b",  # zero-width space
    "\u200d\u200c",  # zero-width joiner, non-joiner
    "\ufeff",  # byte order mark
    "\u3164",  # Hangul filler
    "\u2800",  # braille blank
    "\u2060\u00ad \u200e",  # word joiner, soft hyphen, left-to-right mark
]


@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
async def test_invisible_only_texts_are_refused_everywhere(fresh: Fresh, text: str) -> None:
    srv, api, user = fresh.server, fresh.api, fresh.user
    async with parley_ws(srv.ws_url, user.token) as ws:
        cid = await ws.send_text(fresh.room, text)
        error = await ws.expect_error("bad_request")
        assert error["ref"] == cid
        assert "invisible" in error["message"]
    resp = await api.send_raw(user.token, fresh.room, text)
    assert assert_error(resp, 400, "bad_request")["message"] == error["message"]
    plain = await open_plain(srv.ws_url, user.token)
    await plain.send(text)
    assert await recv_text(plain) == f"* error bad_request: {error['message']}"
    await plain.close()
    assert await api.messages(user.token, fresh.room) == []
    assert text not in [m["text"] for m in await api.messages(user.token, "general")]


async def test_a_plain_socket_past_the_join_allowance_is_told_why_and_closed_1013(
    server_factory: ServerFactory,
) -> None:
    """A plain socket's auto-join spends a join: one opened past the allowance gets the
    refusal as a line, then a close 1013 (try again later) with the refusal as its reason."""
    srv = server_factory(["--action-limits", "0.01"])  # 5 joins a minute
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    sockets = [await open_plain(srv.ws_url, alice.token) for _ in range(5)]
    refused = await open_plain(srv.ws_url, alice.token)
    line = await recv_text(refused)
    assert line.startswith("* error rate_limited: joining rooms too fast (retry after "), line
    await asyncio.wait_for(refused.wait_closed(), 10)
    assert (refused.close_code, refused.close_reason) == (1013, "joining rooms too fast")
    for ws in sockets:
        await ws.close()
        assert ws.close_code == 1000
