"""This node's open sockets: who they are, the keepalive sweep over them, and closing them.

The registry knows sockets, not rooms: what a socket joined is the delivery's business
(server/delivery.py), and whether it may open at all is the chat service's
(server/chat.py). It counts the guest sockets open per address, for the service's cap,
and knows each account's sockets (a read marker reaches all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from aiohttp import WSCloseCode

from parley.core import Ending, Hint, KeepalivePolicy, RecentSignOuts, Verdict
from parley.protocol import CloseCode
from parley.server import metrics
from parley.server.connection import Connection
from parley.server.frames import PING

__all__ = ["Registry", "close_signed_out"]

log = logging.getLogger("parley.chat")


class Registry:
    """The open sockets of this node, all of them and by session token."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.by_token: dict[str, set[Connection]] = {}
        self.by_user: dict[str, set[Connection]] = {}  # signed-in sockets, by username
        # This node among others: a cluster event names a socket as (node, conn.id).
        self.node = secrets.token_hex(8)
        self._guests: dict[str, int] = {}  # open guest sockets per limit key (their address)
        self._closing_all = False
        self._all_detached = asyncio.Event()  # set when closing all and the last one is gone
        self._signed_out: RecentSignOuts[CloseCode] = RecentSignOuts()
        # Asks the store whether a suspect socket's session lives, and closes it if not (the
        # chat service sets it: the registry knows sockets, not the store).
        self.recheck: Callable[[Connection, CloseCode], None] = lambda conn, code: None

    # --- guest sockets per address ------------------------------------------------------

    def guests_open(self, key: str) -> int:
        """How many guest sockets from the address `key` are open or opening."""
        return self._guests.get(key, 0)

    def add_guest(self, key: str) -> None:
        """A guest socket from `key` is admitted (counted at the handshake, not at `attach`:
        handshakes in flight at once must not all pass)."""
        self._guests[key] = self._guests.get(key, 0) + 1

    def release_guest(self, key: str) -> None:
        """A guest socket counted by `add_guest` is gone (or never opened)."""
        left = self._guests.pop(key, 1) - 1
        if left > 0:
            self._guests[key] = left

    # --- attach and detach --------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        self.connections.add(conn)
        if conn.token_hash:
            self.by_token.setdefault(conn.token_hash, set()).add(conn)
            self.by_user.setdefault(conn.username, set()).add(conn)
            self._caught_up(conn)
        metrics.CONNECTIONS.inc()

    def _caught_up(self, conn: Connection) -> None:
        """A sign-out between this socket's token check and now missed it: act on it now."""
        assert conn.token_hash is not None
        hint, code = self._signed_out.check(conn.username, conn.token_hash, time.monotonic())
        if code is None:
            return
        if hint is Hint.CLOSE:
            self.sign_out(conn.token_hash, code)
        elif hint is Hint.RECHECK:
            self.recheck(conn, code)

    def detach(self, conn: Connection) -> bool:
        """Forget `conn`; False if it was not attached (or already forgotten)."""
        if conn not in self.connections:
            return False
        self.connections.discard(conn)
        if conn.guest:
            self.release_guest(conn.limit_key)
        if self._closing_all and not self.connections:
            self._all_detached.set()
        metrics.CONNECTIONS.dec()
        if conn.token_hash:
            _forget(self.by_token, conn.token_hash, conn)
            _forget(self.by_user, conn.username, conn)
        return True

    def sockets_of(self, username: str) -> set[Connection]:
        """The open sockets of the account `username` on this node (none for a guest)."""
        return self.by_user.get(username, set())

    def sockets_named(self, username: str) -> list[Connection]:
        """Like `sockets_of`, whatever the case `username` is written in (an admin's URL,
        the audit log): a rare lookup, over every account with a socket here."""
        name = username.lower()
        return [c for user, conns in self.by_user.items() if user.lower() == name for c in conns]

    # --- closing ------------------------------------------------------------------------

    def sign_out(self, token_hash: str, code: CloseCode = CloseCode.SIGNED_OUT) -> None:
        """The session `token_hash` ended: close its sockets here (4001, or `code`)."""
        self._signed_out.session_ended(token_hash, code, time.monotonic())
        for conn in list(self.by_token.pop(token_hash, ())):
            close_signed_out(conn, code)

    def sign_out_user(
        self, username: str, keep: str | None, code: CloseCode = CloseCode.SIGNED_OUT
    ) -> None:
        """Every session of `username` but `keep` ended: close their sockets here."""
        self._signed_out.sessions_ended(username, keep, code, time.monotonic())
        name = username.lower()
        for token_hash, conns in list(self.by_token.items()):
            if token_hash != keep and any(c.username.lower() == name for c in conns):
                self.sign_out(token_hash, code)

    async def close_all(self, close_code: int, wait: float = 5.0) -> None:
        """Shutdown: close every socket, then wait (up to `wait` seconds) until each one's
        reader loop has ended, which it does when its client answers the close frame."""
        self._closing_all = True
        for conn in list(self.connections):
            conn.close(close_code, "server shutting down", Ending.HALF_CLOSE)
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_detached.wait(), wait)

    # --- keepalive ----------------------------------------------------------------------

    async def keep_alive(self, policy: KeepalivePolicy) -> None:
        """Ping silent sockets, drop the ones that stopped answering; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(policy.tick)
            try:
                self.sweep(policy, loop.time())
            except Exception:  # one bad socket must not end keepalive for the node
                log.exception("keepalive sweep failed")

    def sweep(self, policy: KeepalivePolicy, now: float) -> None:
        for conn in tuple(self.connections):
            verdict = conn.keepalive(policy, now)
            if verdict is Verdict.PING:
                conn.send_frame(PING)
            elif verdict is Verdict.DROP:
                conn.close(WSCloseCode.ABNORMAL_CLOSURE, "keepalive timeout", Ending.ABORT)

    def queued_bytes(self) -> int:
        """What the sockets' transports hold unsent (the send-queue gauge)."""
        return sum(conn.transport.get_write_buffer_size() for conn in self.connections)


def _forget(index: dict[str, set[Connection]], key: str, conn: Connection) -> None:
    peers = index.get(key)
    if peers is not None:
        peers.discard(conn)
        if not peers:
            del index[key]


def close_signed_out(conn: Connection, code: CloseCode) -> None:
    """Close `conn` because its session ended (4001) or its account was banned (4003)."""
    conn.close(code, "banned" if code is CloseCode.BANNED else "signed out")
