"""Plain-text mode pipelines its sends like parley.v1 (issue 16, item 2): one sender that
fires frames without waiting has them stored and delivered once each, in order, and its
refusals reach it where the refused frames were."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import ParleyWS, open_plain, parley_ws
from tests.support.pg import PgServer
from tests.support.server import ServerProcess

BURST = 500
SENTINEL = "the end"


async def recv_lines(ws: ClientConnection, count: int) -> list[str]:
    lines: list[str] = []
    for _ in range(count):
        frame = await asyncio.wait_for(ws.recv(), 20)
        assert isinstance(frame, str), frame
        lines.append(frame)
    return lines


async def recv_texts(ws: ParleyWS, count: int) -> list[tuple[int, str]]:
    events = [await ws.recv_type("message", room="general") for _ in range(count)]
    return [(e["seq"], e["text"]) for e in events]


@pytest.fixture(params=["sqlite", "postgres"])
def unlimited(request: pytest.FixtureRequest, server_factory: ServerFactory) -> ServerProcess:
    """A server that takes a burst (no rate limit to refuse it), on each store: both
    group-commit the sends, each in its own way."""
    args = ["--rate-limit", "0"]
    if request.param == "postgres":
        pg: PgServer = request.getfixturevalue("pg_server")
        args += ["--db", pg.create_database()]
    return server_factory(args)


async def users(srv: ServerProcess, count: int) -> list[User]:
    async with AsyncApi(srv.url) as api:
        return [await api.register() for _ in range(count)]


async def test_a_burst_of_plain_frames_arrives_everywhere_once_in_order(
    unlimited: ServerProcess,
) -> None:
    srv = unlimited
    alice, bob, carol = await users(srv, 3)
    texts = [f"burst {i}" for i in range(BURST)]
    sender = await open_plain(srv.ws_url, alice.token)
    readers = [await open_plain(srv.ws_url, bob.token), await open_plain(srv.ws_url, carol.token)]
    async with parley_ws(srv.ws_url, carol.token) as watcher, parley_ws(srv.ws_url, bob.token) as b:
        await watcher.join_ok("general")
        for text in texts:  # not one answer awaited
            await sender.send(text)
        lines = [f"{alice.username}: {text}" for text in texts]
        for plain in (sender, *readers):
            assert await recv_lines(plain, BURST) == lines
        seen = await recv_texts(watcher, BURST)
        assert seen == list(enumerate(texts, start=1))
        # Delivered in seq order: anything doubled would come before a later message.
        await b.send_ok("general", SENTINEL)
        for plain in (sender, *readers):
            assert await recv_lines(plain, 1) == [f"{bob.username}: {SENTINEL}"]
        assert await recv_texts(watcher, 1) == [(BURST + 1, SENTINEL)]
    async with AsyncApi(srv.url) as api:
        stored = await api.all_messages(alice.token, "general")
    assert [(m["seq"], m["text"]) for m in stored] == [*seen, (BURST + 1, SENTINEL)]
    for ws in (sender, *readers):
        await ws.close()


async def test_refusals_in_a_burst_come_in_order_and_the_rest_arrive(
    unlimited: ServerProcess,
) -> None:
    srv = unlimited
    alice, bob = await users(srv, 2)
    refused = {40: "x" * 4001, 41: "\u200b", 70: "y" * 10_000}
    frames = [refused.get(i, f"frame {i}") for i in range(100)]
    sender = await open_plain(srv.ws_url, alice.token)
    reader = await open_plain(srv.ws_url, bob.token)
    for frame in frames:
        await sender.send(frame)
    answers = await recv_lines(sender, len(frames))
    for i, answer in enumerate(answers):
        if i in (40, 70):
            assert answer.startswith("* error too_large: "), (i, answer)
        elif i == 41:
            assert answer.startswith("* error bad_request: "), (i, answer)
        else:
            assert answer == f"{alice.username}: frame {i}", (i, answer)
    kept = [f for i, f in enumerate(frames) if i not in refused]
    assert await recv_lines(reader, len(kept)) == [f"{alice.username}: {f}" for f in kept]
    async with AsyncApi(srv.url) as api:
        stored = await api.all_messages(alice.token, "general")
    assert [m["text"] for m in stored] == kept
    await sender.close()
    await reader.close()
