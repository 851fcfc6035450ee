"""HTTP connections: aiohttp's RequestHandler with a request-head timeout and a cap per
client address on connections that have not signed in, and the listening site that
makes them. The rules are in `parley.core.connections`; this is their wiring.

The idle keep-alive timeout is aiohttp's own (`keepalive_timeout`: it closes a
connection that has waited that long for its next request). A WebSocket leaves all of
this at its upgrade: its own ping/pong keepalive governs it.

A WebSocket leaves aiohttp altogether once upgraded: `hand_over` gives its transport to
a protocol of ours (server/upgraded.py).

What this leans on in aiohttp beyond its documented API (a unit test pins the pinned
version's source): `_request_count` counts the request heads the parser has produced;
`close()` makes `data_received` drop what comes; `set_parser()` is how an upgrade takes
the connection over (it hands the parser what was read past the upgrade request);
`connection_lost()` is where a connection leaves aiohttp, and closes nothing once its
`transport` is None; `handle_error()` makes the answer to a request it could not parse,
which no `on_response_prepare` hook sees.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import sys
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Any, Final

from aiohttp import web
from aiohttp.http import WebSocketReader
from aiohttp.web_protocol import RequestHandler

from parley.core.addresses import Network, client_key, peer_trusted
from parley.core.connections import HeadClock, Phase, UnauthenticatedCap
from parley.protocol import ErrorCode
from parley.protocol.http import error_body
from parley.server.config import Config
from parley.server.headers import SECURITY_HEADERS, SERVER, harden

__all__ = [
    "LINGER",
    "ConnectionRules",
    "Front",
    "MakeHandler",
    "ParleyHandler",
    "ParleySite",
    "answered",
    "hand_over",
    "refused_before",
    "signed_in",
]

log = logging.getLogger("parley.http")

LINGER: Final = 2.0  # seconds a refused connection may take to read its answer
# A connection counts under the cap once its first request head has taken this long: a
# client's head follows its connect at once, so only the slow (or stalling) ones count,
# and a burst of real clients from one address (a NAT, a reconnect storm) never does.
SLOW_HEAD: Final = 1.0
RETRY_AFTER: Final = 1  # the cap frees as the address's other connections sign in or end


class ConnectionRules:
    """What every HTTP connection of one server shares."""

    __slots__ = ("cap", "header_timeout", "keepalive_timeout", "trusted")

    def __init__(self, config: Config) -> None:
        self.header_timeout = config.header_timeout
        self.keepalive_timeout = config.keepalive_timeout
        self.trusted: tuple[Network, ...] = config.trusted_proxies
        self.cap: UnauthenticatedCap[ParleyHandler] = UnauthenticatedCap(
            config.max_unauthenticated_per_address
        )


def _raw_error(
    status: int, reason: str, code: ErrorCode, message: str, retry_after: int | None = None
) -> bytes:
    """A whole HTTP/1.1 error response, for when there is no request to answer through
    aiohttp: the JSON error shape, the security headers, and `Connection: close`."""
    headers = {
        "Content-Type": "application/json",
        "Date": formatdate(usegmt=True),
        "Server": SERVER,
        "Cache-Control": "no-store",
        "Connection": "close",
        **SECURITY_HEADERS,
    }
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = error_body(code, message, None if retry_after is None else float(retry_after))
    headers["Content-Length"] = str(len(body))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


class ParleyHandler(RequestHandler):
    """One HTTP connection, timed by a `HeadClock` and counted by the cap until it signs in."""

    __slots__ = (
        "_clock",
        "_connected_at",
        "_key",
        "_peer",
        "_rules",
        "_slow_timer",
        "_timer",
        "refused_token",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        rules: ConnectionRules,
        connected_at: float | None = None,
        **kwargs: Any,
    ) -> None:
        # aiohttp reads keepalive_timeout 0 as "close once idle": off is never
        super().__init__(manager, keepalive_timeout=rules.keepalive_timeout or math.inf, **kwargs)
        self._rules = rules
        # When the connection was made, if before this handler took it (server/front.py):
        # its head timeout and its counting as slow go from then.
        self._connected_at = connected_at
        self.refused_token: str | None = None  # a token found not live before it took over
        self._clock: HeadClock | None = None  # None: upgraded, or being hung up on
        self._key: str | None = None  # the address it counts against, until it signs in
        self._peer: str | None = None  # the address it would count against, once slow
        self._timer: asyncio.TimerHandle | None = None
        self._slow_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        rules = self._rules
        connected_at = self._loop.time() if self._connected_at is None else self._connected_at
        self._clock = HeadClock(rules.header_timeout, connected_at)
        self._watch()
        peername = transport.get_extra_info("peername")
        peer = peername[0] if isinstance(peername, tuple) else None
        # Behind a proxy every connection comes from the proxy: it must do the counting.
        if rules.cap.limit <= 0 or peer_trusted(peer, rules.trusted):
            return
        self._peer = client_key(peer, (), ())
        self._slow_timer = self._loop.call_at(connected_at + SLOW_HEAD, self._count_if_slow)

    def _count_if_slow(self) -> None:
        """SLOW_HEAD after the connect, still without a whole request head: it counts."""
        self._slow_timer = None
        clock, key = self._clock, self._peer
        if clock is None or key is None or clock.heads > 0:
            return
        admission = self._rules.cap.admit(key, self, ParleyHandler.idle)
        if not admission.admitted:
            self._hang_up(_too_many())
            return
        self._key = key
        if admission.evict is not None:
            admission.evict.force_close()

    def data_received(self, data: bytes) -> None:
        # every read of every WebSocket passes here: the direct call skips making a super()
        RequestHandler.data_received(self, data)
        clock = self._clock
        if clock is None or (clock.phase is Phase.BUSY and clock.heads == self._request_count):
            return  # a WebSocket's frames, a body, a pipelined request: nothing to time
        deadline = clock.deadline
        clock.received(self._loop.time(), self._request_count)
        if clock.deadline != deadline:
            self._watch()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._clock = None
        self._cancel_timer()
        self._release()
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None

    # --- aiohttp's RequestHandler ----------------------------------------------------

    def set_parser(
        self, parser: WebSocketReader, data_received_cb: Callable[[], None] | None = None
    ) -> None:
        """The upgrade to a WebSocket: no more HTTP requests, no more HTTP timeouts, and no
        longer counted by the cap (a guest socket has its own, `--max-guests-per-address`)."""
        super().set_parser(parser, data_received_cb)
        self._clock = None
        self._cancel_timer()
        self._release()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request aiohttp could not parse (400) or a handler that raised
        (500), with our headers: no `on_response_prepare` hook sees it. A client's fault
        gets the JSON error shape and a debug line; aiohttp would log a traceback at
        error level for each, which anyone could make fill the log."""
        if not 400 <= status < 500:
            resp = super().handle_error(request, status, exc, message)
        elif request.writer.output_size > 0:
            raise ConnectionError("a response was sent already")  # as aiohttp's own does
        else:
            log.debug("unparsable request from %s: %s", request.remote, message)
            body = error_body(ErrorCode.BAD_REQUEST, message or "bad request")
            resp = web.Response(status=status, body=body, content_type="application/json")
            resp.force_close()
        harden(request, resp.headers, self._rules.trusted)
        return resp

    # --- what the application tells it -----------------------------------------------

    def answered(self) -> None:
        clock = self._clock
        if clock is not None:
            clock.answered(self._request_count)

    def signed_in(self) -> None:
        self._peer = None  # never to count, even if its first head was slow
        self._release()

    def idle(self) -> bool:
        """Between requests, with its last answer handed to the kernel: safe to close."""
        clock, transport = self._clock, self.transport
        return (
            clock is not None
            and clock.phase is Phase.IDLE
            and transport is not None
            and transport.get_write_buffer_size() == 0
        )

    # --- timers ----------------------------------------------------------------------

    def _watch(self) -> None:
        """(Re)arm the timer for the clock's deadline."""
        self._cancel_timer()
        clock = self._clock
        if clock is not None and clock.deadline is not None:
            self._timer = self._loop.call_at(clock.deadline, self._head_timeout)

    def _head_timeout(self) -> None:
        self._timer = None
        clock = self._clock
        if clock is None:
            return
        if not clock.expired(self._loop.time()):
            self._watch()  # the loop may run a timer a little early
        elif clock.partial:
            self._hang_up(_head_too_slow(self._rules.header_timeout))
        else:
            self.force_close()  # nothing was said: no answer to give

    def _hang_up(self, response: bytes) -> None:
        """Answer and close. Until the client has read the answer and closed (or LINGER
        passes) what it still sends is read and dropped: closing with unread data would
        be a reset, and a reset can destroy the answer before the client reads it."""
        self._clock = None
        self._cancel_timer()
        self.close()  # aiohttp parses nothing more
        transport = self.transport
        if transport is None:
            return
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self._loop.call_later(LINGER, self.force_close)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release(self) -> None:
        if self._key is not None:
            self._rules.cap.release(self._key, self)
            self._key = None


def _too_many() -> bytes:
    return _raw_error(
        429,
        "Too Many Requests",
        ErrorCode.RATE_LIMITED,
        "too many connections from your address that have not signed in",
        RETRY_AFTER,
    )


def _head_too_slow(timeout: float) -> bytes:
    return _raw_error(
        408,
        "Request Timeout",
        ErrorCode.BAD_REQUEST,
        f"the request head did not arrive within {timeout:g} s",
    )


def answered(request: web.BaseRequest) -> None:
    """A response to `request` is starting (the `on_response_prepare` hook)."""
    proto = request.protocol
    if isinstance(proto, ParleyHandler):
        proto.answered()


def refused_before(request: web.BaseRequest, token: str) -> bool:
    """Whether `token` was found not live on this connection before aiohttp took it
    (server/front.py): no need to look it up again."""
    proto = request.protocol
    return isinstance(proto, ParleyHandler) and proto.refused_token == token


def signed_in(request: web.BaseRequest) -> None:
    """`request` showed a valid token, or got one: its connection leaves the cap."""
    proto = request.protocol
    if isinstance(proto, ParleyHandler):
        proto.signed_in()


class _Leftover:
    """Stands in for a WebSocket parser at `set_parser`: takes what the client sent behind
    its upgrade request (its first frames, sent without waiting for the 101)."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        """aiohttp's end of the connection lets go of it: nothing to do."""


def hand_over(request: web.BaseRequest, protocol: asyncio.Protocol) -> bytes | None:
    """After the 101: the connection of `request` leaves aiohttp for `protocol`, which gets
    all that comes from now on; returned, the bytes already read past the upgrade request,
    for it to take first. aiohttp's handler lets go of the connection as of a lost one, but
    closes nothing (its `transport` is None first), and its request task ends when the
    request handler returns. None if the connection is gone already."""
    handler = request.protocol
    transport = handler.transport
    if transport is None or transport.is_closing():
        return None
    leftover = _Leftover()
    handler.set_parser(leftover)  # type: ignore[arg-type]  # it takes any such parser
    transport.set_protocol(protocol)
    handler.transport = None
    handler.connection_lost(None)
    if not transport.is_reading():  # aiohttp paused it while its buffer was full
        transport.resume_reading()
    return leftover.data


# What makes a `ParleyHandler` for a connection made at the time given.
MakeHandler = Callable[[float | None], ParleyHandler]
# What may take each new connection first (server/front.py), given how to make a handler.
Front = Callable[[MakeHandler], Callable[[], asyncio.Protocol]]


class ParleySite(web.BaseSite):
    """A TCP site whose connections are `ParleyHandler`s (aiohttp's TCPSite makes plain
    RequestHandlers), or go to `front` first, and whose TLS handshakes get the head
    timeout too."""

    __slots__ = ("_front", "_host", "_port", "_rules")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        rules: ConnectionRules,
        front: Front | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, **kwargs)
        self._host = host
        self._port = port
        self._rules = rules
        self._front = front

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        rules = self._rules

        # TCP keepalive as aiohttp's handler sets it, but once, on the listening socket:
        # Linux gives every accepted connection the listener's SO_KEEPALIVE, where the
        # handler's own `setsockopt` (through a socket object made for it) cost each
        # connection system calls. (TCP_NODELAY the event loop sets on each, uvloop and
        # asyncio alike; aiohttp's handler sets it again.)
        def handler(connected_at: float | None = None) -> ParleyHandler:
            return ParleyHandler(
                server,
                rules=rules,
                connected_at=connected_at,
                loop=loop,
                access_log=None,
                tcp_keepalive=not inherited,
            )

        inherited = False

        ssl = self._ssl_context
        self._server = await loop.create_server(
            handler if self._front is None else self._front(handler),
            self._host,
            self._port,
            ssl=ssl,
            backlog=self._backlog,
            ssl_handshake_timeout=(rules.header_timeout or None) if ssl else None,
        )
        inherited = _keepalive_inherited(self._server.sockets)


def _keepalive_inherited(listeners: Sequence[socket.socket]) -> bool:
    """Turn SO_KEEPALIVE on for the connections `listeners` accept, through the listeners
    (True), where the kernel passes it on to them (Linux); False: each must set it."""
    if not sys.platform.startswith("linux") or not listeners:
        return False
    for listener in listeners:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return True
