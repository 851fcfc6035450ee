"""The /chat socket's tie to aiohttp internals: a tripwire for the pinned version."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import struct
import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp._websocket.reader import WebSocketReader

from parley.server import upstream
from parley.server.upstream import PINNED
from parley.server.ws import Inbox

ROOT = Path(__file__).resolve().parents[3]


def test_the_inbox_is_built_for_the_aiohttp_that_is_pinned() -> None:
    """`_ChatResponse._post_start` repeats aiohttp's own with another frame queue: any change
    to the upstream source it copies or leans on changes a hash. If aiohttp moves, compare
    the two again before changing the pin and the hashes in server/upstream.py."""
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"aiohttp=={upstream.AIOHTTP}" in pinned
    assert aiohttp.__version__ == upstream.AIOHTTP
    assert upstream.upstream_hashes() == PINNED
    assert upstream.override_fits()


def test_one_added_statement_in_the_copied_method_is_seen() -> None:
    """What the old substring check could not see: a step added to `_post_start`."""
    source = inspect.getsource(web.WebSocketResponse._post_start)
    tampered = source.replace("self._writer = writer\n", "self._writer = writer\n        pass\n")
    assert tampered != source
    digest = hashlib.sha256(tampered.encode()).hexdigest()
    assert digest != PINNED["_post_start"]
    assert hashlib.sha256(source.encode()).hexdigest() == PINNED["_post_start"]


# --- the inbox's shortcut keeps frames in order ----------------------------------------


class _Transport:
    """What the queue needs of aiohttp's protocol: its pause flag."""

    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


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


async def test_frames_held_back_behind_a_big_queued_one_are_not_offered_out_of_turn() -> None:
    """The reader loop is busy when a big frame fills the queue past its limit: aiohttp's
    parser holds back the frames after it and resumes inside the `receive()` that takes the
    big one. Those frames must queue behind it, not go past it through the shortcut."""
    inbox = Inbox(_Transport(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    inbox.idle = False  # the loop is handling an earlier frame
    handled: list[tuple[str, str]] = []

    def shortcut(text: str) -> bool:
        if text.startswith("quick"):
            handled.append(("shortcut", text))
            return True
        return False

    inbox.shortcut = shortcut
    parser = WebSocketReader(inbox, 1 << 20, compress=False, decode_text=True)
    parser.feed_data(_frame("big" + "x" * 140_000) + _frame("quick-1") + _frame("quick-2"))
    assert inbox.held_back  # the case under test: the rest is held back
    while inbox.queued:  # the reader loop of chat_socket, until it would wait
        inbox.wait_idle()
        msg = await inbox.read()
        handled.append(("loop", msg.data[:7]))
    assert not inbox.held_back
    assert handled == [("loop", "bigxxxx"), ("loop", "quick-1"), ("loop", "quick-2")]
    inbox.wait_idle()
    parser.feed_data(_frame("quick-3"))  # nothing queued or held back: straight through
    assert handled[-1] == ("shortcut", "quick-3")
    assert not inbox.queued
