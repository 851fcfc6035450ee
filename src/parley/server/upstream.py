"""The aiohttp source that /chat's own socket path relies on, checked against pinned hashes.

The 101 itself is serialized by aiohttp but written by us, with the greeting
(`upgraded.take_head`). After the upgrade, `httpconn.hand_over` takes the connection from aiohttp's
`RequestHandler` (through `set_parser` and `connection_lost`, its transport set to None
first), and `upgraded.UpgradedSocket` feeds it to aiohttp's private frame parser as a
subclass of its private frame queue, never initialised. Neither is aiohttp's documented
API: a new aiohttp, or a tampered copy of this one, may change what they do, and nothing
would fail loudly. So the server hashes that upstream source at start and, on any
difference from the hashes below (taken from the pinned aiohttp), logs a warning and
serves /chat the stock aiohttp way instead (`parley serve --stock-websocket` forces that).
A test fails on a difference too.
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
from aiohttp._websocket import reader_py
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_response import StreamResponse

__all__ = ["PINNED", "override_fits", "upstream_hashes"]

log = logging.getLogger("parley.ws")

AIOHTTP: Final = "3.14.5"


def _pxd() -> str:
    return (Path(aiohttp._websocket.__file__).parent / "reader_c.pxd").read_text()


# What each piece is to the hand-over:
#  set_parser: takes the parser, and hands it what was read past the upgrade request;
#  data_received: where those bytes wait until then (`_message_tail`);
#  connection_lost: lets go of the connection, closing nothing once `transport` is None;
#  WebSocketDataQueue: the class `UpgradedSocket` extends (feed_data, set_exception; its
#   _size and _limit stay 0, so the parser never stalls on it);
#  WebSocketReader: the parser that feeds the queue;
#  reader_c.pxd: which of those the compiled reader lets a subclass override or see;
#  _write_headers, write_headers, write_eof: the 101 is serialized, not written, when
#   `_send_headers_immediately` is off, so `upgraded.take_head` can take it
#   (`_headers_buf`, `_headers_written`), after which `write_eof` writes nothing.
_SOURCES: Final[dict[str, Callable[[], str]]] = {
    "set_parser": lambda: inspect.getsource(RequestHandler.set_parser),
    "data_received": lambda: inspect.getsource(RequestHandler.data_received),
    "connection_lost": lambda: inspect.getsource(RequestHandler.connection_lost),
    "WebSocketDataQueue": lambda: inspect.getsource(reader_py.WebSocketDataQueue),
    "WebSocketReader": lambda: inspect.getsource(reader_py.WebSocketReader),
    "reader_c.pxd": _pxd,
    "_write_headers": lambda: inspect.getsource(StreamResponse._write_headers),
    "write_headers": lambda: inspect.getsource(StreamWriter.write_headers),
    "write_eof": lambda: inspect.getsource(StreamWriter.write_eof),
}

PINNED: Final = {  # sha256 of each, aiohttp 3.14.5 as pinned in pyproject.toml
    "set_parser": "bb548eb2b85d5c280fe3adf2f418a7af7046052549bfd66c426fdb8ad10050bf",
    "data_received": "1ee57ebe052e6c80ced26c96e4ccb1223172e1d55afba460353c5e414914d3f6",
    "connection_lost": "df2fe6e95fd04c7caf0611ecabbe58f85ee08e38b9a6ce24ef85e0c8dba5b86d",
    "WebSocketDataQueue": "526af2531df720eec94960f1eb50889a2f3830966b5b606f73d8f9c875e91a8f",
    "WebSocketReader": "a2db8242e7f27072876085d2dcef2d4b5b15559881b73dc7147633c97e78cd53",
    "reader_c.pxd": "b00a01c059e019742893b3120ef63d2c595c83735a42513bce7f75204dda205f",
    "_write_headers": "0280580268bc7e84440e084ed956cb0bf57c413ca4ba6cd563973e7c0cd48882",
    "write_headers": "41686943f544d978a2660c4549f0321216dffa78c79e438ec5e801ea602952a7",
    "write_eof": "c7e545df80b9eb68afc8228d3731cfbea268252a797574129b643d3c1e3cc57d",
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
