"""One WebSocket's life after the upgrade, as a state machine checked at each transition.
Sans-I/O (the model is the websockets library's `Protocol`): the caller passes the clock,
and does the writing and the closing.

    OPEN --close--> CLOSING --end--> CLOSED
      \\-------------end-------------/

OPEN: frames go both ways. CLOSING: a close is under way, by one of the `Ending`s; nothing
more is written, while the client's frames are still read until its own close frame (or
until the library gives up). CLOSED: the socket's reader loop is over, and the socket has
left the node. The handshake and sign-in come before (HTTP answers refuse them), so a
socket starts OPEN.

Reasons to close race (a revocation, the keepalive, a slow reader, the client's own
close): the first one wins and the others find the socket CLOSING, save an abort, which
ends a close the peer does not answer. A transition out of CLOSED, or a frame handled
while another one is, is a bug: `InvalidTransition`.

The keepalive reads the same object: when the client was last heard, when it was last
pinged, and whether one of its frames is being handled (then its pongs wait unread
behind that frame, and its silence is no sign of a dead peer).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from parley.core.keepalive import KeepalivePolicy, Verdict

__all__ = ["Close", "Ending", "InvalidTransition", "SocketLifecycle", "SocketState"]


class SocketState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# A member read as `SocketState.CLOSED` costs an attribute lookup through the enum's
# metaclass (`EnumType.__getattr__` makes it the slow path: 80 ns against 7 for a global),
# and `heard` runs once per frame received.
_CLOSED: Final = SocketState.CLOSED


class Ending(Enum):
    """How a close goes on the wire."""

    HANDSHAKE = "handshake"  # what is queued, then our close frame; the client answers it
    ANSWER = "answer"  # the client's close frame came first: answer it, wait for nothing
    HALF_CLOSE = "half close"  # shutdown: our close frame, then FIN; read on until the client's
    ABORT = "abort"  # the peer stopped answering: no close frame, a reset
    BY_LIBRARY = "by library"  # aiohttp closed it itself: a protocol error, or the peer's EOF


@dataclass(frozen=True, slots=True)
class Close:
    """Why a socket closes: the code and reason of its close frame (none goes out for an
    abort: 1006, as the client will see it), and how."""

    code: int
    reason: str
    ending: Ending


class InvalidTransition(RuntimeError):
    """A transition the state machine does not have: a bug in the caller."""

    def __init__(self, state: SocketState, transition: str) -> None:
        super().__init__(f"{transition} on a socket that is {state.value}")
        self.state = state


class SocketLifecycle:
    """The state of one socket, its close reason, and what the keepalive needs to know."""

    __slots__ = ("busy", "close_cause", "heard_at", "pinged_at", "state")

    def __init__(self, now: float) -> None:
        self.state = SocketState.OPEN
        self.close_cause: Close | None = None  # the close that won (an abort may end it)
        self.heard_at = now  # the client's last frame (handled)
        self.pinged_at: float | None = None  # our last keepalive ping
        self.busy = False  # one of the client's frames is being handled

    def begin_close(self, close: Close) -> bool:
        """OPEN -> CLOSING; True: do the I/O of `close.ending`. This is the transition
        alone: the adapter's close makes it, then does the I/O.

        In CLOSING, False: a close is already under way, and the first reason stands.
        Except an abort: it gives up on a close the peer does not answer (a client that
        reads nothing never takes our close frame), once.
        """
        state = self.state
        if state is SocketState.CLOSING:
            assert self.close_cause is not None
            if close.ending is not Ending.ABORT or self.close_cause.ending is Ending.ABORT:
                return False
        elif state is not SocketState.OPEN:
            raise InvalidTransition(state, f"close ({close.code} {close.reason!r})")
        self.state = SocketState.CLOSING
        self.close_cause = close
        return True

    def end(self) -> None:
        """OPEN or CLOSING -> CLOSED: the reader loop is over (OPEN: it ended without a
        close of ours, on an error or cancelled, and the library closes the socket)."""
        if self.state is SocketState.CLOSED:
            raise InvalidTransition(self.state, "end")
        self.state = SocketState.CLOSED

    def handling(self) -> None:
        """The reader loop took a frame that takes a while to handle: until `heard`, the
        client's pongs wait unread behind it."""
        if self.state is SocketState.CLOSED:
            raise InvalidTransition(self.state, "handling a frame")
        if self.busy:  # the reader loop handles one frame at a time
            raise InvalidTransition(self.state, "handling a frame while handling another")
        self.busy = True

    def heard(self, now: float) -> None:
        """A frame of the client's was handled: it is alive, and no longer busy."""
        if self.state is _CLOSED:
            raise InvalidTransition(self.state, "heard")
        self.busy = False
        self.heard_at = now

    def keepalive(self, policy: KeepalivePolicy, now: float) -> Verdict:
        """What the keepalive sweep does with this socket now; a PING is counted as sent."""
        if self.state is SocketState.CLOSED:
            raise InvalidTransition(self.state, "keepalive")
        if self.busy:
            return Verdict.KEEP
        verdict = policy.verdict(now, self.heard_at, self.pinged_at)
        if verdict is Verdict.PING:
            self.pinged_at = now
        return verdict
