"""A test-only WebSocket echo endpoint on Parley's production socket path.

`python -m tests.support.echo_server --port N` serves GET / with the very handler code
/chat runs (`ws.socket_handler`): the same hand-over to an `UpgradedSocket` (or aiohttp's
stock class with `--stock-websocket`), `Connection`, frame writer, ping answers and close
handshake; only the session differs: it echoes each text and binary message. The
Autobahn|Testsuite drives it (tests/conformance). It is never part of the served app.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiohttp import web

from parley.server.connection import Connection, Flusher
from parley.server.frames import binary_frame
from parley.server.upstream import override_fits
from parley.server.ws import MAX_FRAME, Session, open_socket, socket_handler

__all__ = ["EchoSession", "build_app", "main"]


class EchoSession(Session):
    """Every message back as it came. Text goes the way a chat send does: taken at once by
    `on_text_now` when nothing is ahead of it, in turn by `on_text` otherwise."""

    __slots__ = ()

    async def on_text(self, data: str) -> None:
        self.conn.send(data.encode())

    def on_text_now(self, data: str) -> bool:
        self.conn.send(data.encode())
        return True

    def on_binary(self, data: bytes) -> None:
        self.conn.send_frame(binary_frame(data))


def build_app(*, stock: bool, max_message: int) -> web.Application:
    """The echo app; call it with the loop running (the flusher belongs to it)."""
    flusher = Flusher()

    async def accept(request: web.Request) -> tuple[web.StreamResponse, Connection | None]:
        return await open_socket(
            request, "echo", None, flusher, stock=stock, max_msg_size=max_message
        )

    app = web.Application()
    app.router.add_get("/", socket_handler(accept, lambda request, conn: EchoSession(conn)))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stock-websocket", action="store_true")
    parser.add_argument(
        "--max-message",
        type=int,
        default=MAX_FRAME,
        help="largest message in bytes (/chat takes 1 MiB; Autobahn's 9.x cases send more)",
    )
    args = parser.parse_args(argv)
    stock = args.stock_websocket or not override_fits()
    print(f"echo server: {'stock' if stock else 'override'} socket path", flush=True)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - as `parley serve` does
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args.host, args.port, stock=stock, max_message=args.max_message))
    return 0


async def _serve(host: str, port: int, *, stock: bool, max_message: int) -> None:
    runner = web.AppRunner(build_app(stock=stock, max_message=max_message), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()  # until killed
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
