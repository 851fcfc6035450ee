"""The aiohttp source that /chat's fast socket path relies on, checked against pinned hashes.

`ws._ChatResponse._post_start` is a copy of aiohttp's private `_post_start` that puts an
`Inbox` (a subclass of aiohttp's private frame queue) under the parser. A copy cannot
follow upstream: a new aiohttp, or a tampered copy of this one, may add a step ours lacks
or change what the queue's methods promise, and nothing would fail loudly. So the server
hashes that upstream source at start and, on any difference from the hashes below (taken
from the pinned aiohttp), logs a warning and serves /chat the stock aiohttp way instead
(`parley serve --stock-websocket` forces that). A test fails on a difference too.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Final

import aiohttp
import aiohttp._websocket
from aiohttp import web
from aiohttp._websocket import reader_py

__all__ = ["PINNED", "override_fits", "upstream_hashes"]

log = logging.getLogger("parley.ws")

AIOHTTP: Final = "3.14.5"


def _pxd() -> str:
    return (Path(aiohttp._websocket.__file__).parent / "reader_c.pxd").read_text()


# What each piece is to the override:
#  _post_start: the method `_ChatResponse._post_start` replaces (every step must be ours too);
#  WebSocketDataQueue: the class `Inbox` extends (feed_data, read, _buffer, _stalled_reader);
#  WebSocketReader: the parser that feeds the queue, stalls and resumes it;
#  reader_c.pxd: which of those the compiled reader lets a subclass override or see.
_SOURCES: Final[dict[str, Callable[[], str]]] = {
    "_post_start": lambda: inspect.getsource(web.WebSocketResponse._post_start),
    "WebSocketDataQueue": lambda: inspect.getsource(reader_py.WebSocketDataQueue),
    "WebSocketReader": lambda: inspect.getsource(reader_py.WebSocketReader),
    "reader_c.pxd": _pxd,
}

PINNED: Final = {  # sha256 of each, aiohttp 3.14.5 as pinned in pyproject.toml
    "_post_start": "5537cb3f2ecae6ed9f4d27d6d9255adb414e81efcc4d23ede6bacd762d56ed93",
    "WebSocketDataQueue": "526af2531df720eec94960f1eb50889a2f3830966b5b606f73d8f9c875e91a8f",
    "WebSocketReader": "a2db8242e7f27072876085d2dcef2d4b5b15559881b73dc7147633c97e78cd53",
    "reader_c.pxd": "b00a01c059e019742893b3120ef63d2c595c83735a42513bce7f75204dda205f",
}


def upstream_hashes() -> dict[str, str]:
    """sha256 of each piece of the installed aiohttp; "" where it cannot be read."""
    return {name: _digest(read) for name, read in _SOURCES.items()}


def _digest(read: Callable[[], str]) -> str:
    try:
        return hashlib.sha256(read().encode()).hexdigest()
    except (OSError, TypeError):  # no source shipped: nothing to vouch for it
        return ""


@cache
def override_fits() -> bool:
    """True if the installed aiohttp is, in what the override touches, the pinned one.

    Otherwise log which pieces differ: the caller then uses the stock path."""
    changed = sorted(name for name, digest in upstream_hashes().items() if digest != PINNED[name])
    if changed:
        log.warning(
            "aiohttp %s differs from the pinned %s in %s: /chat uses the stock aiohttp "
            "socket path (slower); see docs/security.md",
            aiohttp.__version__,
            AIOHTTP,
            ", ".join(changed),
        )
    return not changed
