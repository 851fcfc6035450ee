"""The /chat socket's tie to aiohttp internals: a tripwire for the pinned version."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[3]


def test_the_inbox_is_built_for_the_aiohttp_that_is_pinned() -> None:
    """`_ChatResponse._post_start` repeats aiohttp's own with another frame queue: if
    aiohttp moves, compare the two again before changing the pin or this test."""
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"aiohttp=={aiohttp.__version__}" in pinned
    assert aiohttp.__version__ == "3.14.5"
    theirs = inspect.getsource(web.WebSocketResponse._post_start)
    for step in ("WebSocketDataQueue(", "WebSocketReader(", "set_parser(", "keep_alive(False)"):
        assert step in theirs
