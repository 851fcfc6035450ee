"""One socket's acks keep the order of its sends, whichever path (a read of one send, a
read of several) each send took to the store: a batch's answers are settled in the batch's
order, not sink by sink (store/batch.py `settle_outcomes`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from parley.store.driver import sqlite3
from tests.support.api import AsyncApi, ServerFactory
from tests.support.pg import PgServer
from tests.support.rawws import OP_PING, OP_PONG, OP_TEXT, RawWS, encode_frame
from tests.support.server import ServerProcess

Frames = list[dict[str, Any]]


def send(client_id: str) -> bytes:
    frame = {"type": "send", "room": "general", "text": client_id, "client_id": client_id}
    return encode_frame(OP_TEXT, json.dumps(frame).encode())


async def read_until_pong(raw: RawWS, payload: bytes, seen: Frames) -> None:
    """Frames until the pong of `payload` (the server read all that came before the ping)."""
    while True:
        opcode, data = await raw.read_frame()
        if opcode == OP_PONG and data == payload:
            return
        if opcode == OP_TEXT:
            seen.append(json.loads(data))


async def joined(srv: ServerProcess, seen: Frames) -> RawWS:
    async with AsyncApi(srv.url) as api:
        user = await api.register()
    raw = await RawWS.open("127.0.0.1", srv.port, token=user.token)
    join = encode_frame(OP_TEXT, b'{"type":"join","room":"general"}')
    await raw.send_bytes(join + encode_frame(OP_PING, b"join"))
    await read_until_pong(raw, b"join", seen)
    assert any(f["type"] == "joined" for f in seen), seen
    return raw


async def send_in_reads(raw: RawWS, reads: list[list[str]], seen: Frames) -> None:
    """Each list of sends in one write, a ping behind it: its pong comes once the server
    has taken those sends (a read of one send, or of several, as the lists say)."""
    for i, ids in enumerate(reads):
        payload = f"read-{i}".encode()
        await raw.send_bytes(b"".join(map(send, ids)) + encode_frame(OP_PING, payload))
        await read_until_pong(raw, payload, seen)


async def answers(raw: RawWS, seen: Frames, acks: int) -> list[tuple[str, int]]:
    """Frames until `acks` acks: their (client_id, seq) in order; each ack must follow
    its message (published, then acked: the sender's own copy comes first)."""
    frames = list(seen)
    while sum(f["type"] == "ack" for f in frames) < acks:
        opcode, data = await raw.read_frame()
        if opcode == OP_TEXT:
            frames.append(json.loads(data))
    raw.close()
    order = [(f["type"], f["seq"]) for f in frames if f["type"] in ("ack", "message")]
    for kind, seq in order:
        if kind == "ack":
            assert order.index(("message", seq)) < order.index(("ack", seq)), order
    return [(f["client_id"], f["seq"]) for f in frames if f["type"] == "ack"]


@pytest.mark.parametrize("args", [[], ["--stock-websocket"]], ids=["upgraded", "stock"])
async def test_acks_follow_the_sends_across_reads_of_one_and_of_several(
    server_factory: ServerFactory, args: list[str]
) -> None:
    """A read of one send (its own path to the store) after a read of several: all in one
    store batch (the test holds SQLite's write lock meanwhile), acked in send order."""
    seen: Frames = []
    srv = server_factory(args)
    raw = await joined(srv, seen)
    lock = sqlite3.connect(srv.data_dir / "parley.db", isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the server's batch waits (BUSY_PATIENCE: 5 s)
        await send_in_reads(raw, [["p"], ["a", "b"], ["c"]], seen)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert await answers(raw, seen, 4) == [("p", 1), ("a", 2), ("b", 3), ("c", 4)]


async def test_acks_follow_the_sends_across_reads_on_postgres(
    server_factory: ServerFactory, pg_server: PgServer
) -> None:
    """The same on PostgreSQL: a row lock on the room holds the first batch (`z`), the
    others gather in the next one meanwhile."""
    url = pg_server.create_database()
    seen: Frames = []
    raw = await joined(server_factory(["--db", url]), seen)
    lock = await asyncpg.connect(url)
    try:
        held = lock.transaction()
        await held.start()
        await lock.execute("SELECT 1 FROM rooms WHERE room = 'general' FOR UPDATE")
        await send_in_reads(raw, [["z"]], seen)
        await blocked_on_the_lock(lock)  # `z` is in flight: those after it gather
        await send_in_reads(raw, [["p"], ["a", "b"], ["c"]], seen)
        await held.rollback()
    finally:
        await lock.close()
    acks = await answers(raw, seen, 5)
    assert acks == [("z", 1), ("p", 2), ("a", 3), ("b", 4), ("c", 5)]


async def test_one_read_with_a_resend_and_a_refusal_amid_accepted_sends(
    server_factory: ServerFactory,
) -> None:
    """A read of several sends (one batch path): a resend of an earlier send of the same
    read is acked with the first's seq, a refused one (no visible text) gets its error,
    the others their acks, in send order."""
    seen: Frames = []
    raw = await joined(server_factory(), seen)
    empty = {"type": "send", "room": "general", "text": " ", "client_id": "e", "id": 7}
    read = send("a") + send("a") + encode_frame(OP_TEXT, json.dumps(empty).encode())
    await raw.send_bytes(read + send("b") + encode_frame(OP_PING, b"read"))
    await read_until_pong(raw, b"read", seen)
    errors = [f for f in seen if f["type"] == "error"]
    assert [(f["code"], f.get("ref"), f.get("id")) for f in errors] == [("bad_request", "e", 7)]
    assert await answers(raw, seen, 3) == [("a", 1), ("a", 1), ("b", 2)]


async def blocked_on_the_lock(lock: Any) -> None:
    """Until a backend of the server waits for the lock the test holds."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    while not await lock.fetchval(waiting):  # noqa: ASYNC110 - no event tells: poll
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("together", [False, True], ids=["alone", "in-one-read"])
async def test_a_resend_into_another_room_is_acked_where_it_was_first_stored(
    server_factory: ServerFactory, together: bool
) -> None:
    """A client_id already stored in general, sent again to another room the socket uses
    (alone, or in a read of several sends): acked as the first, naming general; a new send
    beside it is acked in its own room."""
    seen: Frames = []
    srv = server_factory()
    raw = await joined(srv, seen)
    await raw.send_bytes(send("first") + encode_frame(OP_PING, b"first"))
    await read_until_pong(raw, b"first", seen)

    def to_side(client_id: str) -> bytes:
        frame = {"type": "send", "room": "side", "text": "x", "client_id": client_id}
        return encode_frame(OP_TEXT, json.dumps(frame).encode())

    join = encode_frame(OP_TEXT, b'{"type":"join","room":"side"}')
    async with AsyncApi(srv.url) as api:
        owner = await api.register()
        assert (await api.create_room(owner.token, "side")).status_code == 201
    await raw.send_bytes(join + encode_frame(OP_PING, b"side"))
    await read_until_pong(raw, b"side", seen)
    resend, new = to_side("first"), to_side("new")
    if together:
        await raw.send_bytes(resend + new + encode_frame(OP_PING, b"sent"))
    else:
        await raw.send_bytes(resend + encode_frame(OP_PING, b"one"))
        await read_until_pong(raw, b"one", seen)
        await raw.send_bytes(new + encode_frame(OP_PING, b"sent"))
    await read_until_pong(raw, b"sent", seen)
    frames = list(seen)
    while sum(f["type"] == "ack" for f in frames) < 3:
        opcode, data = await raw.read_frame()
        if opcode == OP_TEXT:
            frames.append(json.loads(data))
    raw.close()
    acks = [(f["client_id"], f["room"], f["seq"]) for f in frames if f["type"] == "ack"]
    assert acks == [("first", "general", 1), ("first", "general", 1), ("new", "side", 1)]
