"""Slow and idle HTTP connections against the real server (issue 11, item 4): a request
head must arrive within --header-timeout, an idle kept-alive connection closes after
--keepalive-timeout, and one address holds at most --max-unauthenticated-per-address
connections that have not signed in. WebSockets are governed by their pings alone.

Waits for a close have generous bounds; nothing here measures speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.api import AsyncApi, ServerFactory
from tests.support.client import ParleyWS, open_ws
from tests.support.server import ServerProcess

BOUND = 20.0  # seconds to wait for a close the server should make much sooner
HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LAST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


class Raw:
    """One plain TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, within: float = BOUND) -> bytes:
        """Everything the server sends until it closes; TimeoutError if it does not."""
        return await asyncio.wait_for(self.reader.read(), within)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """One HTTP/1.1 response with a Content-Length, leaving the connection open."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), BOUND)
        return _parse(head, await self.reader.readexactly(_length(head)))

    def close(self) -> None:
        self.writer.close()


def _length(head: bytes) -> int:
    return int(_parse(head, b"")[1].get("content-length", "0"))


def _parse(head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def parse_whole(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return _parse(head + b"\r\n\r\n", body)


async def connect(srv: ServerProcess) -> Raw:
    return Raw(*await asyncio.open_connection("127.0.0.1", srv.port))


@asynccontextmanager
async def raw(srv: ServerProcess) -> AsyncIterator[Raw]:
    conn = await connect(srv)
    try:
        yield conn
    finally:
        conn.close()


def serve(factory: ServerFactory, *flags: str) -> ServerProcess:
    return factory(["--rate-limit", "0", *flags])


# --- the request head ------------------------------------------------------------------


async def test_a_half_sent_head_is_answered_408_and_closed(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--header-timeout", "1")
    async with raw(srv) as conn:
        await conn.send(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        status, headers, body = parse_whole(await conn.until_closed())
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "bad_request"


async def test_a_connection_that_says_nothing_is_closed(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--header-timeout", "1")
    async with raw(srv) as conn:
        assert await conn.until_closed() == b""  # nothing asked, nothing answered


async def test_dripping_the_head_byte_by_byte_does_not_keep_it_open(
    server_factory: ServerFactory,
) -> None:
    srv = serve(server_factory, "--header-timeout", "1")
    async with raw(srv) as conn:
        closed = asyncio.ensure_future(conn.until_closed())
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Drip: " + b"a" * 400
        for byte in request:
            if closed.done():
                break
            try:
                await conn.send(bytes([byte]))
            except ConnectionError:
                break
            await asyncio.sleep(0.1)
        status, _, _ = parse_whole(await closed)
    assert status == 408


async def test_three_hundred_slowloris_connections_are_all_closed(
    server_factory: ServerFactory,
) -> None:
    """The issue's reproduction: 300 connections from one address each send half a head.
    The cap (128 by default) answers the rest 429 once they count (1 s); the head timeout
    ends the 128."""
    srv = serve(server_factory, "--header-timeout", "3")
    conns = [await connect(srv) for _ in range(300)]
    try:
        for conn in conns:
            with contextlib.suppress(ConnectionError):  # a refused one may be gone already
                await conn.send(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answers = await asyncio.gather(*(conn.until_closed(60) for conn in conns))
    finally:
        _close_all(conns)
    statuses = [parse_whole(answer)[0] for answer in answers]
    assert statuses.count(408) == 128
    assert statuses.count(429) == 300 - 128
    async with AsyncApi(srv.url) as api:  # and the server serves on
        assert (await api.get("/healthz")).status_code == 200


async def test_a_body_that_does_not_arrive_is_answered_408_and_closed(
    server_factory: ServerFactory,
) -> None:
    """Before: a whole head, then a body dripping a byte every few seconds, held its
    connection past both timeouts."""
    srv = serve(server_factory, "--header-timeout", "1")
    async with raw(srv) as conn:
        head = (
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        await conn.send(head + b"{")
        status, headers, body = parse_whole(await conn.until_closed())
    assert status == 408
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"]["code"] == "bad_request"


async def test_guest_sockets_opened_at_once_do_not_overshoot_the_cap(
    server_factory: ServerFactory,
) -> None:
    srv = serve(server_factory, "--max-guests-per-address", "5", "--guests")

    async def attempt() -> ParleyWS | int:
        try:
            return await open_ws(srv.ws_url)
        except InvalidStatus as exc:
            return exc.response.status_code

    outcomes = await asyncio.gather(*(attempt() for _ in range(40)))
    opened = [ws for ws in outcomes if isinstance(ws, ParleyWS)]
    try:
        assert len(opened) == 5
        assert [o for o in outcomes if not isinstance(o, ParleyWS)] == [429] * 35
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))


async def test_the_head_limit_is_off_at_zero(server_factory: ServerFactory) -> None:
    srv = serve(
        server_factory,
        *("--header-timeout", "0", "--keepalive-timeout", "0"),
        *("--max-unauthenticated-per-address", "1"),
    )
    async with raw(srv) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\n")
        # the sentinel: a later slow head, past the cap of one, is refused once it has
        # taken SLOW_HEAD; by then the first head has taken longer, and is still open
        async with raw(srv) as late:
            await late.send(HALF)
            assert parse_whole(await late.until_closed())[0] == 429
        await conn.send(b"Host: 127.0.0.1\r\n\r\n")
        assert (await conn.response())[0] == 200


# --- keep-alive ------------------------------------------------------------------------


async def test_an_idle_kept_alive_connection_is_closed(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--keepalive-timeout", "1")
    async with raw(srv) as conn:
        await conn.send(HEAD)
        assert (await conn.response())[0] == 200
        assert await conn.until_closed() == b""


async def test_idling_between_requests_is_the_keepalive_timeouts_not_the_heads(
    server_factory: ServerFactory,
) -> None:
    """Waiting for the next request is not a slow head: only its first byte starts the
    head deadline."""
    srv = serve(server_factory, "--header-timeout", "1", "--keepalive-timeout", "60")
    async with raw(srv) as conn:
        await conn.send(HEAD)
        assert (await conn.response())[0] == 200
        async with raw(srv) as later:  # the sentinel: a later head stalls, and times out
            await later.send(HEAD[:20])
            assert parse_whole(await later.until_closed())[0] == 408
        await conn.send(HEAD)  # idle past the head timeout, and still open
        assert (await conn.response())[0] == 200
        await conn.send(HEAD[:20])  # the next head stalls: now the head timeout applies
        status, _, _ = parse_whole(await conn.until_closed())
    assert status == 408


async def test_a_websocket_outlives_both_timeouts(
    server_factory: ServerFactory,
) -> None:
    srv = serve(server_factory, "--header-timeout", "1", "--keepalive-timeout", "1", "--guests")
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    ws = await open_ws(srv.ws_url, alice.token, ping_interval=None)
    guest = await open_ws(srv.ws_url, ping_interval=None)
    await ws.join_ok("general")
    # the sentinels, opened later: one idles after a request, one stalls in its head; once
    # the timeouts closed both, the sockets have been silent for longer than either
    async with raw(srv) as kept, raw(srv) as stalled:
        await kept.send(HEAD)
        assert (await kept.response())[0] == 200
        await stalled.send(HEAD[:20])
        assert await kept.until_closed() == b""
        await stalled.until_closed()  # a 408, or nothing if the idle timer came first
    ack = await ws.send_ok("general", "still here")
    assert ack["seq"] == 1
    assert (await guest.send_ok("general", "me too"))["seq"] == 2
    await ws.close()
    await guest.close()


# --- connections per address that have not signed in ------------------------------------
# A connection counts once its first request head has taken SLOW_HEAD (1 s): the waits
# below let that time pass before what they check; none asserts that something did not
# happen within a time.

SLOW = 1.5  # seconds: past SLOW_HEAD, so a stalled connection counts by then
HALF = b"GET /healthz HTTP/1.1\r\n"
REST = b"Host: 127.0.0.1\r\n\r\n"


async def _stalled(srv: ServerProcess, n: int) -> list[Raw]:
    """n connections, each with half a head sent: not idle, not signed in."""
    conns = [await connect(srv) for _ in range(n)]
    for conn in conns:
        await conn.send(HALF)
    return conns


async def _slow_answer(srv: ServerProcess) -> int:
    """The status a new connection gets when it takes SLOW to finish its head."""
    async with raw(srv) as conn:
        await conn.send(HALF)
        await asyncio.sleep(SLOW)
        with contextlib.suppress(ConnectionError):  # refused: the answer is in already
            await conn.send(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return parse_whole(await conn.until_closed())[0]


async def _answer_to_a_new_connection(srv: ServerProcess) -> tuple[int, dict[str, str], bytes]:
    async with raw(srv) as conn:
        await conn.send(LAST)
        return parse_whole(await conn.until_closed())


def _close_all(conns: Sequence[Raw]) -> None:
    for conn in conns:
        conn.close()


async def test_past_the_cap_a_slow_connection_gets_429_and_others_go_on(
    server_factory: ServerFactory,
) -> None:
    srv = serve(server_factory, "--max-unauthenticated-per-address", "3", "--header-timeout", "60")
    async with AsyncApi(srv.url) as api:
        alice = await api.register()  # this kept-alive connection has signed in
        ws = await open_ws(srv.ws_url, alice.token)
        await ws.join_ok("general")
        stalled = await _stalled(srv, 3)
        try:
            late = await connect(srv)
            await late.send(HALF)  # the fourth slow one: refused once it counts
            status, headers, body = parse_whole(await late.until_closed())
            late.close()
            assert status == 429
            assert headers["retry-after"] == "1"
            assert headers["x-content-type-options"] == "nosniff"
            error = json.loads(body)["error"]
            assert error["code"] == "rate_limited"
            assert error["retry_after"] == 1
            # a client that sends its head at once is not held up by the slow ones
            assert (await _answer_to_a_new_connection(srv))[0] == 200
            # what signed in before keeps working: the API connection, the socket
            assert (await api.get("/api/rooms", token=alice.token)).status_code == 200
            assert (await ws.send_ok("general", "unaffected"))["seq"] == 1
        finally:
            _close_all(stalled)
        # the stalled ones gone, a slow connection is let in again
        for _ in range(20):
            status = await _slow_answer(srv)
            if status == 200:
                break
        assert status == 200
        await ws.close()


async def test_a_burst_of_clients_from_one_address_is_never_refused(
    server_factory: ServerFactory,
) -> None:
    """Before: every connection counted from its connect, so 150 signed-in sockets
    connecting at once from one address got 429 past the cap."""
    srv = serve(server_factory, "--max-unauthenticated-per-address", "3")
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    sockets = await asyncio.gather(*(open_ws(srv.ws_url, alice.token) for _ in range(150)))
    await asyncio.gather(*(ws.close() for ws in sockets))
    answers = await asyncio.gather(*(_answer_to_a_new_connection(srv) for _ in range(50)))
    assert [status for status, _, _ in answers] == [200] * 50


async def test_an_idle_connection_makes_room_for_a_new_one(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--max-unauthenticated-per-address", "2", "--header-timeout", "60")
    async with raw(srv) as idle:
        await idle.send(HALF)
        await asyncio.sleep(SLOW)  # it counts now
        await idle.send(REST)
        assert (await idle.response())[0] == 200  # answered, kept alive, never signed in
        stalled = await _stalled(srv, 2)  # the second one, past the cap, takes its place
        try:
            assert await idle.until_closed() == b""  # it was the one to go
            await stalled[1].send(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert parse_whole(await stalled[1].until_closed())[0] == 200
        finally:
            _close_all(stalled)


async def test_signing_in_frees_the_place_of_a_connection(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--max-unauthenticated-per-address", "2", "--header-timeout", "60")
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    stalled = await _stalled(srv, 1)
    try:
        async with raw(srv) as conn:
            await conn.send(b"GET /api/me HTTP/1.1\r\n")
            await asyncio.sleep(SLOW)  # it counts now: two of two
            auth = f"Authorization: Bearer {alice.token}\r\n".encode()
            await conn.send(b"Host: 127.0.0.1\r\n" + auth + b"\r\n")
            assert (await conn.response())[0] == 200
            await conn.send(HEAD[:20])  # busy again (not idle, so not evictable)
            # it no longer counts: one stalled + a new slow one fit under the cap of two
            assert await _slow_answer(srv) == 200
    finally:
        _close_all(stalled)


async def test_guest_sockets_per_address_are_capped(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--max-guests-per-address", "2", "--guests")
    a = await open_ws(srv.ws_url)
    b = await open_ws(srv.ws_url)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await open_ws(srv.ws_url)
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body)["error"]["code"] == "rate_limited"
        await b.close()
        for _ in range(100):  # the server frees the place once it has seen b go
            with contextlib.suppress(InvalidStatus):
                c = await open_ws(srv.ws_url)
                await c.close()
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("a closed guest socket never freed its place")
    finally:
        await a.close()


async def test_the_cap_is_off_at_zero(server_factory: ServerFactory) -> None:
    srv = serve(server_factory, "--max-unauthenticated-per-address", "0", "--header-timeout", "60")
    stalled = await _stalled(srv, 140)  # past the default cap (128)
    try:
        assert await _slow_answer(srv) == 200
    finally:
        _close_all(stalled)
