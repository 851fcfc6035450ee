"""The storm client's handshake and frame parsing, fed Parley's own frames in pieces."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from parley.protocol import Hello, Joined, MessageEvent, Presence, encode
from parley_bench.client import Target
from parley_bench.sink import frame_header
from parley_bench.stormclient import StormClient, StormGroup

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PARLEY = Target("parley", "ws://127.0.0.1:9/chat", True, ["tok"])
SINK = Target("sink", "ws://127.0.0.1:9/", False)


class Transport:
    """What the client writes, and whether it aborted."""

    def __init__(self) -> None:
        self.written = b""
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> None:
        return None  # no socket: nothing to set SO_LINGER on


def server_frame(payload: bytes, opcode: int = 0x81) -> bytes:
    return bytes((opcode,)) + frame_header(len(payload))[1:] + payload


def answer(request: bytes, status: bytes = b"101 Switching Protocols") -> bytes:
    """The server's response to `request`, with the accept value its key asks for."""
    match = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
    assert match is not None
    accept = base64.b64encode(hashlib.sha1(match.group(1) + GUID).digest())
    return b"HTTP/1.1 " + status + b"\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"


def client_frames(data: bytes) -> list[Frame]:
    """The client's frames, parsed (and unmasked) by the websockets library."""
    reader = StreamReader()
    reader.feed_data(data)
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        with pytest.raises(StopIteration) as done:
            next(parser)
        frames.append(done.value.value)
    return frames


def connecting(target: Target, since: int | None = None) -> tuple[StormClient, Transport]:
    """A storm client (resuming after `since`, if given) whose connection has just been
    made: its upgrade request is in the transport."""
    client = StormClient(StormGroup(target, "127.0.0.2"), 0)
    if since is not None:
        client.since = client.last_seq = since
    client.ready = asyncio.get_running_loop().create_future()
    transport = Transport()
    client.connection_made(transport)  # type: ignore[arg-type]
    return client, transport


def feed(client: StormClient, data: bytes, piece: int) -> None:
    for i in range(0, len(data), piece):
        client.data_received(data[i : i + piece])


def message(seq: int) -> bytes:
    text = f'tricky "seq":{seq + 100} text'
    return encode(MessageEvent("general", seq, "ann", text, "2026-11-28T00:00:00Z", f"c{seq}"))


@pytest.mark.parametrize("piece", [1, 7, 10_000])
async def test_a_resume_records_every_seq_from_frames_cut_anywhere(piece: int) -> None:
    client, transport = connecting(PARLEY, since=4)
    request = transport.written
    assert request.startswith(b"GET /chat HTTP/1.1\r\n")
    assert b"Authorization: Bearer tok\r\n" in request
    assert b"Sec-WebSocket-Protocol: parley.v1\r\n" in request
    transport.written = b""

    feed(client, answer(request) + server_frame(encode(Hello("ann", []))), piece)
    (join,) = client_frames(transport.written)
    assert (join.opcode, join.data) == (Opcode.TEXT, b'{"type":"join","room":"general","since":4}')
    assert not client.ready.done()
    transport.written = b""

    replay = b"".join(server_frame(message(seq)) for seq in (5, 6, 7, 7))
    presence = server_frame(encode(Presence("general", "bob", True)))
    joined = server_frame(encode(Joined("general", 7, ["ann"])))
    feed(client, joined + replay + presence + server_frame(b"hi", 0x89), piece)
    assert client.ready.done()
    assert client.ready.exception() is None
    assert client.seqs == [5, 6, 7, 7]
    assert (client.last_seq, client.resume_target) == (7, 7)
    assert client.resumed_ns > 0
    assert client.buffer == b""
    (pong,) = client_frames(transport.written)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"hi")


async def test_a_refused_handshake_fails_the_connect() -> None:
    client, transport = connecting(PARLEY)
    client.data_received(answer(transport.written, b"401 Unauthorized"))
    assert isinstance(client.ready.exception(), ConnectionError)
    assert transport.aborted
    assert not client.seqs


async def test_a_wrong_accept_value_fails_the_connect() -> None:
    client, _ = connecting(SINK)
    client.data_received(b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")
    assert isinstance(client.ready.exception(), ConnectionError)


async def test_plain_text_clients_record_the_senders_seq() -> None:
    client, transport = connecting(SINK)
    assert b"Sec-WebSocket-Protocol" not in transport.written
    frames = b"".join(server_frame(f"~b~3:{seq}:99:xxxx".encode()) for seq in (0, 1, 2))
    feed(client, answer(transport.written) + frames + server_frame(b"x" * 300), 5)
    assert client.ready.done()
    assert client.connected
    assert client.seqs == [0, 1, 2]
