"""The /chat socket's tie to aiohttp internals (a tripwire for the pinned version), and
the order in which an `UpgradedSocket` hands frames to its session."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import struct
import tomllib
from pathlib import Path

import aiohttp
from aiohttp.web_protocol import RequestHandler

from parley.core import SocketState
from parley.server import upstream
from parley.server.upgraded import QUEUE_HIGH, UpgradedSocket
from parley.server.upstream import PINNED

ROOT = Path(__file__).resolve().parents[3]


def test_the_hand_over_is_built_for_the_aiohttp_that_is_pinned() -> None:
    """`hand_over` and `UpgradedSocket` lean on aiohttp's RequestHandler and its private
    frame parser and queue: any change to that upstream source changes a hash. If aiohttp
    moves, compare the two again before changing the pin and the hashes in
    server/upstream.py."""
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"aiohttp=={upstream.AIOHTTP}" in pinned
    assert aiohttp.__version__ == upstream.AIOHTTP
    assert upstream.upstream_hashes() == PINNED
    assert upstream.override_fits()


def test_one_added_statement_in_a_method_leaned_on_is_seen() -> None:
    """What a substring check could not see: a step added to `connection_lost`."""
    source = inspect.getsource(RequestHandler.connection_lost)
    step = "        self._parser = None\n"
    tampered = source.replace(step, step + "        pass\n")
    assert tampered != source
    assert hashlib.sha256(tampered.encode()).hexdigest() != PINNED["connection_lost"]
    assert hashlib.sha256(source.encode()).hexdigest() == PINNED["connection_lost"]


# --- frames reach the session in the order they came -----------------------------------


class _Transport:
    """What the socket needs of its transport: reading paused or not, and what it wrote."""

    def __init__(self) -> None:
        self.reading = True
        self.closed = False
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


class _Conn:
    """The lifecycle calls the socket makes, recorded."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.state = SocketState.OPEN
        self.busy = False

    def handling(self) -> None:
        assert not self.busy
        self.busy = True

    def heard(self, now: float) -> None:
        self.busy = False


class _Session:
    """Takes texts starting with "quick" at once; the others wait until `go` is set."""

    def __init__(self) -> None:
        self.conn = _Conn()
        self.handled: list[tuple[str, str]] = []
        self.reads: list[list[str]] = []  # what each call of `on_texts_now` was given
        self.go = asyncio.Event()

    def on_texts_now(self, texts: list[str]) -> int:
        self.reads.append([text[:7] for text in texts])
        for taken, data in enumerate(texts):
            if not data.startswith("quick"):
                return taken
            self.handled.append(("now", data[:7]))
        return len(texts)

    async def on_text(self, data: str) -> None:
        await self.go.wait()
        self.handled.append(("in turn", data[:7]))


def _frame(text: str) -> bytes:
    """A masked client text frame."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_frames_behind_one_being_handled_wait_their_turn() -> None:
    """A frame that needs waiting is handled in a task; the frames parsed meanwhile queue
    behind it, quick ones too (they must not go past it), and reading stops while too
    much waits. Once it is done, the queue drains in order and the task ends."""
    transport = _Transport()
    sock = UpgradedSocket(transport, 1 << 20)  # type: ignore[arg-type]
    session = _Session()
    sock.session = session  # type: ignore[assignment]

    sock.data_received(_frame("quick-0") + _frame("slow-1") + _frame("quick-2"))
    big = "big-3" + "x" * QUEUE_HIGH
    sock.data_received(_frame(big) + _frame("quick-4"))
    assert session.handled == [("now", "quick-0")]
    assert session.conn.busy  # the keepalive knows a frame is being handled
    assert not transport.reading  # more than QUEUE_HIGH waits: the client is slowed down

    session.go.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert session.handled == [
        ("now", "quick-0"),
        ("in turn", "slow-1"),
        ("now", "quick-2"),
        ("in turn", "big-3xx"),
        ("now", "quick-4"),
    ]
    assert transport.reading
    assert not session.conn.busy
    sock.data_received(_frame("quick-5"))  # nothing ahead of it: taken at once
    assert session.handled[-1] == ("now", "quick-5")


async def test_the_text_frames_of_one_read_reach_the_session_in_one_call() -> None:
    """The frames one read holds are handed over together once it is parsed (the session
    queues their sends for the store in one step); a frame the shortcut does not take
    stops the handing over: it goes to its task, and the rest of the read waits behind it."""
    sock = UpgradedSocket(_Transport(), 1 << 20)  # type: ignore[arg-type]
    session = _Session()
    sock.session = session  # type: ignore[assignment]

    sock.data_received(b"".join(_frame(f"quick-{i}") for i in range(3)))
    assert session.reads == [["quick-0", "quick-1", "quick-2"]]
    sock.data_received(_frame("quick-3") + _frame("slow-4") + _frame("quick-5"))
    assert session.reads[1:] == [["quick-3", "slow-4", "quick-5"]]
    assert session.handled[-1] == ("now", "quick-3")
    session.go.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert session.handled[-2:] == [("in turn", "slow-4"), ("now", "quick-5")]
    assert session.reads[2:] == [["quick-5"]]
